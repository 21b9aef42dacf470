"""OpenTelemetry traces on a real server: spans exported over OTLP/HTTP to a receiver on
127.0.0.1, with the GenAI semantic-convention attributes and the settled money."""

from __future__ import annotations

import asyncio
import gzip
import sys
import uuid

import pytest
from aiohttp import web

pytest.importorskip("opentelemetry.sdk.trace")
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from spendguard_proxy import ledger
from spendguard_proxy.errors import SpendGuardError
from spendguard_proxy.server.app import build_app
from spendguard_proxy.server.telemetry import TRACING
from spendguard_proxy.settings import SettingsError, load_settings
from tests.ops.conftest import _start

SPAN_KIND_SERVER, SPAN_KIND_CLIENT = 2, 3  # opentelemetry.proto.trace.v1.Span.SpanKind
STATUS_ERROR = 2


@pytest.fixture
async def otlp_receiver():
    """A minimal OTLP/HTTP collector: POST /v1/traces, protobuf in, spans kept in a list."""
    spans: list = []

    async def traces(request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        export = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
        for resource_spans in export.resource_spans:
            resource = _attrs(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                spans.extend((resource, span) for span in scope_spans.spans)
        reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=reply, content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", spans
    finally:
        await runner.cleanup()


def _attrs(key_values) -> dict:
    out = {}
    for kv in key_values:
        kind = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, kind) if kind else None
    return out


@pytest.fixture
async def traced_proxy(dsn, settings, fake, otlp_receiver):
    endpoint, spans = otlp_receiver
    traced = settings.model_copy(update={
        "access_log": False, "otel_exporter_otlp_endpoint": endpoint + "/",
        "otel_service_name": "spendguard-test",
        "openai_api_key": "sk-test-openai", "openai_base_url": fake.base_url_openai,
    })
    runner, server = await _start(traced, dsn)
    yield server, spans
    await server.session.close()
    await runner.cleanup()


async def _flushed(server, spans: list, count: int) -> list:
    assert await asyncio.to_thread(server.app[TRACING].flush)
    return spans[-count:]


async def test_provider_calls_are_genai_client_spans_under_the_server_span(
        traced_proxy, pool):
    server, spans = traced_proxy
    agent = uuid.UUID((await ledger.create_agent(pool, ledger.LOCAL_TENANT_ID, "t"))["agent_id"])
    await ledger.set_budget(pool, ledger.LOCAL_TENANT_ID, agent, hard_limit_cents=100,
                            topup_cents=None, concurrency="shared")
    run = uuid.uuid4()
    headers = {"x-cynsta-agent-id": str(agent), "x-cynsta-run-id": str(run),
               # The agent's own trace continues through a sidecar.
               "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    body = {"model": "gpt-4o-mini", "max_tokens": 100_000,
            "messages": [{"role": "user", "content": "hello"}]}
    async with server.session.post(server.url("/v1/chat/completions"), json=body,
                                   headers=headers) as resp:
        assert resp.status == 200, await resp.text()

    (resource, client), (_, http) = sorted(await _flushed(server, spans, 2),
                                           key=lambda pair: pair[1].kind, reverse=True)
    assert resource["service.name"] == "spendguard-test"
    assert (http.kind, http.name) == (SPAN_KIND_SERVER, "POST /v1/chat/completions")
    assert _attrs(http.attributes) == {"http.request.method": "POST",
                                       "http.route": "/v1/chat/completions",
                                       "http.response.status_code": 200}
    assert http.trace_id.hex() == "0af7651916cd43dd8448eb211c80319c"
    assert (client.kind, client.name) == (SPAN_KIND_CLIENT, "chat gpt-4o-mini")
    assert client.parent_span_id == http.span_id and client.trace_id == http.trace_id
    assert http.start_time_unix_nano <= client.start_time_unix_nano
    assert client.end_time_unix_nano <= http.end_time_unix_nano
    a = _attrs(client.attributes)
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == a["gen_ai.system"] == "openai"
    assert a["gen_ai.request.model"] == "gpt-4o-mini"
    assert a["gen_ai.response.model"].startswith("gpt-4o-mini")
    assert 0 < a["gen_ai.request.max_tokens"] < 100_000  # the clamped value, not the asked
    assert a["gen_ai.usage.input_tokens"] > 0 and a["gen_ai.usage.output_tokens"] > 0
    assert a["spendguard.agent_id"] == str(agent) and a["spendguard.run_id"] == str(run)
    assert a["spendguard.reserved_microcents"] > a["spendguard.charged_microcents"] > 0
    assert a["spendguard.overrun_microcents"] == 0
    assert a["spendguard.termination_reason"] == "complete"
    budget = await ledger.get_budget(pool, ledger.LOCAL_TENANT_ID, agent)
    assert budget["remaining_microcents"] == 100_000_000 - a["spendguard.charged_microcents"]

    # A stream, and a 402: the stream's span carries the settled charge; the refusal is an
    # error span with nothing charged.
    stream = {**body, "max_tokens": 16, "stream": True}
    async with server.session.post(server.url("/v1/chat/completions"), json=stream,
                                   headers={"x-cynsta-agent-id": str(agent)}) as resp:
        assert resp.status == 200
        await resp.read()
    await asyncio.sleep(0.05)  # the span is made after settlement, just after the last byte
    poor = uuid.UUID((await ledger.create_agent(pool, ledger.LOCAL_TENANT_ID, "p"))["agent_id"])
    await ledger.set_budget(pool, ledger.LOCAL_TENANT_ID, poor, hard_limit_cents=1,
                            topup_cents=None, concurrency="shared")
    huge = {"model": "gpt-4o", "messages": [{"role": "user", "content": "word " * 20_000}]}
    async with server.session.post(server.url("/v1/chat/completions"), json=huge,
                                   headers={"x-cynsta-agent-id": str(poor)}) as resp:
        assert resp.status == 402
    clients = [_attrs(s.attributes) | {"status": s.status.code}
               for _, s in await _flushed(server, spans, 4) if s.kind == SPAN_KIND_CLIENT]
    streamed, refused = clients
    assert streamed["spendguard.termination_reason"] == "complete"
    assert streamed["spendguard.charged_microcents"] > 0
    assert streamed["gen_ai.usage.output_tokens"] > 0 and streamed["status"] != STATUS_ERROR
    assert refused["spendguard.agent_id"] == str(poor) and refused["status"] == STATUS_ERROR
    assert refused["gen_ai.request.model"] == "gpt-4o"
    assert "spendguard.charged_microcents" not in refused
    assert "spendguard.reserved_microcents" not in refused


async def test_admin_requests_get_a_server_span_only(traced_proxy):
    server, spans = traced_proxy
    async with server.session.get(server.url(f"/v1/agents/{uuid.uuid4()}")) as resp:
        assert resp.status == 404
    [(_, span)] = await _flushed(server, spans, 1)
    assert (span.kind, span.name) == (SPAN_KIND_SERVER, "GET /v1/agents/{agent_id}")
    assert _attrs(span.attributes)["http.response.status_code"] == 404
    assert len(spans) == 1


def test_the_endpoint_must_be_an_http_url(monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317")
    with pytest.raises(SettingsError, match="OTEL_EXPORTER_OTLP_ENDPOINT"):
        load_settings(_env_file=None)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
    assert load_settings(_env_file=None).otel_exporter_otlp_endpoint is None


def test_without_the_sdk_the_server_refuses_to_start_and_says_why(settings, monkeypatch):
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)  # as if not installed
    traced = settings.model_copy(update={"otel_exporter_otlp_endpoint": "http://127.0.0.1:9"})
    with pytest.raises(SpendGuardError, match=r"spendguard-proxy\[otel\]"):
        build_app(traced, "postgresql://unused")
