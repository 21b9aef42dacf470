"""The openai SDK beyond tests/relay/test_sdks.py: the Responses API streamed (raw events and
the ``responses.stream`` helper), the ``chat.completions.stream`` helper, and embeddings
charged at the fake provider's own count and genai-prices' price."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import genai_prices
import openai

from tests.clients.ledger_check import assert_charged_as_billed, charge_rows
from tests.invariants import assert_ledger_invariants

MODEL = "gpt-4o-mini"


def _openai(relay_url: str, agent_id) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{relay_url}/v1", api_key="unused", max_retries=0,
                              default_headers={"x-cynsta-agent-id": str(agent_id)})


async def test_responses_plain_streamed_and_stream_helper(relay_url, pool, budgeted_agent, fake):
    agent_id = await budgeted_agent()
    client = _openai(relay_url, agent_id)
    try:
        answer = await client.responses.create(model=MODEL, input="Say hello",
                                               max_output_tokens=64)
        events = [e async for e in await client.responses.create(
            model=MODEL, input="Count to five", stream=True)]
        async with client.responses.stream(model=MODEL, input="And to six") as stream:
            final = await stream.get_final_response()
    finally:
        await client.close()
    assert answer.output_text and answer.usage.output_tokens > 0
    assert events[-1].type == "response.completed" and events[-1].response.usage.output_tokens
    assert final.output_text
    rows = await assert_charged_as_billed(pool, agent_id, fake, calls=3)
    assert [r["output_tokens"] for r in rows] == [
        answer.usage.output_tokens, events[-1].response.usage.output_tokens,
        final.usage.output_tokens]


async def test_chat_stream_helper(relay_url, pool, budgeted_agent, fake):
    agent_id = await budgeted_agent()
    client = _openai(relay_url, agent_id)
    try:
        async with client.chat.completions.stream(
                model=MODEL, messages=[{"role": "user", "content": "Count to five"}]) as stream:
            final = await stream.get_final_completion()
    finally:
        await client.close()
    assert final.choices[0].message.content
    # The helper does not ask for usage: SpendGuard asked upstream and kept it to itself.
    assert final.usage is None
    assert fake.requests[-1]["body"]["stream_options"] == {"include_usage": True}
    await assert_charged_as_billed(pool, agent_id, fake, calls=1)


async def test_embeddings_charged_as_billed(relay_url, pool, budgeted_agent, fake):
    agent_id = await budgeted_agent()
    client = _openai(relay_url, agent_id)
    model = "text-embedding-3-small"
    try:
        answer = await client.embeddings.create(model=model, input=["hello there", "東京 🗼"])
    finally:
        await client.close()
    assert len(answer.data) == 2
    [row] = await charge_rows(pool, agent_id)
    billed_tokens = fake.billed.models[model]["input_tokens"]
    assert row["input_tokens"] == answer.usage.prompt_tokens == billed_tokens > 0
    price = genai_prices.calc_price(genai_prices.Usage(input_tokens=billed_tokens), model,
                                    provider_id="openai", genai_request_timestamp=datetime.now(UTC))
    assert row["realized_microcents"] == math.ceil(price.total_price * 10**8)
    assert row["termination_reason"] == "complete"
    await assert_ledger_invariants(pool, agent_id)
