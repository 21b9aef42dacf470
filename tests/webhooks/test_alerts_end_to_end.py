"""Issue 12's "done when" for alerts: a budget with a 50 % threshold, calls that cross it, and a
receiver that fails twice — exactly one signed budget.threshold event arrives, written by the
ledger transaction that crossed it and delivered by the worker on its third attempt."""

from __future__ import annotations

import uuid
from fractions import Fraction

from standardwebhooks import Webhook

from spendguard_proxy import ledger
from spendguard_proxy.webhooks import store
from spendguard_proxy.webhooks.secret_box import box_for
from tests.invariants import assert_ledger_invariants
from tests.webhooks.conftest import (
    new_tenant_id,
    pending_count,
    running_receiver,
    running_workers,
    wait_until,
)

CENT = ledger.MICROCENTS_PER_CENT


async def _call(pool, tenant_id, agent_id, cents: int) -> None:
    res = await ledger.reserve(pool, ledger.ReserveRequest(
        tenant_id, agent_id, uuid.uuid4(), cents * CENT, Fraction(0), 100, model="gpt-4o"),
        ttl_s=60)
    await ledger.settle(pool, agent_id, res.hold_id, realized_microcents=cents * CENT,
                        input_tokens=10, output_tokens=10, termination_reason="complete")


async def test_a_50_percent_threshold_is_one_signed_event_after_two_failures(
    wh_pool, wh_settings
):
    tenant_id = await new_tenant_id(wh_pool)
    agent = await ledger.create_agent(wh_pool, tenant_id, "alerted")
    agent_id = uuid.UUID(agent["agent_id"])
    await ledger.set_budget(wh_pool, tenant_id, agent_id, hard_limit_cents=10,
                            concurrency="shared", policy={"alert_thresholds_pct": [50]})
    async with running_receiver(script=[500, 500], after=200) as receiver:
        hook = await store.create_webhook(wh_pool, tenant_id, receiver.base_url + "/hook",
                                          None, box_for(wh_settings), 20)
        for _ in range(3):  # 3, 6 (crosses 50 %), 9 ¢: one crossing
            await _call(wh_pool, tenant_id, agent_id, 3)
        async with running_workers(wh_pool, wh_settings):
            await wait_until(lambda: _done(wh_pool, hook["webhook_id"]))

    assert [r.answered for r in receiver.requests] == [500, 500, 200]
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1
    verifier = Webhook(hook["secret"])
    payload = verifier.verify(receiver.requests[-1].body, receiver.requests[-1].headers)
    assert payload["type"] == "budget.threshold"
    assert payload["data"]["agent_id"] == str(agent_id)
    assert payload["data"]["threshold_pct"] == 50
    assert payload["data"]["spent_cents"] == 6
    assert payload["data"]["group_id"] is None
    assert receiver.delivered_ids() == [payload["id"]]
    await assert_ledger_invariants(wh_pool, agent_id)


async def _done(pool, webhook_id) -> bool:
    return await pending_count(pool, [webhook_id]) == 0
