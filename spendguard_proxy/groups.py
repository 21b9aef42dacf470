"""Budget groups: one limit several agents draw on (DESIGN §11).

An agent with a ``group_id`` reserves and settles in its own budget and its group's in the
same transaction (migration 0006); this module creates, changes and removes groups. Every
change of a group's balance is a row in ``group_ledger_entries``, written with it; locks follow
the money paths' order (tenant, groups, budgets).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg

from spendguard_proxy.errors import BudgetLocked, NotFound
from spendguard_proxy.ledger import (
    MICROCENTS_PER_CENT,
    Db,
    durable_transaction,
    iso_time,
    period_overdue,
    policy_json,
    to_cents_ceil,
    to_cents_floor,
)

GROUP_FIELDS = ("name", "hard_limit_cents", "topup_cents", "period", "alert_thresholds_pct")

_GROUP_SQL = """
SELECT g.*, coalesce((SELECT array_agg(b.agent_id ORDER BY b.agent_id) FROM budgets b
                       JOIN agents a ON a.id = b.agent_id
                      WHERE b.group_id = g.id AND a.deleted_at IS NULL), '{}') AS agent_ids
  FROM budget_groups g
 WHERE g.tenant_id = $1 AND g.deleted_at IS NULL AND ($2::uuid IS NULL OR g.id = $2)
 ORDER BY g.created_at, g.id
"""


def _group_json(row: asyncpg.Record) -> dict[str, Any]:
    remaining, held = row["remaining_microcents"], row["held_microcents"]
    return {
        "group_id": str(row["id"]),
        "name": row["name"],
        "hard_limit_cents": to_cents_floor(row["hard_limit_microcents"]),
        "remaining_cents": to_cents_floor(remaining),
        "remaining_microcents": remaining,
        "available_cents": to_cents_floor(remaining - held),
        "locked_cents": to_cents_ceil(held),
        **policy_json(row),
        "agent_ids": [str(a) for a in row["agent_ids"]],
        "created_at": iso_time(row["created_at"]),
    }


def _not_found(group_id: uuid.UUID) -> NotFound:
    return NotFound(f"Group not found: {group_id}")


async def create_group(
    db: Db,
    tenant_id: uuid.UUID,
    *,
    name: str,
    hard_limit_cents: int,
    topup_cents: int | None = None,
    period: str | None = None,
    alert_thresholds_pct: list[int] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    limit = hard_limit_cents * MICROCENTS_PER_CENT
    start = min(limit, (topup_cents or 0) * MICROCENTS_PER_CENT or limit)
    group_id = uuid.uuid4()
    async with durable_transaction(db) as conn:
        now = now or await conn.fetchval("SELECT now()")
        await conn.execute(
            "INSERT INTO budget_groups (id, tenant_id, name, hard_limit_microcents,"
            " remaining_microcents, period, period_resets_at, alert_thresholds_pct, created_at,"
            " updated_at) VALUES ($1, $2, $3, $4, $5, $6, sg_period_end($6, $7), $8, $7, $7)",
            group_id,
            tenant_id,
            name,
            limit,
            start,
            period or "none",
            now,
            alert_thresholds_pct,
        )
        await _append(conn, group_id, "topup", start, start, now)
        return _group_json(await conn.fetchrow(_GROUP_SQL, tenant_id, group_id))


async def list_groups(db: Db, tenant_id: uuid.UUID) -> list[dict[str, Any]]:
    return [_group_json(row) for row in await db.fetch(_GROUP_SQL, tenant_id, None)]


async def get_group(
    db: Db, tenant_id: uuid.UUID, group_id: uuid.UUID, *, now: datetime | None = None
) -> dict[str, Any]:
    row = await db.fetchrow(_GROUP_SQL, tenant_id, group_id)
    if row is None:
        raise _not_found(group_id)
    if period_overdue(row, now):  # a read starts the new period too
        async with durable_transaction(db) as conn:
            await _lock(conn, tenant_id, group_id, now)
        row = await db.fetchrow(_GROUP_SQL, tenant_id, group_id)
    return _group_json(row)


async def update_group(
    db: Db,
    tenant_id: uuid.UUID,
    group_id: uuid.UUID,
    changes: dict[str, Any],
    *,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Change the given GROUP_FIELDS. Money moves as for an agent's budget: remaining becomes
    min(remaining + topup, limit), never below the live holds; a top-up also re-arms
    budget.exhausted. A new period starts now; None clears the thresholds."""
    async with durable_transaction(db) as conn:
        now = now or await conn.fetchval("SELECT now()")
        row = await _lock(conn, tenant_id, group_id, now)
        if "name" in changes:
            await conn.execute("UPDATE budget_groups SET name = $2 WHERE id = $1", group_id,
                               changes["name"])
        if "period" in changes:
            await conn.execute(
                "UPDATE budget_groups SET period = $2, period_resets_at = CASE WHEN period = $2"
                " THEN period_resets_at ELSE sg_period_end($2, $3) END WHERE id = $1",
                group_id, changes["period"] or "none", now,
            )
        if "alert_thresholds_pct" in changes:
            await conn.execute(
                "UPDATE budget_groups SET alert_thresholds_pct = $2 WHERE id = $1",
                group_id, changes["alert_thresholds_pct"],
            )
        if "hard_limit_cents" in changes or "topup_cents" in changes:
            await _change_money(conn, row, changes, now)
        return _group_json(await conn.fetchrow(_GROUP_SQL, tenant_id, group_id))


async def _change_money(
    conn: asyncpg.Connection, row: asyncpg.Record, changes: dict[str, Any], now: datetime
) -> None:
    limit = row["hard_limit_microcents"]
    if changes.get("hard_limit_cents") is not None:
        limit = changes["hard_limit_cents"] * MICROCENTS_PER_CENT
    topup = (changes.get("topup_cents") or 0) * MICROCENTS_PER_CENT
    old = row["remaining_microcents"]
    new = max(min(old + topup, limit), row["held_microcents"])
    await conn.execute(
        "UPDATE budget_groups SET hard_limit_microcents = $2, remaining_microcents = $3,"
        " exhausted_notified = exhausted_notified AND $3 <= remaining_microcents,"
        " updated_at = $4 WHERE id = $1",
        row["id"], limit, new, now,
    )
    if new != old or limit != row["hard_limit_microcents"]:
        await _append(conn, row["id"], "topup" if new > old else "limit_change", new - old, new,
                      now)


async def delete_group(db: Db, tenant_id: uuid.UUID, group_id: uuid.UUID) -> dict[str, Any]:
    """Remove a group and take its members out of it; a 409 while any member has a call in
    flight (its hold is in the group). The group's ledger stays for audit."""
    async with durable_transaction(db) as conn:
        row = await _lock(conn, tenant_id, group_id, await conn.fetchval("SELECT now()"))
        if row["hold_count"]:
            raise BudgetLocked(
                f"Group {group_id} has {row['hold_count']} call(s) in flight; delete it once"
                " they have settled"
            )
        await conn.execute(
            "UPDATE budgets SET group_id = NULL WHERE agent_id IN (SELECT agent_id FROM budgets"
            " WHERE group_id = $1 ORDER BY agent_id FOR UPDATE)",
            group_id,
        )
        await conn.execute("UPDATE budget_groups SET deleted_at = now() WHERE id = $1", group_id)
    return {"group_id": str(group_id), "deleted": True}


async def _lock(
    conn: asyncpg.Connection, tenant_id: uuid.UUID, group_id: uuid.UUID, now: datetime | None
) -> asyncpg.Record:
    """The tenant's group row, locked and rolled into its current period."""
    row = await conn.fetchrow(
        "SELECT * FROM budget_groups WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL"
        " FOR NO KEY UPDATE",
        group_id,
        tenant_id,
    )
    if row is None:
        raise _not_found(group_id)
    if period_overdue(row, now):
        await conn.execute("SELECT sg_roll_group($1, coalesce($2, now()))", group_id, now)
        row = await conn.fetchrow("SELECT * FROM budget_groups WHERE id = $1", group_id)
    return row


async def _append(
    conn: asyncpg.Connection, group_id: uuid.UUID, kind: str, delta: int, balance: int,
    now: datetime,
) -> None:
    await conn.execute(
        "INSERT INTO group_ledger_entries (group_id, kind, delta_microcents,"
        " balance_after_microcents, created_at) VALUES ($1, $2, $3, $4, $5)",
        group_id, kind, delta, balance, now,
    )
