"""Read-only queries behind the console pages, always scoped to one tenant.

Spend is what charges took from budgets: ``-delta`` of ``charge`` and ``hold_expired`` rows
(integer microcents). Money changes go through ``ledger.py`` only; nothing here writes.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg

Db = asyncpg.Pool | asyncpg.Connection
SPEND_KINDS = ("charge", "hold_expired")
AGENTS_SHOWN_MAX = 200

def _day_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def totals_from_days(rows: list[tuple[date, str, int]], now: datetime) -> dict[str, int]:
    """Spend today (UTC), in the last 7 and 30 days (days counted from today's start), from
    the per-day rows of ``spend_per_day`` (30 days): no second scan of the ledger."""
    today = _day_start(now).date()
    totals = {"today": 0, "week": 0, "month": 0}
    for day, _, spent in rows:
        age_days = (today - day).days
        totals["today"] += spent if age_days == 0 else 0
        totals["week"] += spent if age_days < 7 else 0
        totals["month"] += spent if age_days < 30 else 0
    return totals


async def live_holds(db: Db, tenant_id: uuid.UUID) -> dict[str, int]:
    row = await db.fetchrow(
        "SELECT coalesce(sum(b.hold_count), 0) AS n, coalesce(sum(b.held_microcents), 0) AS held"
        " FROM budgets b JOIN agents a ON a.id = b.agent_id WHERE a.tenant_id = $1",
        tenant_id,
    )
    return {"count": row["n"], "microcents": row["held"]}


async def spend_per_day(
    db: Db,
    tenant_id: uuid.UUID,
    now: datetime,
    *,
    by: str,
    days: int = 30,
    agent_id: uuid.UUID | None = None,
) -> list[tuple[date, str, int]]:
    """(day, provider or model, µ¢) for the last ``days`` UTC days, one agent or all."""
    column = "l.model" if by == "model" else "l.provider"
    since = _day_start(now) - timedelta(days=days - 1)
    rows = await db.fetch(
        f"SELECT (l.created_at AT TIME ZONE 'UTC')::date AS day,"
        f" coalesce({column}, '(none)') AS key, sum(-l.delta_microcents) AS spent"
        " FROM ledger_entries l JOIN agents a ON a.id = l.agent_id"
        " WHERE a.tenant_id = $1 AND l.created_at >= $2 AND l.kind IN ('charge', 'hold_expired')"
        " AND ($3::uuid IS NULL OR l.agent_id = $3)"
        " GROUP BY 1, 2 HAVING sum(-l.delta_microcents) > 0 ORDER BY 1, 2",
        tenant_id,
        since,
        agent_id,
    )
    return [(r["day"], r["key"], r["spent"]) for r in rows]


async def top_agents(
    db: Db, tenant_id: uuid.UUID, now: datetime, *, days: int = 30, limit: int = 5
) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT a.id, a.name, a.deleted_at IS NOT NULL AS deleted,"
        " sum(-l.delta_microcents) AS spent, count(*) AS calls"
        " FROM ledger_entries l JOIN agents a ON a.id = l.agent_id"
        " WHERE a.tenant_id = $1 AND l.created_at >= $2 AND l.kind IN ('charge', 'hold_expired')"
        " GROUP BY a.id ORDER BY spent DESC, a.id LIMIT $3",
        tenant_id,
        _day_start(now) - timedelta(days=days - 1),
        limit,
    )
    return [dict(r) for r in rows]


_NOTABLE_SQL = """
SELECT l.id, l.agent_id, a.name AS agent_name, l.provider, l.model, l.delta_microcents,
       l.realized_microcents, l.overrun_microcents, l.termination_reason, l.created_at
  FROM ledger_entries l JOIN agents a ON a.id = l.agent_id
 WHERE a.tenant_id = $1 AND l.kind = 'charge' AND {condition}
 ORDER BY l.id DESC LIMIT $2
"""


async def recent_cutoffs(db: Db, tenant_id: uuid.UUID, *, limit: int = 10) -> list[dict]:
    sql = _NOTABLE_SQL.format(condition="l.termination_reason = 'budget_cutoff'")
    return [dict(r) for r in await db.fetch(sql, tenant_id, limit)]


async def recent_overruns(db: Db, tenant_id: uuid.UUID, *, limit: int = 10) -> list[dict]:
    sql = _NOTABLE_SQL.format(condition="l.overrun_microcents > 0")
    return [dict(r) for r in await db.fetch(sql, tenant_id, limit)]


async def agents_table(db: Db, tenant_id: uuid.UUID, search: str | None) -> list[dict]:
    """Agents with their budget figures, name search case-insensitive (a substring)."""
    pattern = None
    if search:
        pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    rows = await db.fetch(
        "SELECT a.id, a.name, a.created_at, b.hard_limit_microcents, b.remaining_microcents,"
        " b.held_microcents, b.hold_count, b.concurrency,"
        # to_jsonb: the period column arrives with the policies migration; absent -> null.
        " to_jsonb(b) ->> 'period' AS period"
        " FROM agents a LEFT JOIN budgets b ON b.agent_id = a.id"
        " WHERE a.tenant_id = $1 AND a.deleted_at IS NULL"
        " AND ($2::text IS NULL OR a.name ILIKE $2)"
        " ORDER BY a.created_at, a.id LIMIT $3",
        tenant_id,
        pattern,
        AGENTS_SHOWN_MAX + 1,
    )
    return [dict(r) for r in rows]


async def agents_by_id(db: Db, tenant_id: uuid.UUID, agent_ids: list[str]) -> list[dict]:
    rows = await db.fetch(
        "SELECT a.id, a.name, b.remaining_microcents, b.hard_limit_microcents"
        " FROM agents a LEFT JOIN budgets b ON b.agent_id = a.id"
        " WHERE a.tenant_id = $1 AND a.id = ANY($2::uuid[]) ORDER BY a.name, a.id",
        tenant_id,
        agent_ids,
    )
    return [dict(r) for r in rows]


async def agent_spend_by_model(db: Db, agent_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT coalesce(provider, '(none)') AS provider, coalesce(model, '(none)') AS model,"
        " sum(-delta_microcents) AS spent, count(*) AS calls,"
        " coalesce(sum(input_tokens), 0) AS input_tokens,"
        " coalesce(sum(output_tokens), 0) AS output_tokens"
        " FROM ledger_entries WHERE agent_id = $1 AND kind IN ('charge', 'hold_expired')"
        " GROUP BY 1, 2 ORDER BY spent DESC, 2 LIMIT 20",
        agent_id,
    )
    return [dict(r) for r in rows]


async def agent_runs(db: Db, agent_id: uuid.UUID, *, limit: int = 20) -> list[dict[str, Any]]:
    """The agent's most recent runs (by their latest ledger row)."""
    rows = await db.fetch(
        "SELECT run_id, count(*) AS calls, sum(-delta_microcents) AS spent,"
        " min(created_at) AS started_at, max(created_at) AS last_at, max(id) AS last_id"
        " FROM ledger_entries WHERE agent_id = $1 AND run_id IS NOT NULL"
        " AND kind IN ('charge', 'hold_expired')"
        " GROUP BY run_id ORDER BY last_id DESC LIMIT $2",
        agent_id,
        limit,
    )
    return [dict(r) for r in rows]


async def tenant_keys(db: Db, tenant_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT id, prefix, scopes, created_at, last_used_at, revoked_at FROM api_keys"
        " WHERE tenant_id = $1 ORDER BY created_at, id",
        tenant_id,
    )
    return [dict(r) for r in rows]


async def revoke_tenant_key(db: Db, tenant_id: uuid.UUID, key_id: uuid.UUID) -> bool:
    """Revoke one of the tenant's own keys (another tenant's id is simply not found)."""
    row = await db.fetchval(
        "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now())"
        " WHERE id = $1 AND tenant_id = $2 RETURNING id",
        key_id,
        tenant_id,
    )
    return row is not None


async def tenant_name(db: Db, tenant_id: uuid.UUID) -> str | None:
    return await db.fetchval("SELECT name FROM tenants WHERE id = $1", tenant_id)
