"""Budget policies in the ledger (DESIGN §11): periods, groups, rate limits, allowlists,
alerts, tenant ceilings — on the real database, with the clock driven by the tests."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest

from spendguard_proxy import groups, ledger, tenants
from spendguard_proxy.webhooks import store
from spendguard_proxy.errors import (
    BudgetLocked,
    InsufficientBudget,
    ModelNotAllowed,
    NotFound,
    RateLimited,
)
from tests.invariants import (
    assert_group_invariants,
    assert_ledger_invariants,
    assert_tenant_invariants,
)
from tests.ledger.helpers import T, new_agent

CENT = ledger.MICROCENTS_PER_CENT
DAY1 = datetime(2031, 3, 9, 23, 59, 0, tzinfo=UTC)  # a Sunday
DAY2 = DAY1 + timedelta(minutes=2)
FLAT = Fraction(0)  # calls of a fixed price: the figures stay easy to follow


async def _spend(pool, agent_id, cents: int, *, now=None, model="test", run_id=None):
    res = await ledger.reserve(
        pool, _req(agent_id, fixed=cents * CENT, model=model, run_id=run_id), ttl_s=600,
        now=now,
    )
    return await ledger.settle(
        pool, agent_id, res.hold_id, realized_microcents=cents * CENT, input_tokens=10,
        output_tokens=0, termination_reason="complete", now=now,
    )


def _req(agent_id, *, fixed=CENT, rate=FLAT, max_tokens=100, model="test", input_tokens=10,
         run_id=None):
    return ledger.ReserveRequest(
        tenant_id=T, agent_id=agent_id, run_id=run_id or uuid.uuid4(), fixed_microcents=fixed,
        output_rate=rate, max_tokens=max_tokens, provider="openai", model=model,
        input_tokens=input_tokens,
    )


async def _policy(pool, agent_id, limit_cents=100, now=None, **policy):
    return await ledger.set_budget(pool, T, agent_id, hard_limit_cents=limit_cents,
                                   policy=policy, now=now)


# ---------------------------------------------------------------- periods


async def test_daily_budget_resets_once_at_the_boundary(pool):
    agent_id = await new_agent(pool, limit_cents=10)
    await _policy(pool, agent_id, 10, now=DAY1, period="daily")
    await _spend(pool, agent_id, 7, now=DAY1)
    with pytest.raises(InsufficientBudget):
        await _spend(pool, agent_id, 4, now=DAY1)
    # Two replicas' reserves race on the first call of the new day: one reset.
    await asyncio.gather(_spend(pool, agent_id, 1, now=DAY2), _spend(pool, agent_id, 1, now=DAY2))
    budget = await ledger.get_budget(pool, T, agent_id, now=DAY2)
    assert budget["remaining_cents"] == 8
    assert budget["period_spent_microcents"] == 2 * CENT
    assert budget["period_resets_at"] == "2031-03-11T00:00:00Z"
    resets = await pool.fetch(
        "SELECT delta_microcents FROM ledger_entries WHERE agent_id = $1 AND kind ="
        " 'period_reset'", agent_id)
    assert [r["delta_microcents"] for r in resets] == [7 * CENT]
    await assert_ledger_invariants(pool, agent_id)


async def test_weekly_and_monthly_periods_start_on_monday_and_the_first(pool):
    agent_id = await new_agent(pool)
    weekly = await _policy(pool, agent_id, now=DAY1, period="weekly")
    assert weekly["period_resets_at"] == "2031-03-10T00:00:00Z"  # the Monday after
    monthly = await _policy(pool, agent_id, now=DAY1, period="monthly")
    assert monthly["period_resets_at"] == "2031-04-01T00:00:00Z"
    cleared = await _policy(pool, agent_id, now=DAY1, period=None)
    assert cleared["period"] == "none" and cleared["period_resets_at"] is None


async def test_a_call_in_flight_across_the_boundary_keeps_its_hold(pool):
    agent_id = await new_agent(pool, limit_cents=10)
    await _policy(pool, agent_id, 10, now=DAY1, period="daily")
    await _spend(pool, agent_id, 3, now=DAY1)
    flying = await ledger.reserve(pool, _req(agent_id, fixed=6 * CENT), ttl_s=600, now=DAY1)
    # The reset happens by a read on day 2: remaining back to the limit, the hold still live.
    budget = await ledger.get_budget(pool, T, agent_id, now=DAY2)
    assert budget["remaining_cents"] == 10 and budget["locked_cents"] == 6
    await ledger.settle(pool, agent_id, flying.hold_id, realized_microcents=5 * CENT,
                        input_tokens=1, output_tokens=1, termination_reason="complete",
                        now=DAY2)
    budget = await ledger.get_budget(pool, T, agent_id, now=DAY2)
    assert budget["remaining_cents"] == 5 and budget["period_spent_microcents"] == 5 * CENT
    await assert_ledger_invariants(pool, agent_id)


async def test_the_sweeper_resets_budgets_nobody_calls(pool):
    agent_id = await new_agent(pool, limit_cents=10)
    await _policy(pool, agent_id, 10, now=DAY1, period="daily")
    await _spend(pool, agent_id, 4, now=DAY1)
    await ledger.sweep_expired_holds(pool, now=DAY2)
    row = await pool.fetchrow("SELECT remaining_microcents FROM budgets WHERE agent_id = $1",
                              agent_id)
    assert row["remaining_microcents"] == 10 * CENT


# ---------------------------------------------------------------- groups


async def _group(pool, limit_cents, *agents, **kw):
    group = await groups.create_group(pool, T, name="team", hard_limit_cents=limit_cents, **kw)
    group_id = uuid.UUID(group["group_id"])
    for agent_id in agents:
        await _policy(pool, agent_id, 100, group_id=group_id)
    return group_id


async def test_a_group_caps_its_agents_together(pool):
    a, b, c = [await new_agent(pool, limit_cents=100) for _ in range(3)]
    group_id = await _group(pool, 10, a, b, c)
    await _spend(pool, a, 4)
    await _spend(pool, b, 4)
    with pytest.raises(InsufficientBudget, match="budget group"):
        await _spend(pool, c, 3)
    await _spend(pool, c, 2)
    group = await groups.get_group(pool, T, group_id)
    assert group["remaining_cents"] == 0
    assert sorted(group["agent_ids"]) == sorted(str(x) for x in (a, b, c))
    for agent_id in (a, b, c):
        await assert_ledger_invariants(pool, agent_id)
    figures = await assert_group_invariants(pool, group_id)
    assert figures["charges"] == 10 * CENT


async def test_a_charge_beyond_the_group_is_overrun_on_both_ledgers(pool):
    a, b = await new_agent(pool), await new_agent(pool)
    group_id = await _group(pool, 10, a, b)
    held_by_b = await ledger.reserve(pool, _req(b, fixed=4 * CENT), ttl_s=600)
    res = await ledger.reserve(pool, _req(a, fixed=2 * CENT), ttl_s=600)
    # The provider billed 9 ¢: a's hold (2) + the group's unreserved (10 - 2 - 4 = 4) = 6.
    st = await ledger.settle(pool, a, res.hold_id, realized_microcents=9 * CENT,
                             input_tokens=1, output_tokens=1, termination_reason="complete")
    assert st.charged_microcents == 6 * CENT and st.overrun_microcents == 3 * CENT
    await ledger.settle(pool, b, held_by_b.hold_id, realized_microcents=4 * CENT,
                        input_tokens=1, output_tokens=1, termination_reason="complete")
    await assert_group_invariants(pool, group_id)
    await assert_ledger_invariants(pool, a)


async def test_group_membership_and_deletion_wait_for_calls_in_flight(pool):
    a = await new_agent(pool)
    group_id = await _group(pool, 10, a)
    res = await ledger.reserve(pool, _req(a), ttl_s=600)
    with pytest.raises(BudgetLocked):
        await _policy(pool, a, group_id=None)
    with pytest.raises(BudgetLocked):
        await groups.delete_group(pool, T, group_id)
    await ledger.settle(pool, a, res.hold_id, realized_microcents=CENT, input_tokens=1,
                        output_tokens=1, termination_reason="complete")
    assert (await groups.delete_group(pool, T, group_id))["deleted"]
    assert (await ledger.get_budget(pool, T, a))["group_id"] is None
    with pytest.raises(NotFound):
        await groups.get_group(pool, T, group_id)


async def test_another_tenants_group_is_not_found(pool):
    other = uuid.UUID((await tenants.create_tenant(pool, "other"))["tenant_id"])
    theirs = await groups.create_group(pool, other, name="theirs", hard_limit_cents=5)
    agent_id = await new_agent(pool)
    with pytest.raises(NotFound):
        await _policy(pool, agent_id, group_id=uuid.UUID(theirs["group_id"]))
    with pytest.raises(NotFound):
        await groups.get_group(pool, T, uuid.UUID(theirs["group_id"]))
    with pytest.raises(NotFound):
        await groups.update_group(pool, T, uuid.UUID(theirs["group_id"]), {"name": "mine"})


async def test_an_expired_hold_is_charged_in_both_budgets(pool):
    a = await new_agent(pool)
    group_id = await _group(pool, 10, a)
    await ledger.reserve(pool, _req(a, fixed=3 * CENT), ttl_s=1, now=DAY1)
    await ledger.sweep_expired_holds(pool, now=DAY1 + timedelta(seconds=5))
    group = await groups.get_group(pool, T, group_id)
    assert group["remaining_cents"] == 7 and group["locked_cents"] == 0
    await assert_group_invariants(pool, group_id)


# ---------------------------------------------------------------- rate limits


async def test_rpm_limit_answers_with_retry_after(pool):
    agent_id = await new_agent(pool)
    await _policy(pool, agent_id, rpm_limit=2)
    await _spend(pool, agent_id, 1, now=DAY1)
    await _spend(pool, agent_id, 1, now=DAY1)
    with pytest.raises(RateLimited) as refused:
        await _spend(pool, agent_id, 1, now=DAY1)
    assert refused.value.retry_after_s == 30  # one slot frees every 60 s / 2
    assert refused.value.headers() == {"retry-after": "30"}
    await _spend(pool, agent_id, 1, now=DAY1 + timedelta(seconds=30))
    await assert_ledger_invariants(pool, agent_id)


async def test_tpm_limit_clamps_output_then_refunds_unused_tokens(pool):
    agent_id = await new_agent(pool)
    await _policy(pool, agent_id, tpm_limit=1000)
    first = await ledger.reserve(pool, _req(agent_id, input_tokens=600, max_tokens=4000),
                                 ttl_s=600, now=DAY1)
    assert first.max_tokens == 400  # the window's 1,000 tokens less the 600 of input
    with pytest.raises(RateLimited) as refused:
        await ledger.reserve(pool, _req(agent_id, input_tokens=10), ttl_s=600, now=DAY1)
    assert refused.value.retry_after_s == 1
    # The call used 100 output tokens of its 400: 300 go back to the window.
    await ledger.settle(pool, agent_id, first.hold_id, realized_microcents=CENT,
                        input_tokens=600, output_tokens=100, termination_reason="complete",
                        now=DAY1)
    again = await ledger.reserve(pool, _req(agent_id, input_tokens=100, max_tokens=4000),
                                 ttl_s=600, now=DAY1)
    assert again.max_tokens == 200
    with pytest.raises(RateLimited, match="whole tpm_limit") as too_big:
        await ledger.reserve(pool, _req(agent_id, input_tokens=1000), ttl_s=600, now=DAY1)
    assert too_big.value.retry_after_s is None


# ---------------------------------------------------------------- allowlist


async def test_a_model_outside_the_allowlist_reserves_nothing(pool):
    agent_id = await new_agent(pool)
    await _policy(pool, agent_id, allowed_models=["gpt-5*", "claude-?-opus"])
    await _spend(pool, agent_id, 1, model="gpt-5-mini")
    await _spend(pool, agent_id, 1, model="claude-4-opus")
    for model in ("gpt-4o", "claude-45-opus", "gpt_5", "GPT-5"):
        with pytest.raises(ModelNotAllowed):
            await _spend(pool, agent_id, 1, model=model)
    assert (await ledger.get_budget(pool, T, agent_id))["locked_cents"] == 0
    await _policy(pool, agent_id, allowed_models=None)
    await _spend(pool, agent_id, 1, model="gpt-4o")


# ---------------------------------------------------------------- alerts (outbox)


async def _webhook(pool, tenant_id=T, events=None) -> uuid.UUID:
    webhook_id = uuid.uuid4()
    await pool.execute(
        "INSERT INTO webhooks (id, tenant_id, url, events, secret_ciphertext)"
        " VALUES ($1, $2, 'http://127.0.0.1:9/hook', $3, '\\x00')",
        webhook_id, tenant_id, events,
    )
    return webhook_id


async def _events(pool, webhook_id, kind):
    rows = await pool.fetch(
        "SELECT e.data FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id"
        " WHERE d.webhook_id = $1 AND e.type = $2 ORDER BY d.id",
        webhook_id, kind,
    )
    return [r["data"] for r in rows]


async def test_thresholds_fire_once_per_crossing_and_exhaustion_once_per_period(pool):
    webhook_id = await _webhook(pool)
    try:
        agent_id = await new_agent(pool, limit_cents=10)
        await _policy(pool, agent_id, 10, now=DAY1, period="daily",
                      alert_thresholds_pct=[50, 80])
        for _ in range(4):
            await _spend(pool, agent_id, 2, now=DAY1)  # 2, 4, 6 (50 % crossed), 8 (80 %)
        crossed = await _events(pool, webhook_id, "budget.threshold")
        assert [(e["threshold_pct"], e["spent_cents"]) for e in crossed] == [(50, 6), (80, 8)]
        assert crossed[0]["agent_id"] == str(agent_id) and crossed[0]["group_id"] is None
        for _ in range(3):
            with pytest.raises(InsufficientBudget):
                await _spend(pool, agent_id, 5, now=DAY1)
        assert len(await _events(pool, webhook_id, "budget.exhausted")) == 1
        await _spend(pool, agent_id, 6, now=DAY2)  # the new day: 60 % crossed again
        assert len(await _events(pool, webhook_id, "budget.threshold")) == 3
    finally:
        await store.delete_webhook(pool, T, webhook_id)  # and its pending deliveries


async def test_an_expired_hold_that_crosses_a_threshold_alerts_too(pool):
    webhook_id = await _webhook(pool, events=["budget.threshold", "hold.expired"])
    try:
        agent_id = await new_agent(pool, limit_cents=10)
        await _policy(pool, agent_id, 10, alert_thresholds_pct=[50])
        await ledger.reserve(pool, _req(agent_id, fixed=6 * CENT), ttl_s=1, now=DAY1)
        await ledger.sweep_expired_holds(pool, now=DAY1 + timedelta(seconds=5))
        [expired] = await _events(pool, webhook_id, "hold.expired")
        assert expired["charged_microcents"] == 6 * CENT
        [crossed] = await _events(pool, webhook_id, "budget.threshold")
        assert crossed["threshold_pct"] == 50 and crossed["spent_cents"] == 6
    finally:
        await store.delete_webhook(pool, T, webhook_id)  # and its pending deliveries


async def test_no_webhook_no_event_rows(pool):
    agent_id = await new_agent(pool, limit_cents=10)
    await _policy(pool, agent_id, 10, alert_thresholds_pct=[10])
    before = await pool.fetchval("SELECT count(*) FROM webhook_events WHERE tenant_id = $1", T)
    await _spend(pool, agent_id, 5)
    assert await pool.fetchval(
        "SELECT count(*) FROM webhook_events WHERE tenant_id = $1", T) == before


# ---------------------------------------------------------------- tenant ceiling


async def test_a_tenant_ceiling_caps_all_its_agents_in_the_month(pool):
    tenant = await tenants.create_tenant(pool, "capped", monthly_ceiling_cents=10)
    tenant_id = uuid.UUID(tenant["tenant_id"])
    agents = []
    for _ in range(2):
        agent = await ledger.create_agent(pool, tenant_id, "a")
        agents.append(uuid.UUID(agent["agent_id"]))
        await ledger.set_budget(pool, tenant_id, agents[-1], hard_limit_cents=100,
                                concurrency="shared")

    async def spend(agent_id, cents, now):
        res = await ledger.reserve(pool, dataclass_replace(_req(agent_id, fixed=cents * CENT),
                                                           tenant_id=tenant_id),
                                   ttl_s=600, now=now)
        await ledger.settle(pool, agent_id, res.hold_id, realized_microcents=cents * CENT,
                            input_tokens=1, output_tokens=1, termination_reason="complete",
                            now=now)

    await spend(agents[0], 6, DAY1)
    await spend(agents[1], 4, DAY1)
    with pytest.raises(InsufficientBudget, match="monthly ceiling"):
        await spend(agents[1], 1, DAY1)
    await assert_tenant_invariants(pool, tenant_id)
    await spend(agents[1], 5, datetime(2031, 4, 1, tzinfo=UTC))  # a new month
    row = await assert_tenant_invariants(pool, tenant_id)
    assert row["month_spent_microcents"] == 5 * CENT


def dataclass_replace(req, **changes):
    import dataclasses

    return dataclasses.replace(req, **changes)
