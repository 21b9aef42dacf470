"""Model-based test of the policies: the database against tests/ledger/policy_model.py.

Two agents share a group; one has a daily period and an RPM limit, the other a TPM limit; the
group resets daily. The clock moves by seconds, minutes, hours and days. Every reply — granted
tokens and hold, 429 with its Retry-After, 402 with the budget that said no, each settle's
charge and overrun — must equal the model's, and so must every balance after every step.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest

from spendguard_proxy import groups, ledger
from spendguard_proxy.errors import InsufficientBudget, RateLimited
from tests.invariants import assert_group_invariants, assert_ledger_invariants
from tests.ledger.helpers import T
from tests.ledger.policy_model import CENT, Agent, Pot, World, next_midnight

RATES = [Fraction(0), Fraction(1, 3), Fraction(35, 2), Fraction(250)]
STEPS = [timedelta(0), timedelta(seconds=1), timedelta(seconds=7), timedelta(seconds=30),
         timedelta(seconds=61), timedelta(hours=3), timedelta(days=1)]
TTL = timedelta(seconds=120)
START = datetime(2031, 5, 6, 22, 0, tzinfo=UTC)


async def _setup(pool, now):
    group = await groups.create_group(pool, T, name="model", hard_limit_cents=12,
                                      period="daily", now=now)
    group_id = uuid.UUID(group["group_id"])
    policies = [{"period": "daily", "rpm_limit": 3}, {"tpm_limit": 1000}]
    ids, agents = [], []
    for policy in policies:
        agent = await ledger.create_agent(pool, T, "policy-model")
        agent_id = uuid.UUID(agent["agent_id"])
        await ledger.set_budget(pool, T, agent_id, hard_limit_cents=8, concurrency="shared",
                                policy={**policy, "group_id": group_id}, now=now)
        ids.append(agent_id)
        daily = policy.get("period") == "daily"
        agents.append(Agent(Pot(8 * CENT, 8 * CENT, daily, next_midnight(now) if daily else None),
                            rpm=policy.get("rpm_limit"), tpm=policy.get("tpm_limit")))
    world = World(Pot(12 * CENT, 12 * CENT, True, next_midnight(now)), agents)
    return group_id, ids, world


async def _compare(pool, group_id, ids, world: World) -> None:
    group = await pool.fetchrow("SELECT * FROM budget_groups WHERE id = $1", group_id)
    assert (group["remaining_microcents"], group["held_microcents"]) == (
        world.group.remaining, world.group.held)
    for agent_id, agent in zip(ids, world.agents, strict=True):
        row = await pool.fetchrow("SELECT * FROM budgets WHERE agent_id = $1", agent_id)
        assert (row["remaining_microcents"], row["held_microcents"]) == (
            agent.pot.remaining, agent.pot.held)
        assert (row["rpm_tat"], row["tpm_tat"]) == (agent.rpm_tat, agent.tpm_tat)


def _reply_of(exc_or_res):
    if isinstance(exc_or_res, RateLimited):
        kind = "tpm_size" if exc_or_res.retry_after_s is None else None
        return ("rate_limited", kind, exc_or_res.retry_after_s)
    if isinstance(exc_or_res, InsufficientBudget):
        return ("insufficient", "group" if "budget group" in exc_or_res.message else "agent")
    return ("ok", exc_or_res.max_tokens, exc_or_res.hold_microcents)


async def _run(pool, rng: random.Random, steps: int) -> None:
    now = START
    group_id, ids, world = await _setup(pool, now)
    live: list[tuple[uuid.UUID, int]] = []
    for _ in range(steps):
        op = rng.choice(["reserve"] * 4 + ["settle"] * 3 + ["clock"] * 2
                        + ["sweep", "agent_budget", "group_budget"])
        if op == "clock":
            now += rng.choice(STEPS)
        elif op == "reserve":
            i = rng.randrange(len(ids))
            fixed, rate = rng.randint(0, CENT), rng.choice(RATES)
            wanted, input_tokens = rng.randint(1, 3000), rng.choice([10, 300, 900, 1200])
            expect = world.reserve(i, now, fixed=fixed, rate=rate, max_tokens=wanted,
                                   input_tokens=input_tokens, ttl=TTL)
            req = ledger.ReserveRequest(T, ids[i], uuid.uuid4(), fixed, rate, wanted,
                                        input_tokens=input_tokens)
            try:
                got = await ledger.reserve(pool, req, ttl_s=int(TTL.total_seconds()), now=now)
            except (RateLimited, InsufficientBudget) as exc:
                got = exc
            reply = _reply_of(got)
            if expect[0] == "rate_limited" and expect[1] != "tpm_size":
                expect = ("rate_limited", None, expect[2])
            assert reply == expect[:3], (reply, expect)
            if reply[0] == "ok":
                world.add_hold(got.hold_id, i, expect)
                live.append((got.hold_id, i))
        elif op == "settle" and live:
            hold_id, i = live.pop(rng.randrange(len(live)))
            amount = world.holds[hold_id].amount if hold_id in world.holds else CENT
            realized = rng.choice([0, rng.randint(0, amount), rng.randint(0, 3 * CENT)])
            used = rng.randint(0, 1500)
            expect = world.settle(hold_id, now, realized, used)
            st = await ledger.settle(pool, ids[i], hold_id, realized_microcents=realized,
                                     input_tokens=used, output_tokens=0,
                                     termination_reason="complete", now=now)
            assert st.status == expect[0]
            assert st.charged_microcents == expect[1]
            if expect[0] == "settled":
                assert st.overrun_microcents == expect[2]
        elif op == "sweep":
            i = rng.randrange(len(ids))
            assert await pool.fetchval(ledger.SWEEP_AGENT_SQL, ids[i], now) == world.sweep(i, now)
        elif op == "agent_budget":
            i, limit, topup = rng.randrange(len(ids)), rng.randint(1, 10), rng.randint(0, 5)
            await ledger.set_budget(pool, T, ids[i], hard_limit_cents=limit, topup_cents=topup,
                                    now=now)
            world.set_agent(i, now, limit * CENT, topup * CENT)
        elif op == "group_budget":
            limit, topup = rng.randint(1, 15), rng.randint(0, 8)
            await groups.update_group(pool, T, group_id,
                                      {"hard_limit_cents": limit, "topup_cents": topup}, now=now)
            world.set_group(now, limit * CENT, topup * CENT)
        await _compare(pool, group_id, ids, world)
    for agent_id in ids:
        await assert_ledger_invariants(pool, agent_id)
    await assert_group_invariants(pool, group_id)


@pytest.mark.parametrize("seed", range(6))
async def test_every_policy_reply_matches_the_model(pool, seed):
    await _run(pool, random.Random(seed), steps=120)
