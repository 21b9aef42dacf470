"""Model-based tests: the database ledger against the in-memory reference ledger.

Sequentially, every reply must equal the model's; concurrently (where the database picks
the order), every reply must obey the model's rules and the final balance must equal what
the model computes from the replies.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from fractions import Fraction

from spendguard_proxy import ledger
from spendguard_proxy.errors import BudgetLocked, InsufficientBudget
from tests.invariants import assert_ledger_invariants
from tests.ledger.helpers import T, cost_of
from tests.ledger.model import CENT, ModelLedger

RATES = [Fraction(0), Fraction(1, 3), Fraction(35, 2), Fraction(250), Fraction(1000)]


async def _expire_now(pool, hold_id):
    """Time travel for one hold: make it look like its proxy died long ago."""
    await pool.execute("UPDATE holds SET expires_at = now() - interval '1 hour' WHERE id = $1",
                       hold_id)


async def _run_sequential(pool, rng: random.Random, steps: int) -> None:
    agent = await ledger.create_agent(pool, T, "model")
    agent_id = uuid.UUID(agent["agent_id"])
    model = ModelLedger()
    runs = [uuid.uuid4() for _ in range(3)]
    live: list[uuid.UUID] = []
    for _ in range(steps):
        op = rng.choice(["budget", "reserve", "reserve", "settle", "settle", "expire"])
        if op == "budget" or not model.exists:
            limit, topup = rng.randint(1, 50), rng.choice([None, 0, rng.randint(0, 60)])
            conc = rng.choice([None, "exclusive", "shared"])
            got = await ledger.set_budget(pool, T, agent_id, hard_limit_cents=limit,
                                          topup_cents=topup, concurrency=conc)
            model.set_budget(limit, topup, conc)
            assert got["remaining_microcents"] == model.remaining
            assert got["concurrency"] == model.concurrency
        elif op == "reserve":
            run, fixed = rng.choice(runs), rng.randint(0, 3 * CENT)
            rate, wanted = rng.choice(RATES), rng.randint(1, 20_000)
            expect = model.reserve(run, fixed, rate, wanted)
            req = ledger.ReserveRequest(T, agent_id, run, fixed, rate, wanted)
            try:
                res = await ledger.reserve(pool, req, ttl_s=600)
                got = ("ok", res.max_tokens, res.hold_microcents)
            except BudgetLocked:
                got = ("locked",)
            except InsufficientBudget:
                got = ("insufficient",)
            assert got == expect
            if got[0] == "ok":
                model.add_hold(res.hold_id, run, res.hold_microcents)
                live.append(res.hold_id)
        elif op == "settle" and live:
            hold_id = live.pop(rng.randrange(len(live)))
            realized = rng.choice([0, rng.randint(0, model.holds[hold_id].amount),
                                   rng.randint(0, 4 * CENT)])
            st = await ledger.settle(pool, agent_id, hold_id, realized_microcents=realized,
                                     input_tokens=1, output_tokens=1,
                                     termination_reason="complete")
            assert (st.charged_microcents, st.overrun_microcents) == model.settle(hold_id,
                                                                                 realized)
        elif op == "expire" and live:
            hold_id = live.pop(rng.randrange(len(live)))
            await _expire_now(pool, hold_id)
            assert await pool.fetchval("SELECT sg_sweep_agent($1)", agent_id) == 1
            model.expire(hold_id)
        budget = await ledger.get_budget(pool, T, agent_id)
        assert budget["remaining_microcents"] == model.remaining
        assert budget["locked_cents"] * CENT >= model.held > (budget["locked_cents"] - 1) * CENT
        assert budget["locked_run_id"] == (str(model.locked_run) if model.locked_run else None)
    await assert_ledger_invariants(pool, agent_id)


async def test_every_reply_matches_the_model(pool):
    for seed in range(6):
        await _run_sequential(pool, random.Random(seed), steps=60)


async def test_concurrent_workload_obeys_the_model(pool):
    """32 tasks on one shared agent: top-ups, reserves, settles and expiries at once."""
    agent = await ledger.create_agent(pool, T, "model-concurrent")
    agent_id = uuid.UUID(agent["agent_id"])
    await ledger.set_budget(pool, T, agent_id, hard_limit_cents=20, topup_cents=None,
                            concurrency="shared")
    settled: list[int] = []
    expired: list[int] = []

    async def task(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(12):
            if rng.random() < 0.05:  # its effect depends on the order: read from the ledger
                await ledger.set_budget(pool, T, agent_id, hard_limit_cents=20, topup_cents=1,
                                        concurrency=None)
                continue
            fixed, rate = rng.randint(0, CENT // 4), rng.choice(RATES)
            wanted = rng.randint(1, 2000)
            try:
                res = await ledger.reserve(
                    pool, ledger.ReserveRequest(T, agent_id, uuid.uuid4(), fixed, rate, wanted),
                    ttl_s=600)
            except InsufficientBudget:
                continue
            # The model's local rules for a granted reservation.
            assert 1 <= res.max_tokens <= wanted
            assert res.hold_microcents == max(cost_of(fixed, rate, res.max_tokens), 1)
            assert res.available_microcents >= 0
            await asyncio.sleep(rng.random() / 200)
            if rng.random() < 0.1:
                await _expire_now(pool, res.hold_id)
                expired.append(res.hold_microcents)
                continue
            realized = rng.randint(0, res.hold_microcents)
            st = await ledger.settle(pool, agent_id, res.hold_id, realized_microcents=realized,
                                     input_tokens=1, output_tokens=1,
                                     termination_reason="complete")
            if st.status == "settled":
                assert st.charged_microcents == realized and st.overrun_microcents == 0
                settled.append(realized)
            else:  # swept by another task's reserve first: charged in full already
                assert st.status == "late" and st.charged_microcents == 0
                expired.append(res.hold_microcents)

    await asyncio.gather(*(task(seed) for seed in range(32)))
    await pool.fetchval("SELECT sg_sweep_agent($1)", agent_id)
    topups = await pool.fetchval("SELECT coalesce(sum(delta_microcents), 0) FROM ledger_entries"
                                 " WHERE agent_id = $1 AND kind IN ('topup', 'limit_change')",
                                 agent_id)
    figures = await assert_ledger_invariants(pool, agent_id)
    model_remaining = topups - sum(settled) - sum(expired)
    assert figures["remaining"] == model_remaining
    assert figures["overrun"] == 0
