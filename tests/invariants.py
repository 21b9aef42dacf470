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
        if row["kind"] == "topup":
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
