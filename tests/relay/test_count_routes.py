"""Token counting passes through free: no hold, no ledger row, the agent still required."""

from __future__ import annotations

import uuid

import anthropic

from tests.invariants import assert_ledger_invariants

BODY = {"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "count me"}]}


async def test_anthropic_sdk_count_tokens_passes_through(relay_url, pool, budgeted_agent, fake):
    agent_id = await budgeted_agent()
    client = anthropic.AsyncAnthropic(base_url=relay_url, api_key="unused", max_retries=0,
                                      default_headers={"x-cynsta-agent-id": str(agent_id)})
    try:
        before = fake.billed.count_tokens_requests
        counted = await client.messages.count_tokens(**BODY)
        assert counted.input_tokens > 0
        assert fake.billed.count_tokens_requests == before + 1
    finally:
        await client.close()
    assert await pool.fetchval("SELECT count(*) FROM holds WHERE agent_id = $1", agent_id) == 0
    figures = await assert_ledger_invariants(pool, agent_id)
    assert figures["charges"] == 0


async def test_gemini_count_tokens_on_both_api_versions(http, relay_url, budgeted_agent):
    agent_id = await budgeted_agent()
    body = {"contents": [{"role": "user", "parts": [{"text": "count me"}]}]}
    for version in ("v1", "v1beta"):
        async with http.post(f"{relay_url}/{version}/models/gemini-2.5-flash:countTokens",
                             json=body, headers={"x-cynsta-agent-id": str(agent_id)}) as r:
            assert r.status == 200, await r.text()
            assert (await r.json())["totalTokens"] > 0


async def test_counting_needs_a_known_agent(http, relay_url):
    async with http.post(f"{relay_url}/v1/messages/count_tokens", json=BODY) as r:
        assert r.status == 400 and "x-cynsta-agent-id" in await r.text()
    async with http.post(f"{relay_url}/v1/messages/count_tokens", json=BODY,
                         headers={"x-cynsta-agent-id": str(uuid.uuid4())}) as r:
        assert r.status == 404
