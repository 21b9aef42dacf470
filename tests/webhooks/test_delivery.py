"""Delivery: signed, retried with backoff, every attempt recorded, never twice at once."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import UTC, datetime, timedelta

from standardwebhooks import Webhook

from spendguard_proxy.webhooks import store
from spendguard_proxy.webhooks.secret_box import box_for
from spendguard_proxy.webhooks.worker import DeliveryWorker, RetryPolicy, delivery_session
from tests.webhooks.conftest import (
    emit,
    new_tenant_id,
    pending_count,
    running_receiver,
    running_workers,
    threshold_data,
    wait_until,
)


async def _webhook(pool, settings, tenant_id, url, events=None) -> dict:
    return await store.create_webhook(pool, tenant_id, url, events, box_for(settings), 20)


async def _deliveries(pool, webhook_id: str) -> list[dict]:
    rows = await pool.fetch(
        "SELECT d.id, d.event_id, d.state, d.attempts, d.last_status, d.last_error,"
        " (SELECT count(*) FROM webhook_attempts a WHERE a.delivery_id = d.id) AS recorded"
        " FROM webhook_deliveries d WHERE d.webhook_id = $1 ORDER BY d.id", webhook_id)
    return [dict(r) for r in rows]


async def test_retries_through_errors_and_a_timeout_then_delivers_each_event_once(
    wh_pool, wh_settings
):
    tenant = await new_tenant_id(wh_pool)
    async with running_receiver(script=[500, 500, "stall"], after=200) as receiver:
        hook = await _webhook(wh_pool, wh_settings, tenant, receiver.base_url + "/hook")
        events = [await emit(wh_pool, tenant, "budget.threshold", threshold_data(p))
                  for p in (50, 80, 100)]
        assert all(events) and len(set(events)) == 3
        async with running_workers(wh_pool, wh_settings):
            await wait_until(lambda: _settled(wh_pool, hook["webhook_id"]))

    # Each event reached the receiver with a 2xx exactly once (after dedup by webhook-id:
    # here no event was even sent twice successfully).
    assert sorted(receiver.delivered_ids()) == sorted(events)
    assert Counter(receiver.delivered_ids()) == Counter(events)
    # Every request the receiver saw verifies with the secret, and carries the event.
    verifier = Webhook(hook["secret"])
    for request in receiver.requests:
        payload = verifier.verify(request.body, request.headers)
        assert payload["id"] == request.headers["webhook-id"]
        assert payload["type"] == "budget.threshold"
        assert set(payload) == {"id", "type", "created_at", "data"}
        assert payload["data"]["hard_limit_cents"] == 100
    # Each attempt is recorded: 2 × 500, one timeout, then a 200 per event.
    attempts = await wh_pool.fetch(
        "SELECT a.status_code, a.error, a.duration_ms FROM webhook_attempts a"
        " JOIN webhook_deliveries d ON d.id = a.delivery_id WHERE d.webhook_id = $1",
        hook["webhook_id"])
    assert len(attempts) == len(receiver.requests) == 6
    outcomes = Counter(a["status_code"] or a["error"] for a in attempts)
    assert {a["error"] for a in attempts if a["status_code"] == 500} == {"HTTP 500"}
    assert outcomes == {500: 2, 200: 3, "timed out after 0.5 s": 1}
    timed_out = next(a for a in attempts if a["status_code"] is None)
    assert timed_out["duration_ms"] >= 450
    for d in await _deliveries(wh_pool, hook["webhook_id"]):
        assert d["state"] == "delivered" and d["last_error"] is None
        assert d["recorded"] == d["attempts"]  # one attempt row per claim


async def _settled(pool, webhook_id) -> bool:
    return await pending_count(pool, [webhook_id]) == 0


async def test_two_workers_never_send_one_delivery_twice_at_once(wh_pool, wh_settings):
    tenant = await new_tenant_id(wh_pool)
    # Slow answers keep deliveries in flight while the other worker polls; every third
    # request fails, so retries are claimed again too.
    script = [200, 200, 500] * 20
    async with running_receiver(script=script, after=200, delay_s=0.03) as receiver:
        hooks = [await _webhook(wh_pool, wh_settings, tenant, f"{receiver.base_url}/{n}")
                 for n in ("a", "b")]
        events = [await emit(wh_pool, tenant, "call.overrun", {"n": n}) for n in range(20)]
        async with running_workers(wh_pool, wh_settings, count=2) as workers:
            counted = [_count_attempts(w) for w in workers]
            await wait_until(lambda: _all_settled(wh_pool, hooks))

    assert receiver.overlaps == []  # no (webhook, event) was ever in flight twice
    for hook, path in zip(hooks, ("/a", "/b"), strict=True):
        assert Counter(receiver.delivered_ids(path)) == Counter(events)
    assert all(c["n"] > 0 for c in counted), counted  # both workers took part
    rows = await wh_pool.fetch(
        "SELECT state, count(*) FROM webhook_deliveries WHERE webhook_id = ANY($1::uuid[])"
        " GROUP BY state", [h["webhook_id"] for h in hooks])
    assert {r["state"]: r["count"] for r in rows} == {"delivered": 40}


def _count_attempts(worker: DeliveryWorker) -> dict:
    counter = {"n": 0}
    original = worker.attempt

    async def counting(claim):
        counter["n"] += 1
        return await original(claim)

    worker.attempt = counting
    return counter


async def _all_settled(pool, hooks) -> bool:
    return await pending_count(pool, [h["webhook_id"] for h in hooks]) == 0


async def test_an_outcome_after_the_lease_ran_out_leaves_the_new_claim_alone(
    wh_pool, wh_settings
):
    """Worker A claims and hangs past its lease; B claims the row again. A's late failure is
    recorded as an attempt but must not shorten B's lease (a third worker would then post
    while B is posting), nor change the state B records."""
    tenant = await new_tenant_id(wh_pool)
    async with running_receiver(script=[503], after=200) as receiver:
        hook = await _webhook(wh_pool, wh_settings, tenant, receiver.base_url)
        await emit(wh_pool, tenant, "hold.expired", {"hold_id": "h"})
        async with delivery_session(wh_settings) as session:
            a, b, c = (DeliveryWorker(wh_pool, wh_settings, session) for _ in range(3))
            [claim_a] = await a.claim(10)
            assert await b.claim(10) == []  # leased: nobody else may take it
            await wh_pool.execute(  # the lease runs out (A hung)
                "UPDATE webhook_deliveries SET next_attempt_at = now() - interval '1 s'"
                " WHERE id = $1", claim_a.delivery_id)
            [claim_b] = await b.claim(10)
            assert claim_b.attempt == claim_a.attempt + 1
            assert not (await a.attempt(claim_a)).delivered  # A's late 503
            assert await c.claim(10) == []  # B's lease still holds
            assert (await b.attempt(claim_b)).delivered
    [d] = await _deliveries(wh_pool, hook["webhook_id"])
    assert d["recorded"] == 2 and d["attempts"] == 2
    assert d["state"] == "delivered" and d["last_status"] == 200


async def test_a_redirect_is_a_failed_attempt_and_its_location_is_never_contacted(
    wh_pool, wh_settings
):
    tenant = await new_tenant_id(wh_pool)
    async with running_receiver() as elsewhere:
        target = elsewhere.base_url + "/stolen"
        async with running_receiver(script=[("redirect", target)], after=200) as receiver:
            hook = await _webhook(wh_pool, wh_settings, tenant, receiver.base_url)
            await emit(wh_pool, tenant, "call.cutoff", {"agent_id": "x"})
            async with delivery_session(wh_settings) as session:
                worker = DeliveryWorker(wh_pool, wh_settings, session)
                assert await worker.run_once() == 1
    assert elsewhere.requests == []
    [d] = await _deliveries(wh_pool, hook["webhook_id"])
    assert d["state"] == "pending" and d["last_status"] == 302  # retried later, as any error
    assert d["last_error"] == f"HTTP 302 redirect to {target} not followed"


async def test_retries_stop_when_the_next_try_would_pass_the_maximum_age(
    wh_pool, wh_settings
):
    tenant = await new_tenant_id(wh_pool)
    settings = wh_settings.model_copy(update={"webhook_max_age_s": 3600.0,
                                              "webhook_retry_base_s": 600.0,
                                              "webhook_retry_max_s": 3600.0})
    async with running_receiver(after=500) as receiver:
        hook = await _webhook(wh_pool, settings, tenant, receiver.base_url)
        await emit(wh_pool, tenant, "budget.exhausted", {"agent_id": "x"})
        clock = _Clock(datetime.now(UTC))
        async with delivery_session(settings) as session:
            worker = DeliveryWorker(wh_pool, settings, session, clock=clock, rng=lambda: 1.0)
            waits = []
            while await worker.run_once():
                [d] = await _deliveries(wh_pool, hook["webhook_id"])
                if d["state"] != "pending":
                    break
                due = await wh_pool.fetchval("SELECT next_attempt_at FROM webhook_deliveries"
                                             " WHERE id = $1", d["id"])
                waits.append(round((due - clock.now).total_seconds()))
                clock.now = due
    # 600, 1200, 2400 s: the fourth try would come after the hour → failed after 3 attempts
    # (+ the little time each POST took, rounded away).
    assert waits == [600, 1200]
    [d] = await _deliveries(wh_pool, hook["webhook_id"])
    assert d["state"] == "failed" and d["recorded"] == 3 and d["last_status"] == 500
    assert len(receiver.requests) == 3


class _Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_backoff_doubles_from_the_base_up_to_the_cap_with_jitter():
    policy = RetryPolicy(base_s=5, max_s=3600, max_age_s=86400)
    assert [policy.delay_s(n, 1.0) for n in (1, 2, 3, 4)] == [5, 10, 20, 40]
    assert policy.delay_s(20, 1.0) == 3600 and policy.delay_s(10_000, 1.0) == 3600
    assert policy.delay_s(3, 0.0) == 10  # jitter keeps at least half
    # About 30 tries fit into a day with the defaults.
    total, n = 0.0, 0
    while total < 86400:
        n += 1
        total += policy.delay_s(n, 1.0)
    assert 25 <= n <= 35


async def test_deleting_a_webhook_ends_its_pending_deliveries(wh_pool, wh_settings):
    tenant = await new_tenant_id(wh_pool)
    async with running_receiver() as receiver:
        hook = await _webhook(wh_pool, wh_settings, tenant, receiver.base_url)
        await emit(wh_pool, tenant, "call.cutoff", {"agent_id": "x"})
        await store.delete_webhook(wh_pool, tenant, hook["webhook_id"])
        assert await emit(wh_pool, tenant, "call.cutoff", {"agent_id": "y"}) is None
        async with delivery_session(wh_settings) as session:
            assert await DeliveryWorker(wh_pool, wh_settings, session).run_once() == 0
    assert receiver.requests == []
    [d] = await _deliveries(wh_pool, hook["webhook_id"])
    assert d["state"] == "failed" and d["last_error"] == "webhook deleted"


async def test_subscriptions_filter_events_and_the_body_is_the_event(wh_pool, wh_settings):
    tenant = await new_tenant_id(wh_pool)
    async with running_receiver() as receiver:
        only = await _webhook(wh_pool, wh_settings, tenant, receiver.base_url + "/only",
                              ["call.overrun"])
        every = await _webhook(wh_pool, wh_settings, tenant, receiver.base_url + "/all")
        overrun = {"agent_id": "a", "group_id": None, "hold_id": "h", "run_id": "r",
                   "model": "gpt-5", "charged_microcents": 10, "overrun_microcents": 3}
        e1 = await emit(wh_pool, tenant, "call.overrun", overrun)
        e2 = await emit(wh_pool, tenant, "budget.threshold", threshold_data())
        async with delivery_session(wh_settings) as session:
            assert await DeliveryWorker(wh_pool, wh_settings, session).run_once() == 3
    assert receiver.delivered_ids("/only") == [e1]
    assert sorted(receiver.delivered_ids("/all")) == sorted([e1, e2])
    request = next(r for r in receiver.requests if r.path == "/only")
    body = json.loads(request.body)
    assert body["data"] == overrun and body["type"] == "call.overrun"
    created = datetime.fromisoformat(body["created_at"])
    assert abs(created - datetime.now(UTC)) < timedelta(minutes=1)
    assert request.headers["Content-Type"] == "application/json"
    assert {only["webhook_id"], every["webhook_id"]}


async def test_a_database_outage_pauses_the_loop_without_killing_it(wh_dsn, wh_settings):
    """The worker outlives a closed pool (every claim fails) and goes on polling."""
    import asyncpg

    from spendguard_proxy.db.pool import init_connection

    pool = await asyncpg.create_pool(wh_dsn, min_size=1, max_size=1, init=init_connection)
    async with running_workers(pool, wh_settings) as [worker]:
        await pool.close()  # every claim now raises InterfaceError
        await asyncio.sleep(0.2)
        assert worker._database_down
