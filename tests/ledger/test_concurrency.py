"""Strictness under real concurrency: many tasks, one agent, the budget running out."""

from __future__ import annotations

import asyncio
import random
import uuid
from fractions import Fraction

import asyncpg
import pytest

from spendguard_proxy import ledger
from spendguard_proxy.errors import BudgetLocked, InsufficientBudget
from spendguard_proxy.ledger_batch import LedgerBatcher
from tests.invariants import assert_ledger_invariants
from tests.ledger.helpers import cost_of, new_agent, request

TASKS = 32
CYCLES_PER_TASK = 20  # 640 reserve/settle attempts


async def _cycle(pool, agent_id, run_id, rng, outcomes):
    rate = Fraction(rng.choice([1, 3, 35]), rng.choice([1, 2, 7]))
    fixed = rng.randrange(1_000, 50_000)
    try:
        res = await ledger.reserve(
            pool, request(agent_id, run_id, fixed=fixed, rate=rate, max_tokens=4000), ttl_s=60
        )
    except InsufficientBudget:
        outcomes["402"] += 1
        return
    except BudgetLocked:
        outcomes["409"] += 1
        return
    assert 1 <= res.max_tokens <= 4000
    assert res.hold_microcents == cost_of(fixed, rate, res.max_tokens)
    await asyncio.sleep(rng.random() / 500)
    # A provider that honours max tokens: realized never exceeds the hold.
    used = rng.randint(0, res.max_tokens)
    realized = cost_of(fixed, rate, used)
    st = await ledger.settle(
        pool, agent_id, res.hold_id, realized_microcents=realized, input_tokens=100,
        output_tokens=used, termination_reason="complete",
    )
    assert st.status == "settled" and st.charged_microcents == realized
    assert st.overrun_microcents == 0
    outcomes["settled"] += 1
    outcomes["charged"] += realized


async def _worker(pool, agent_id, run_ids, seed, outcomes):
    rng = random.Random(seed)
    for _ in range(CYCLES_PER_TASK):
        await _cycle(pool, agent_id, rng.choice(run_ids), rng, outcomes)


async def _run(pool, agent_id, run_ids):
    outcomes = {"402": 0, "409": 0, "settled": 0, "charged": 0}
    await asyncio.gather(
        *(_worker(pool, agent_id, run_ids, seed, outcomes) for seed in range(TASKS))
    )
    return outcomes


async def test_shared_agent_never_overspends_when_budget_runs_out(pool):
    agent_id = await new_agent(pool, limit_cents=10, concurrency="shared")
    outcomes = await _run(pool, agent_id, [uuid.uuid4() for _ in range(TASKS)])
    figures = await assert_ledger_invariants(pool, agent_id)
    assert outcomes["settled"] >= 100
    assert outcomes["402"] > 0, "the budget was meant to run out mid-test"
    assert figures["charges"] == outcomes["charged"] <= figures["credits"]
    assert figures["overrun"] == 0
    assert figures["remaining"] == 10_000_000 - outcomes["charged"]


async def test_exclusive_agent_serialises_runs(pool):
    agent_id = await new_agent(pool, limit_cents=200, concurrency="exclusive")
    outcomes = await _run(pool, agent_id, [uuid.uuid4() for _ in range(4)])
    figures = await assert_ledger_invariants(pool, agent_id)
    assert outcomes["409"] > 0
    assert outcomes["settled"] > 0
    assert figures["overrun"] == 0
    assert figures["charges"] == outcomes["charged"] <= figures["credits"]


async def test_calls_of_the_same_run_may_overlap_on_an_exclusive_budget(pool):
    agent_id = await new_agent(pool, limit_cents=100, concurrency="exclusive")
    run = uuid.uuid4()
    first = await ledger.reserve(pool, request(agent_id, run), ttl_s=60)
    second = await ledger.reserve(pool, request(agent_id, run), ttl_s=60)
    with pytest.raises(BudgetLocked):  # another run
        await ledger.reserve(pool, request(agent_id, uuid.uuid4()), ttl_s=60)
    budget = await ledger.get_budget(pool, ledger.LOCAL_TENANT_ID, agent_id)
    assert budget["locked_run_id"] == str(run)
    for res in (first, second):
        await ledger.settle(pool, agent_id, res.hold_id, realized_microcents=5,
                            input_tokens=1, output_tokens=1, termination_reason="complete")
    budget = await ledger.get_budget(pool, ledger.LOCAL_TENANT_ID, agent_id)
    assert budget["locked_run_id"] is None
    await ledger.reserve(pool, request(agent_id, uuid.uuid4()), ttl_s=60)
    await assert_ledger_invariants(pool, agent_id)


async def test_batched_ledger_is_as_strict_under_concurrency(pool):
    """The same workload through the batcher the server uses."""
    batcher = LedgerBatcher(pool, ttl_s=60)
    try:
        agent_id = await new_agent(pool, limit_cents=10, concurrency="shared")
        outcomes = {"402": 0, "409": 0, "settled": 0, "charged": 0}

        async def worker(seed):
            rng = random.Random(seed)
            for _ in range(CYCLES_PER_TASK):
                rate, fixed = Fraction(rng.choice([1, 35]), 2), rng.randrange(1_000, 50_000)
                try:
                    res = await batcher.reserve(request(agent_id, fixed=fixed, rate=rate,
                                                        max_tokens=4000))
                except InsufficientBudget:
                    outcomes["402"] += 1
                    continue
                realized = cost_of(fixed, rate, rng.randint(0, res.max_tokens))
                st = await batcher.settle(agent_id, res.hold_id, realized_microcents=realized,
                                          input_tokens=1, output_tokens=1,
                                          termination_reason="complete")
                assert st.charged_microcents == realized and st.overrun_microcents == 0
                outcomes["settled"] += 1
                outcomes["charged"] += realized

        await asyncio.gather(*(worker(seed) for seed in range(TASKS)))
        figures = await assert_ledger_invariants(pool, agent_id)
        assert outcomes["402"] > 0 and outcomes["settled"] >= 100
        assert figures["charges"] == outcomes["charged"] and figures["overrun"] == 0
    finally:
        await batcher.close()


async def test_one_bad_call_in_a_batch_fails_alone(pool):
    batcher = LedgerBatcher(pool, ttl_s=60)
    try:
        agent_id = await new_agent(pool, limit_cents=10, concurrency="shared")
        holds = [await batcher.reserve(request(agent_id)) for _ in range(6)]
        results = await asyncio.gather(*(
            batcher.settle(agent_id, h.hold_id, realized_microcents=-5 if i == 2 else 100,
                           input_tokens=1, output_tokens=1, termination_reason="complete")
            for i, h in enumerate(holds)), return_exceptions=True)
        assert isinstance(results[2], asyncpg.CheckViolationError)  # no credit by "charge"
        assert [r.status for i, r in enumerate(results) if i != 2] == ["settled"] * 5
        await ledger.settle(pool, agent_id, holds[2].hold_id, realized_microcents=0,
                            input_tokens=0, output_tokens=0, termination_reason="complete")
        await assert_ledger_invariants(pool, agent_id)
    finally:
        await batcher.close()
