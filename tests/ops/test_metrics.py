"""/metrics on a real server: request counts by route pattern, money counters, resource gauges."""

from __future__ import annotations

import uuid

from prometheus_client.parser import text_string_to_metric_families

from spendguard_proxy import ledger
from spendguard_proxy.server.keys import METRICS, SETTINGS
from spendguard_proxy.server.metrics import Metrics
from tests.ops.conftest import _start, new_tenant


async def _scrape(server) -> dict[tuple[str, tuple], float]:
    async with server.session.get(server.url("/metrics")) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = await resp.text()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def _value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_requests_are_counted_by_route_pattern_and_status(sidecar):
    before = await _scrape(sidecar)
    agent = uuid.uuid4()
    for _ in range(3):
        async with sidecar.session.get(sidecar.url("/health")) as resp:
            assert resp.status == 200
    # Two different ids, one pattern: the label must not grow with the ids.
    for _ in range(2):
        async with sidecar.session.get(sidecar.url(f"/v1/agents/{uuid.uuid4()}")) as resp:
            assert resp.status == 404
    async with sidecar.session.get(sidecar.url(f"/no/such/route/{agent}")) as resp:
        assert resp.status == 404

    after = await _scrape(sidecar)
    total = "spendguard_http_requests_total"

    def delta(**labels):
        return _value(after, total, **labels) - _value(before, total, **labels)

    assert delta(method="GET", route="/health", status="200") == 3
    assert delta(method="GET", route="/v1/agents/{agent_id}", status="404") == 2
    assert delta(method="GET", route="unmatched", status="404") == 1
    assert not any(str(agent) in str(key) for key in after), "raw paths leaked into labels"
    count = "spendguard_http_request_duration_seconds_count"
    assert _value(after, count, method="GET", route="/health") >= 3


async def test_relay_counters_and_resource_gauges_are_exposed(sidecar):
    metrics: Metrics = sidecar.app[METRICS]
    before = await _scrape(sidecar)
    metrics.reservation("openai")
    metrics.reservation("openai")
    metrics.rejected(402)
    metrics.rejected(409)
    metrics.charged("openai", 1_234_567, 0)
    metrics.charged("anthropic", 10, 5)
    metrics.cutoff("gemini")
    metrics.upstream_latency("openai", 0.2)
    after = await _scrape(sidecar)

    def delta(name, **labels):
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert delta("spendguard_reservations_total", provider="openai") == 2
    assert delta("spendguard_budget_rejections_total", status="402") == 1
    assert delta("spendguard_budget_rejections_total", status="409") == 1
    assert delta("spendguard_charged_microcents_total", provider="openai") == 1_234_567
    assert delta("spendguard_overrun_microcents_total", provider="anthropic") == 5
    assert delta("spendguard_overruns_total", provider="anthropic") == 1
    assert delta("spendguard_overruns_total", provider="openai") == 0
    assert delta("spendguard_stream_cutoffs_total", provider="gemini") == 1
    assert delta("spendguard_upstream_latency_seconds_count", provider="openai") == 1

    assert _value(after, "spendguard_pricing_table_age_seconds") > 0
    open_conns = _value(after, "spendguard_db_pool_connections", state="open")
    idle = _value(after, "spendguard_db_pool_connections", state="idle")
    assert open_conns >= 1
    assert _value(after, "spendguard_db_pool_connections", state="in_use") == open_conns - idle
    max_size = sidecar.app[SETTINGS].db_pool_max_size
    assert _value(after, "spendguard_db_pool_connections", state="max") == max_size


async def test_a_relayed_call_moves_the_money_counters(relaying, pool):
    agent = await ledger.create_agent(pool, ledger.LOCAL_TENANT_ID, "metrics")
    unbudgeted = await ledger.create_agent(pool, ledger.LOCAL_TENANT_ID, "metrics-402")
    await ledger.set_budget(pool, ledger.LOCAL_TENANT_ID, uuid.UUID(agent["agent_id"]),
                            hard_limit_cents=100, topup_cents=None, concurrency=None)
    body = {"model": "gpt-4o-mini", "max_tokens": 32,
            "messages": [{"role": "user", "content": "hello"}]}
    before = await _scrape(relaying)
    for agent_id, status in ((agent["agent_id"], 200), (unbudgeted["agent_id"], 402)):
        async with relaying.session.post(relaying.url("/v1/chat/completions"), json=body,
                                         headers={"x-cynsta-agent-id": agent_id}) as resp:
            assert resp.status == status, await resp.text()
    after = await _scrape(relaying)

    def delta(name, **labels):
        return _value(after, name, **labels) - _value(before, name, **labels)

    budget = await ledger.get_budget(pool, ledger.LOCAL_TENANT_ID, uuid.UUID(agent["agent_id"]))
    spent = 100 * ledger.MICROCENTS_PER_CENT - budget["remaining_microcents"]
    assert spent > 0
    assert delta("spendguard_reservations_total", provider="openai") == 1
    assert delta("spendguard_charged_microcents_total", provider="openai") == spent
    assert delta("spendguard_overrun_microcents_total", provider="openai") == 0
    assert delta("spendguard_budget_rejections_total", status="402") == 1
    assert delta("spendguard_upstream_latency_seconds_count", provider="openai") == 1
    route = "/v1/chat/completions"
    assert delta("spendguard_http_requests_total", method="POST", route=route, status="200") == 1
    assert delta("spendguard_http_requests_total", method="POST", route=route, status="402") == 1


def test_each_app_has_its_own_registry():
    a, b = Metrics(), Metrics()
    a.reservation("openai")
    assert b"spendguard_reservations_total" in a.exposition()
    assert b'provider="openai"' not in b.exposition()


async def test_hosted_metrics_need_the_operators_token(hosted, hosted_settings, dsn, pool):
    tenant = await new_tenant(pool)
    tenant_key = {"Authorization": f"Bearer {tenant.api_key}"}
    async with hosted.session.get(hosted.url("/metrics"), headers=tenant_key) as resp:
        assert resp.status == 404  # off: no CAP_METRICS_TOKEN on this deployment
    runner, server = await _start(hosted_settings.model_copy(
        update={"metrics_token": "scrape-me"}), dsn)
    try:
        for headers in ({}, tenant_key, {"Authorization": "Bearer scrape-m"}):
            async with server.session.get(server.url("/metrics"), headers=headers) as resp:
                assert resp.status == 401, headers  # a tenant's key is not the scrape token
        async with server.session.get(server.url("/metrics"),
                                      headers={"Authorization": "Bearer scrape-me"}) as resp:
            assert resp.status == 200
            assert "spendguard_charged_microcents_total" in await resp.text()
    finally:
        await server.session.close()
        await runner.cleanup()
