"""The ledger invariants, checked on the real database after any test that moves money."""

from __future__ import annotations

import uuid

import asyncpg


async def assert_ledger_invariants(db: asyncpg.Pool, agent_id: uuid.UUID) -> dict:
    """remaining == Σ deltas, 0 ≤ holds ≤ remaining, holds match the hold rows, each row's
    balance_after is the running sum, charges never exceed credits. Returns the figures."""
    budget = await db.fetchrow("SELECT * FROM budgets WHERE agent_id = $1", agent_id)
    rows = await db.fetch(
        "SELECT kind, delta_microcents, balance_after_microcents, overrun_microcents"
        " FROM ledger_entries WHERE agent_id = $1 ORDER BY id",
        agent_id,
    )
    holds = await db.fetchrow(
        "SELECT coalesce(sum(amount_microcents), 0) AS total, count(*) AS n FROM holds"
        " WHERE agent_id = $1",
        agent_id,
    )
    running = 0
    credits = 0
    charges = 0
    for row in rows:
        running += row["delta_microcents"]
        assert row["balance_after_microcents"] == running, "balance_after is not the running sum"
        assert running >= 0
        if row["kind"] == "topup" or row["kind"] == "period_reset" and row["delta_microcents"] > 0:
            credits += row["delta_microcents"]
        elif row["kind"] in ("charge", "hold_expired"):
            assert row["delta_microcents"] <= 0
            charges -= row["delta_microcents"]
    assert budget["remaining_microcents"] == running, "remaining != sum of deltas"
    assert 0 <= budget["held_microcents"] <= budget["remaining_microcents"]
    assert budget["held_microcents"] == holds["total"]
    assert budget["hold_count"] == holds["n"]
    assert charges <= credits
    return {
        "remaining": running,
        "credits": credits,
        "charges": charges,
        "overrun": sum(r["overrun_microcents"] for r in rows),
        "entries": len(rows),
    }


async def assert_group_invariants(db: asyncpg.Pool, group_id: uuid.UUID) -> dict:
    """A group's ledger obeys its agents' rules; its holds are the live holds placed in it,
    and each charge row matches the agent ledger row it names."""
    group = await db.fetchrow("SELECT * FROM budget_groups WHERE id = $1", group_id)
    rows = await db.fetch(
        "SELECT g.kind, g.delta_microcents, g.balance_after_microcents, g.overrun_microcents,"
        " a.delta_microcents AS agent_delta, a.overrun_microcents AS agent_overrun"
        " FROM group_ledger_entries g LEFT JOIN ledger_entries a ON a.id = g.agent_entry_id"
        " WHERE g.group_id = $1 ORDER BY g.id",
        group_id,
    )
    holds = await db.fetchrow(
        "SELECT coalesce(sum(amount_microcents), 0) AS total, count(*) AS n FROM holds"
        " WHERE group_id = $1",
        group_id,
    )
    running = charges = 0
    for row in rows:
        running += row["delta_microcents"]
        assert row["balance_after_microcents"] == running, "balance_after is not the running sum"
        if row["kind"] in ("charge", "hold_expired"):
            assert row["delta_microcents"] == row["agent_delta"], "group and agent charge differ"
            assert row["overrun_microcents"] == (row["agent_overrun"] or 0)
            charges -= row["delta_microcents"]
    assert group["remaining_microcents"] == running, "group remaining != sum of deltas"
    assert 0 <= group["held_microcents"] <= group["remaining_microcents"]
    assert group["held_microcents"] == holds["total"]
    assert group["hold_count"] == holds["n"]
    return {"remaining": running, "charges": charges, "entries": len(rows)}


async def assert_tenant_invariants(db: asyncpg.Pool, tenant_id: uuid.UUID) -> dict:
    """Holds counted against the tenant's ceiling are the live ones, and with a ceiling the
    month's spend plus holds stay within it."""
    tenant = await db.fetchrow("SELECT * FROM tenants WHERE id = $1", tenant_id)
    held = await db.fetchval(
        "SELECT coalesce(sum(amount_microcents), 0) FROM holds WHERE tenant_id = $1", tenant_id
    )
    assert tenant["month_held_microcents"] == held
    if tenant["monthly_ceiling_microcents"] is not None:
        assert tenant["month_spent_microcents"] + held <= tenant["monthly_ceiling_microcents"]
    return dict(tenant)
