"""Every provider route of DESIGN §3, streaming and not, with the ledger checked after each."""

from __future__ import annotations

import json
import uuid

import openai
import pytest

from tests.invariants import assert_ledger_invariants
from tests.relay.helpers import agent_headers, charges


@pytest.fixture
async def oai(relay_url):
    clients = []

    def make(agent_id, run_id=None):
        client = openai.AsyncOpenAI(base_url=f"{relay_url}/v1", api_key="unused", max_retries=0,
                                    default_headers=agent_headers(agent_id, run_id))
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


async def test_responses_api_stream_and_not(oai, pool, budgeted_agent, fake):
    agent_id = await budgeted_agent()
    client = oai(agent_id)
    answer = await client.responses.create(model="gpt-4.1-mini", input="hello")
    assert answer.output_text
    events = [e.type async for e in await client.responses.create(
        model="gpt-4.1-mini", input="stream it", stream=True)]
    assert events[-1] == "response.completed"
    assert fake.requests[-1]["body"]["max_output_tokens"] >= 1
    rows = await charges(pool, agent_id, expected=2)
    assert {r["termination_reason"] for r in rows} == {"complete"}
    assert rows[0]["output_tokens"] == answer.usage.output_tokens
    await assert_ledger_invariants(pool, agent_id)


async def test_grok_models_on_native_route_go_to_xai(oai, pool, budgeted_agent, fake):
    agent_id = await budgeted_agent()
    await oai(agent_id).chat.completions.create(
        model="grok-3-mini", messages=[{"role": "user", "content": "hi"}])
    sent = fake.requests[-1]
    assert sent["headers"]["Authorization"] == "Bearer xai-test"
    assert "max_tokens" in sent["body"]  # xAI's own field
    [row] = await charges(pool, agent_id)
    assert row["provider"] == "grok"


async def test_gemini_native_routes(http, relay_url, pool, budgeted_agent, fake):
    agent_id = await budgeted_agent()
    body = {"contents": [{"role": "user", "parts": [{"text": "hello gemini"}]}]}
    url = f"{relay_url}/v1beta/models/gemini-2.5-flash"
    async with http.post(url + ":generateContent", json=body,
                         headers=agent_headers(agent_id)) as r:
        answer = await r.json()
        assert r.status == 200 and answer["usageMetadata"]["candidatesTokenCount"] > 0
    async with http.post(url + ":streamGenerateContent?alt=sse", json=body,
                         headers=agent_headers(agent_id)) as r:
        raw = await r.read()
        assert r.status == 200 and raw.count(b"data:") >= 2
    assert fake.requests[-1]["body"]["generationConfig"]["maxOutputTokens"] >= 1
    assert fake.requests[-1]["headers"]["x-goog-api-key"] == "gem-test"
    rows = await charges(pool, agent_id, expected=2)
    assert [r["termination_reason"] for r in rows] == ["complete", "complete"]
    async with http.post(url + ":embedContent", json=body, headers=agent_headers(agent_id)) as r:
        assert r.status == 404  # only generation and token counting go through
    await assert_ledger_invariants(pool, agent_id)


@pytest.mark.parametrize(("path", "model", "provider"), [
    ("openai/chat/completions", "gpt-4o-mini", "openai"),
    ("grok/chat/completions", "grok-4", "grok"),
])
async def test_explicit_run_routes_openai_format(http, relay_url, pool, budgeted_agent, path,
                                                 model, provider):
    agent_id = await budgeted_agent(concurrency="exclusive")
    run_id = uuid.uuid4()
    url = f"{relay_url}/v1/agents/{agent_id}/runs/{run_id}/{path}"
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    async with http.post(url, json=body) as r:
        assert r.status == 200, await r.text()
        assert r.headers["x-spendguard-run-id"] == str(run_id)
    [row] = await charges(pool, agent_id)
    assert row["run_id"] == run_id and row["provider"] == provider
    await assert_ledger_invariants(pool, agent_id)


@pytest.mark.parametrize("path", ["openai/responses", "grok/responses"])
async def test_explicit_responses_routes(http, relay_url, pool, budgeted_agent, path):
    agent_id = await budgeted_agent()
    model = "grok-4" if path.startswith("grok") else "gpt-4o"
    url = f"{relay_url}/v1/agents/{agent_id}/runs/{uuid.uuid4()}/{path}"
    async with http.post(url, json={"model": model, "input": "hi", "stream": True}) as r:
        raw = await r.read()
        assert r.status == 200 and b"response.completed" in raw
    await charges(pool, agent_id)
    await assert_ledger_invariants(pool, agent_id)


async def test_reference_anthropic_shape(http, relay_url, pool, budgeted_agent):
    agent_id = await budgeted_agent()
    url = f"{relay_url}/v1/agents/{agent_id}/runs/{uuid.uuid4()}/anthropic/messages"
    body = {"model": "claude-haiku-4-5", "system": "be brief", "max_tokens": 100,
            "messages": [{"role": "user", "content": "hi"}]}
    async with http.post(url, json=body) as r:
        answer = await r.json()
    assert r.status == 200 and answer["completion"]
    assert answer["usage"]["tokens_out"] > 0 and answer["raw"]["type"] == "message"
    assert answer["billing_breakdown"]["totals"]["realized_microcents"] > 0
    await assert_ledger_invariants(pool, agent_id)


async def test_reference_gemini_shape(http, relay_url, pool, budgeted_agent):
    agent_id = await budgeted_agent()
    url = f"{relay_url}/v1/agents/{agent_id}/runs/{uuid.uuid4()}/gemini/generateContent"
    async with http.post(url, json={"model": "gemini-2.0-flash", "prompt": "hi",
                                    "max_tokens": 50}) as r:
        answer = await r.json()
    assert r.status == 200 and answer["completion"]
    assert set(answer["usage"]) == {"tokens_in", "tokens_out"}
    await assert_ledger_invariants(pool, agent_id)


# "AGENT" is replaced by an existing agent (bodies are read only for known agents),
# "UNKNOWN" by a random id.
BAD_PROVIDER_CALLS = [
    ("/v1/chat/completions", {"x-cynsta-agent-id": "nope"}, {"model": "gpt-4o"},
     400, "x-cynsta-agent-id must be a UUID"),
    ("/v1/chat/completions", {"x-cynsta-agent-id": "AGENT",
                              "x-cynsta-run-id": "bad"}, {"model": "gpt-4o"}, 400, "run"),
    ("/v1/chat/completions", {"x-cynsta-agent-id": "AGENT"},
     {"model": "gpt-4o", "messages": "hi"}, 400, "messages"),
    ("/v1/chat/completions", {"x-cynsta-agent-id": "AGENT"},
     {"model": 5, "messages": []}, 400, "model"),
    ("/v1/chat/completions", {"x-cynsta-agent-id": "AGENT"},
     {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "max_tokens": True},
     400, "max_tokens"),
    ("/v1/chat/completions", {"x-cynsta-agent-id": "UNKNOWN"},
     {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}, 404,
     "Agent not found"),
    ("/v1/messages", {"x-cynsta-agent-id": "AGENT"},
     {"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "x"}],
      "max_tokens": -1}, 400, "max_tokens"),
    ("/v1/messages", {"x-cynsta-agent-id": "AGENT"},
     {"model": "claude-nonexistent", "messages": [{"role": "user", "content": "x"}],
      "max_tokens": 5}, 400, "Unknown model for pricing: anthropic:claude-nonexistent"),
]


@pytest.mark.parametrize(("path", "headers", "body", "status", "needle"), BAD_PROVIDER_CALLS)
async def test_bad_provider_calls(http, relay_url, fake, budgeted_agent, path, headers, body,
                                  status, needle):
    ids = {"AGENT": str(await budgeted_agent()), "UNKNOWN": str(uuid.uuid4())}
    headers = {k: ids.get(v, v) for k, v in headers.items()}
    async with http.post(relay_url + path, json=body, headers=headers) as r:
        payload = await r.json()
    assert r.status == status, payload
    assert needle in payload["detail"]
    assert fake.requests == []  # nothing went upstream


async def test_body_must_be_an_object(http, relay_url, budgeted_agent):
    async with http.post(f"{relay_url}/v1/chat/completions", data=json.dumps([1]),
                         headers={"x-cynsta-agent-id": str(await budgeted_agent()),
                                  "Content-Type": "application/json"}) as r:
        assert r.status == 400
