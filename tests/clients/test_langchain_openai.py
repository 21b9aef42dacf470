"""langchain-openai's ChatOpenAI, unchanged but for base URL, key and one default header:
invoke, stream and bound tools, on Chat Completions and on the Responses API."""

from __future__ import annotations

import pytest
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI

from tests.clients.ledger_check import assert_charged_as_billed

MODEL = "gpt-4o-mini"
APIS = [pytest.param(False, id="chat-completions"), pytest.param(True, id="responses")]


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def _chat(relay_url: str, agent_id, use_responses_api: bool) -> ChatOpenAI:
    return ChatOpenAI(model=MODEL, base_url=f"{relay_url}/v1", api_key="unused", max_retries=0,
                      default_headers={"x-cynsta-agent-id": str(agent_id)},
                      use_responses_api=use_responses_api)


@pytest.mark.parametrize("use_responses_api", APIS)
async def test_invoke_stream_and_tools(relay_url, pool, budgeted_agent, fake, use_responses_api):
    agent_id = await budgeted_agent()
    chat = _chat(relay_url, agent_id, use_responses_api)
    answer = await chat.ainvoke("Say hello")
    assert answer.text and answer.usage_metadata["output_tokens"] > 0
    chunks = [chunk async for chunk in chat.astream("Count to five")]
    assert len(chunks) > 2 and "".join(c.text for c in chunks).strip()
    with_tools = await chat.bind_tools([get_weather]).ainvoke("Weather in Paris?")
    assert with_tools.text or with_tools.tool_calls
    path = "/v1/responses" if use_responses_api else "/v1/chat/completions"
    assert [r["path"] for r in fake.requests] == [path] * 3
    assert [r["body"].get("stream") for r in fake.requests] == [False, True, False]
    sent = fake.requests[-1]["body"]
    assert sent["tools"][0].get("name", sent["tools"][0].get("function", {}).get("name")) \
        == "get_weather"
    rows = await assert_charged_as_billed(pool, agent_id, fake, calls=3)
    assert rows[0]["output_tokens"] == answer.usage_metadata["output_tokens"]
