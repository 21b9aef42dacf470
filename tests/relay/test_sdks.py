"""The official SDKs through SpendGuard against the fake provider: streaming and not."""

from __future__ import annotations

import asyncio
import time

import anthropic
import openai
import pytest

from spendguard_proxy import ledger
from tests.invariants import assert_ledger_invariants

T = ledger.LOCAL_TENANT_ID


_OPEN_CLIENTS: list = []


async def _closing(client):
    _OPEN_CLIENTS.append(client)


@pytest.fixture(autouse=True)
async def _close_clients():
    yield
    while _OPEN_CLIENTS:
        await _OPEN_CLIENTS.pop().close()


def _openai(url, agent_id, **headers):
    return openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0,
                              default_headers={"x-cynsta-agent-id": str(agent_id), **headers})


async def _charges(pool, agent_id, expected=1):
    """Charge rows, waiting briefly: a stream settles just after the client read its end."""
    for _ in range(100):
        rows = await pool.fetch(
            "SELECT * FROM ledger_entries WHERE agent_id=$1 AND kind='charge' ORDER BY id",
            agent_id)
        if len(rows) >= expected:
            return rows
        await asyncio.sleep(0.02)
    return rows


async def test_openai_chat_non_stream_settles_exact_usage(relay_url, pool, budgeted_agent, fake):
    agent_id = await budgeted_agent()
    client = _openai(relay_url, agent_id)
    await _closing(client)
    raw = await client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hello there"}])
    answer = raw.parse()
    assert answer.choices[0].message.content
    assert raw.headers["x-spendguard-remaining-cents"]
    assert int(raw.headers["x-spendguard-reserved-cents"]) >= 1
    [row] = await _charges(pool, agent_id)
    assert row["output_tokens"] == answer.usage.completion_tokens
    assert row["input_tokens"] == answer.usage.prompt_tokens
    assert 0 < row["realized_microcents"] <= row["wcec_microcents"]
    assert row["termination_reason"] == "complete" and row["billing_breakdown"]
    sent = fake.requests[-1]
    assert sent["body"]["max_completion_tokens"] >= 1  # the clamp went upstream
    assert "x-cynsta-agent-id" not in {k.lower() for k in sent["headers"]}
    assert sent["headers"].get("Authorization") == "Bearer sk-test-openai"
    await assert_ledger_invariants(pool, agent_id)


async def test_openai_chat_stream_arrives_chunk_by_chunk(relay_url, pool, budgeted_agent, fake):
    agent_id = await budgeted_agent()
    fake.configure(delay_ms=150, words=6)
    client = _openai(relay_url, agent_id)
    await _closing(client)
    started = time.perf_counter()
    stream = await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "count"}], stream=True)
    arrivals = []
    text = ""
    async for chunk in stream:
        arrivals.append(time.perf_counter() - started)
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
    assert text.strip()
    # Unbuffered: the first chunk came long before the last one was sent.
    assert arrivals[0] < arrivals[-1] - 0.5
    [row] = await _charges(pool, agent_id)
    assert row["termination_reason"] == "complete" and row["output_tokens"] >= 6
    # include_usage went upstream but the client did not ask: no usage-only chunk reached it.
    assert fake.requests[-1]["body"]["stream_options"]["include_usage"] is True
    await assert_ledger_invariants(pool, agent_id)


async def test_anthropic_sdk_stream_and_message(relay_url, pool, budgeted_agent):
    agent_id = await budgeted_agent()
    client = anthropic.AsyncAnthropic(base_url=relay_url, api_key="unused", max_retries=0,
                                      default_headers={"x-cynsta-agent-id": str(agent_id)})
    await _closing(client)
    message = await client.messages.create(
        model="claude-haiku-4-5", max_tokens=200,
        messages=[{"role": "user", "content": "hi"}])
    assert message.content[0].text
    async with client.messages.stream(
        model="claude-haiku-4-5", max_tokens=200,
        messages=[{"role": "user", "content": "stream please"}]) as stream:
        text = "".join([t async for t in stream.text_stream])
    assert text
    rows = await _charges(pool, agent_id, expected=2)
    assert [r["termination_reason"] for r in rows] == ["complete", "complete"]
    await assert_ledger_invariants(pool, agent_id)


async def test_stream_that_ignores_the_clamp_is_cut_at_the_budget(relay_url, pool,
                                                                   budgeted_agent, fake):
    agent_id = await budgeted_agent(limit_cents=1)
    fake.configure(ignore_max_tokens=True, endless=True)
    client = _openai(relay_url, agent_id)
    await _closing(client)
    stream = await client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "go on forever"}], stream=True)
    finish = None
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].finish_reason:
            finish = chunk.choices[0].finish_reason
    assert finish == "length"
    [row] = await _charges(pool, agent_id)
    assert row["termination_reason"] == "budget_cutoff"
    # Cut at the first event past the clamp: what was forwarded beyond the hold is charged as
    # counted, and what the budget cannot cover is recorded as overrun, not hidden.
    beyond = row["realized_microcents"] - row["wcec_microcents"]
    assert 0 < beyond <= 3 * 1000  # one event, a token or two at gpt-4o's 1000 µ¢ per token
    assert row["billing_breakdown"]["rule"] == "counted output exceeds the hold"
    figures = await assert_ledger_invariants(pool, agent_id)
    assert figures["charges"] == 1_000_000
    assert figures["overrun"] == row["realized_microcents"] - 1_000_000 > 0


async def test_provider_error_is_passed_through_and_charges_nothing(relay_url, pool,
                                                                    budgeted_agent, fake):
    agent_id = await budgeted_agent()
    fake.configure(status=429)
    client = _openai(relay_url, agent_id)
    await _closing(client)
    with pytest.raises(openai.RateLimitError):
        await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    [row] = await _charges(pool, agent_id)
    assert row["delta_microcents"] == 0 and row["termination_reason"] == "upstream_status_429"
    await assert_ledger_invariants(pool, agent_id)


async def test_budget_errors_reach_the_sdk(relay_url, pool, budgeted_agent):
    agent_id = await budgeted_agent(limit_cents=1)
    await ledger.set_budget(pool, T, agent_id, hard_limit_cents=1, topup_cents=None,
                            concurrency=None)
    client = _openai(relay_url, agent_id)
    await _closing(client)
    huge = "word " * 20_000
    with pytest.raises(openai.APIStatusError) as info:
        await client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": huge}])
    assert info.value.status_code == 402
    assert "Insufficient budget" in str(info.value)
    with pytest.raises(openai.BadRequestError, match="Unknown model for pricing: openai:nope"):
        await client.chat.completions.create(
            model="nope", messages=[{"role": "user", "content": "x"}])
    no_header = openai.AsyncOpenAI(base_url=f"{relay_url}/v1", api_key="unused", max_retries=0)
    await _closing(no_header)
    with pytest.raises(openai.BadRequestError, match="Missing x-cynsta-agent-id header"):
        await no_header.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "x"}])


async def test_openai_embeddings_are_reserved_and_charged_exactly(relay_url, pool,
                                                                  budgeted_agent, fake):
    agent_id = await budgeted_agent()
    client = _openai(relay_url, agent_id)
    await _closing(client)
    answer = await client.embeddings.create(model="text-embedding-3-small",
                                            input=["hello there", "東京 🗼"])
    assert len(answer.data) == 2 and len(answer.data[0].embedding) == 3
    [row] = await _charges(pool, agent_id)
    assert row["input_tokens"] == answer.usage.prompt_tokens > 0
    assert row["output_tokens"] == 0
    # text-embedding-3-small: $0.02 per 1M tokens = 2 µ¢ per token; the hold was exact.
    assert row["realized_microcents"] == 2 * answer.usage.prompt_tokens == row["wcec_microcents"]
    await assert_ledger_invariants(pool, agent_id)
