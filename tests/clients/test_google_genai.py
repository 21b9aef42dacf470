"""google-genai, unchanged but for its base URL and one header: default API version (v1) and
v1beta, plain and streamed, token counting and the model list."""

from __future__ import annotations

import pytest
from google import genai
from google.genai import types

from tests.clients.ledger_check import assert_charged_as_billed, charge_rows, route_hits
from tests.invariants import assert_ledger_invariants

MODEL = "gemini-2.5-flash"
# google-genai subclasses aiohttp.ClientSession for its async transport; aiohttp warns.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Inheritance class AiohttpClientSession:DeprecationWarning")
VERSIONS = [pytest.param(None, id="default-v1"), pytest.param("v1beta", id="v1beta")]


def _client(relay_url: str, agent_id, api_version: str | None) -> genai.Client:
    return genai.Client(api_key="unused", http_options=types.HttpOptions(
        base_url=relay_url, api_version=api_version,
        headers={"x-cynsta-agent-id": str(agent_id)}))


@pytest.mark.parametrize("api_version", VERSIONS)
async def test_generate_content_and_stream(relay_url, pool, budgeted_agent, fake, http,
                                           api_version):
    agent_id = await budgeted_agent()
    route = f"/{api_version or 'v1'}/models/{{model_action}}"
    hits = await route_hits(http, relay_url, route)
    client = _client(relay_url, agent_id, api_version)
    try:
        answer = await client.aio.models.generate_content(
            model=MODEL, contents="Say hello",
            config=types.GenerateContentConfig(max_output_tokens=64, temperature=0.2))
        assert answer.text and answer.usage_metadata.candidates_token_count > 0
        chunks = [c async for c in await client.aio.models.generate_content_stream(
            model=MODEL, contents="Count to five")]
        assert len(chunks) > 2 and "".join(c.text or "" for c in chunks).strip()
    finally:
        await client.aio.aclose()
    rows = await assert_charged_as_billed(pool, agent_id, fake, calls=2)
    # The client's own path (google-genai 3.x defaults to v1); SpendGuard calls v1beta upstream.
    assert await route_hits(http, relay_url, route, at_least=hits + 2) == hits + 2
    assert rows[0]["output_tokens"] == answer.usage_metadata.candidates_token_count
    assert rows[1]["output_tokens"] == chunks[-1].usage_metadata.candidates_token_count


@pytest.mark.parametrize("api_version", VERSIONS)
async def test_count_tokens_is_free(relay_url, pool, budgeted_agent, fake, api_version):
    agent_id = await budgeted_agent()
    client = _client(relay_url, agent_id, api_version)
    try:
        counted = await client.aio.models.count_tokens(model=MODEL, contents="count me please")
    finally:
        await client.aio.aclose()
    assert counted.total_tokens > 0
    assert fake.billed.count_tokens_requests == 1 and not fake.billed.calls
    assert await charge_rows(pool, agent_id) == []
    await assert_ledger_invariants(pool, agent_id)


@pytest.mark.parametrize("api_version", VERSIONS)
async def test_models_list_and_get(relay_url, budgeted_agent, fake, api_version):
    agent_id = await budgeted_agent()
    client = _client(relay_url, agent_id, api_version)
    try:
        names = [m.name async for m in await client.aio.models.list()]
        model = await client.aio.models.get(model=MODEL)
    finally:
        await client.aio.aclose()
    assert f"models/{MODEL}" in names and all(n.startswith("models/gemini") for n in names)
    assert model.name == f"models/{MODEL}" and model.output_token_limit > 0
    assert not fake.requests  # answered by SpendGuard from its price table
