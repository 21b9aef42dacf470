"""Budget rules, hold expiry and the sweeper, settlement caps."""

from __future__ import annotations

import asyncio
import uuid
from fractions import Fraction

import pytest

from spendguard_proxy import ledger
from spendguard_proxy.errors import InsufficientBudget, NotFound
from tests.invariants import assert_ledger_invariants
from tests.ledger.helpers import T, new_agent, request

CENT = ledger.MICROCENTS_PER_CENT


async def test_new_budget_starts_at_min_of_limit_and_topup(pool):
    agent_id = await new_agent(pool, limit_cents=100, topup=40)
    budget = await ledger.get_budget(pool, T, agent_id)
    assert budget["remaining_cents"] == 40 and budget["hard_limit_cents"] == 100
    budget = await ledger.set_budget(pool, T, agent_id, hard_limit_cents=100, topup_cents=80,
                                     concurrency=None)
    assert budget["remaining_cents"] == 100  # min(40 + 80, 100)
    assert budget["concurrency"] == "shared"
    await assert_ledger_invariants(pool, agent_id)


async def test_limit_change_never_takes_back_money_held_by_calls_in_flight(pool):
    agent_id = await new_agent(pool, limit_cents=100)
    res = await ledger.reserve(pool, request(agent_id, fixed=60 * CENT, rate=Fraction(0),
                                             max_tokens=10), ttl_s=60)
    budget = await ledger.set_budget(pool, T, agent_id, hard_limit_cents=10, topup_cents=0,
                                     concurrency=None)
    assert budget["remaining_microcents"] == res.hold_microcents == 60 * CENT
    assert budget["available_cents"] == 0
    await ledger.settle(pool, agent_id, res.hold_id, realized_microcents=60 * CENT,
                        input_tokens=1, output_tokens=1, termination_reason="complete")
    await assert_ledger_invariants(pool, agent_id)


async def test_settle_is_capped_at_hold_plus_unreserved_money_and_records_overrun(pool):
    agent_id = await new_agent(pool, limit_cents=10)
    a = await ledger.reserve(pool, request(agent_id, fixed=3 * CENT, rate=Fraction(0)), ttl_s=60)
    b = await ledger.reserve(pool, request(agent_id, fixed=4 * CENT, rate=Fraction(0)), ttl_s=60)
    # `a` reports far more than it held: it may take its hold plus the 3 unreserved cents,
    # never `b`'s hold.
    st = await ledger.settle(pool, agent_id, a.hold_id, realized_microcents=50 * CENT,
                             input_tokens=1, output_tokens=1, termination_reason="complete")
    assert st.charged_microcents == 6 * CENT
    assert st.overrun_microcents == 44 * CENT
    budget = await ledger.get_budget(pool, T, agent_id)
    assert budget["remaining_microcents"] == 4 * CENT == budget["locked_cents"] * CENT
    await ledger.settle(pool, agent_id, b.hold_id, realized_microcents=4 * CENT,
                        input_tokens=1, output_tokens=1, termination_reason="complete")
    figures = await assert_ledger_invariants(pool, agent_id)
    assert figures["remaining"] == 0 and figures["overrun"] == 44 * CENT


async def test_402_when_not_even_the_input_fits(pool):
    agent_id = await new_agent(pool, limit_cents=1)
    with pytest.raises(InsufficientBudget, match="1 ¢ available"):
        await ledger.reserve(pool, request(agent_id, fixed=2 * CENT), ttl_s=60)
    res = await ledger.reserve(pool, request(agent_id, fixed=CENT // 2, rate=Fraction(1000),
                                             max_tokens=10**6), ttl_s=60)
    assert res.max_tokens == (CENT // 2) // 1000  # clamped to what is left


async def test_unknown_or_deleted_agent_is_404_and_no_budget_is_402(pool):
    with pytest.raises(NotFound):
        await ledger.reserve(pool, request(uuid.uuid4()), ttl_s=60)
    agent = await ledger.create_agent(pool, T, "nobudget")
    with pytest.raises(InsufficientBudget, match="no budget"):
        await ledger.reserve(pool, request(uuid.UUID(agent["agent_id"])), ttl_s=60)
    agent_id = await new_agent(pool, limit_cents=5)
    await ledger.delete_agent(pool, T, agent_id)
    with pytest.raises(NotFound):
        await ledger.reserve(pool, request(agent_id), ttl_s=60)
    assert (await pool.fetchval("SELECT count(*) FROM ledger_entries WHERE agent_id=$1",
                                agent_id)) == 1  # the ledger is kept


async def test_expired_hold_is_charged_in_full_by_next_reserve(pool):
    agent_id = await new_agent(pool, limit_cents=10, concurrency="exclusive")
    dead = await ledger.reserve(pool, request(agent_id, fixed=2 * CENT, rate=Fraction(0)),
                                ttl_s=1)
    await asyncio.sleep(1.1)
    # Another run would get 409 while the hold lived; once expired, the budget is free.
    await ledger.reserve(pool, request(agent_id, fixed=1, rate=Fraction(0)), ttl_s=60)
    rows = await pool.fetch("SELECT kind, delta_microcents FROM ledger_entries"
                            " WHERE agent_id=$1 AND hold_id=$2", agent_id, dead.hold_id)
    assert [(r["kind"], r["delta_microcents"]) for r in rows] == [("hold_expired", -2 * CENT)]
    late = await ledger.settle(pool, agent_id, dead.hold_id, realized_microcents=CENT,
                               input_tokens=1, output_tokens=1, termination_reason="complete")
    assert late.status == "late" and late.charged_microcents == 0
    assert late.overrun_microcents == 0
    await assert_ledger_invariants(pool, agent_id)


async def test_sweeper_charges_expired_holds_and_heartbeat_keeps_them_alive(pool):
    agent_id = await new_agent(pool, limit_cents=10)
    dead = await ledger.reserve(pool, request(agent_id, fixed=CENT, rate=Fraction(0)), ttl_s=1)
    alive = await ledger.reserve(pool, request(agent_id, fixed=CENT, rate=Fraction(0)), ttl_s=1)
    await asyncio.sleep(0.6)
    assert await ledger.heartbeat(pool, alive.hold_id, ttl_s=60)
    await asyncio.sleep(0.6)
    assert await ledger.sweep_expired_holds(pool) >= 1
    assert not await ledger.heartbeat(pool, dead.hold_id, ttl_s=60)
    budget = await ledger.get_budget(pool, T, agent_id)
    assert budget["remaining_cents"] == 9 and budget["locked_cents"] == 1
    st = await ledger.settle(pool, agent_id, alive.hold_id, realized_microcents=10,
                             input_tokens=1, output_tokens=1, termination_reason="complete")
    assert st.status == "settled" and st.charged_microcents == 10
    again = await ledger.settle(pool, agent_id, alive.hold_id, realized_microcents=10,
                                input_tokens=1, output_tokens=1, termination_reason="complete")
    assert again.status == "already_settled"
    await assert_ledger_invariants(pool, agent_id)


async def test_usage_pages_newest_first(pool):
    agent_id = await new_agent(pool, limit_cents=10)
    for _ in range(5):
        res = await ledger.reserve(pool, request(agent_id, fixed=10, rate=Fraction(0)), ttl_s=9)
        await ledger.settle(pool, agent_id, res.hold_id, realized_microcents=7,
                            input_tokens=1, output_tokens=2, termination_reason="complete")
    page = await ledger.list_usage(pool, T, agent_id, limit=4, before=None)
    ids = [e["id"] for e in page["entries"]]
    assert ids == sorted(ids, reverse=True) and page["next_before"] == ids[-1]
    rest = await ledger.list_usage(pool, T, agent_id, limit=4, before=page["next_before"])
    assert [e["kind"] for e in rest["entries"]] == ["charge", "topup"]
    assert rest["next_before"] is None
    assert set(page["entries"][0]) == {
        "id", "kind", "delta_microcents", "balance_after_microcents", "run_id", "provider",
        "model", "input_tokens", "output_tokens", "wcec_microcents", "realized_microcents",
        "overrun_microcents", "termination_reason", "billing_breakdown", "created_at"}


async def test_a_retried_reserve_or_settle_acts_once(pool):
    """What the batcher relies on when a connection dies after COMMIT (migration 0004)."""
    agent_id = await new_agent(pool, limit_cents=10)
    req = request(agent_id, fixed=CENT, rate=Fraction(0))
    hold_id = uuid.uuid4()
    args = ledger.reserve_args(req, hold_id, 60)
    first = await pool.fetchrow(ledger.RESERVE_SQL, *args, None, None)
    again = await pool.fetchrow(ledger.RESERVE_SQL, *args, None, None)
    assert first["status"] == again["status"] == "ok"
    assert first["hold_microcents"] == again["hold_microcents"] == CENT
    budget = await ledger.get_budget(pool, T, agent_id)
    assert budget["locked_cents"] == 1  # one hold, not two
    kw = dict(realized_microcents=CENT // 2, input_tokens=1, output_tokens=1,
              termination_reason="complete")
    settled = await ledger.settle(pool, agent_id, hold_id, **kw)
    repeat = await ledger.settle(pool, agent_id, hold_id, **kw)
    assert settled.status == "settled" and repeat.status == "already_settled"
    assert repeat.charged_microcents == settled.charged_microcents == CENT // 2
    assert repeat.remaining_microcents == settled.remaining_microcents == 10 * CENT - CENT // 2
    figures = await assert_ledger_invariants(pool, agent_id)
    assert figures["charges"] == CENT // 2


async def test_a_retried_late_settle_is_recorded_once(pool):
    agent_id = await new_agent(pool, limit_cents=10)
    res = await ledger.reserve(pool, request(agent_id, fixed=CENT, rate=Fraction(0)), ttl_s=1)
    await pool.execute("UPDATE holds SET expires_at = now() - interval '1 hour' WHERE id = $1",
                       res.hold_id)
    await ledger.sweep_expired_holds(pool)
    kw = dict(realized_microcents=2 * CENT, input_tokens=1, output_tokens=1,
              termination_reason="complete")
    late = await ledger.settle(pool, agent_id, res.hold_id, **kw)
    repeat = await ledger.settle(pool, agent_id, res.hold_id, **kw)
    assert late.status == "late" and late.overrun_microcents == CENT
    assert repeat.status == "already_settled" and repeat.overrun_microcents == CENT
    rows = await pool.fetchval("SELECT count(*) FROM ledger_entries WHERE hold_id = $1",
                               res.hold_id)
    assert rows == 2  # hold_expired + one late charge row
    await assert_ledger_invariants(pool, agent_id)
