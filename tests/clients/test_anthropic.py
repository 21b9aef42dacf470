"""The anthropic SDK and langchain-anthropic, unchanged but for base URL, key and one default
header, plain and streamed, each call charged as the fake provider billed it."""

from __future__ import annotations

import anthropic
from langchain_anthropic import ChatAnthropic

from tests.clients.ledger_check import assert_charged_as_billed

MODEL = "claude-haiku-4-5"


async def test_anthropic_sdk_create_stream_and_helper(relay_url, pool, budgeted_agent, fake):
    agent_id = await budgeted_agent()
    client = anthropic.AsyncAnthropic(base_url=relay_url, api_key="unused", max_retries=0,
                                      default_headers={"x-cynsta-agent-id": str(agent_id)})
    messages = [{"role": "user", "content": "Say hello"}]
    try:
        message = await client.messages.create(model=MODEL, max_tokens=200, messages=messages)
        events = [e async for e in await client.messages.create(
            model=MODEL, max_tokens=200, messages=messages, stream=True)]
        async with client.messages.stream(model=MODEL, max_tokens=200,
                                          messages=messages) as stream:
            final = await stream.get_final_message()
    finally:
        await client.close()
    assert message.content[0].text and final.content[0].text
    assert events[-1].type == "message_stop"
    rows = await assert_charged_as_billed(pool, agent_id, fake, calls=3)
    assert rows[0]["output_tokens"] == message.usage.output_tokens
    assert rows[2]["output_tokens"] == final.usage.output_tokens


async def test_langchain_anthropic_invoke_and_stream(relay_url, pool, budgeted_agent, fake):
    agent_id = await budgeted_agent()
    chat = ChatAnthropic(model=MODEL, base_url=relay_url, api_key="unused", max_retries=0,
                         default_headers={"x-cynsta-agent-id": str(agent_id)})
    answer = await chat.ainvoke("Say hello")
    chunks = [chunk async for chunk in chat.astream("Count to five")]
    assert answer.text and "".join(c.text for c in chunks).strip()
    assert [r["body"].get("stream", False) for r in fake.requests] == [False, True]
    rows = await assert_charged_as_billed(pool, agent_id, fake, calls=2)
    assert rows[0]["output_tokens"] == answer.usage_metadata["output_tokens"]
