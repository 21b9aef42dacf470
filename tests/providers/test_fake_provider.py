"""The fake provider against the official SDKs, and its switches."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import aiohttp
import anthropic
import openai
import pytest

from spendguard_proxy.testing.fake_provider import FakeProvider, prompt_tokens

MSG = [{"role": "user", "content": "Say something"}]
CLAUDE = "claude-sonnet-4-6"


async def test_openai_chat_with_the_sdk(fake: FakeProvider) -> None:
    async with openai.AsyncOpenAI(base_url=fake.base_url_openai, api_key="k", max_retries=0) as c:
        answer = await c.chat.completions.create(
            model="gpt-4o", messages=MSG, max_completion_tokens=5
        )
        assert answer.choices[0].finish_reason == "length"
        assert answer.usage.completion_tokens == 5
        assert answer.usage.prompt_tokens == prompt_tokens({"messages": MSG})
        chunks = [
            ch
            async for ch in await c.chat.completions.create(
                model="gpt-4o", messages=MSG, stream=True, stream_options={"include_usage": True}
            )
        ]
        assert chunks[-1].usage.completion_tokens == 20
        text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
        assert text.startswith("The quick brown fox")
        several = await c.chat.completions.create(model="gpt-4o", messages=MSG, n=2, max_tokens=3)
        assert len(several.choices) == 2 and several.usage.completion_tokens == 6
    billed = fake.billed.models["gpt-4o"]
    assert billed["output_tokens"] == 5 + 20 + 6 and billed["requests"] == 3


async def test_openai_responses_with_the_sdk(fake: FakeProvider) -> None:
    async with openai.AsyncOpenAI(base_url=fake.base_url_openai, api_key="k", max_retries=0) as c:
        answer = await c.responses.create(
            model="gpt-4.1",
            input="hi",
            max_output_tokens=4,
            tools=[{"type": "web_search"}],
            extra_headers={"x-fake-web-search-calls": "2", "x-fake-cached-tokens": "1"},
        )
        assert answer.status == "incomplete"
        assert answer.incomplete_details.reason == "max_output_tokens"
        assert [item.type for item in answer.output] == ["web_search_call"] * 2 + ["message"]
        async with c.responses.stream(
            model="gpt-4.1", input="hi", extra_headers={"x-fake-reasoning-tokens": "7"}
        ) as stream:
            final = await stream.get_final_response()
        assert (
            final.usage.output_tokens == 27
            and final.usage.output_tokens_details.reasoning_tokens == 7
        )
        assert final.output_text == (
            "The quick brown fox jumps over the lazy dog."
            " and then it runs far away from home again,"
        )
    assert fake.billed.models["gpt-4.1"]["web_search_calls"] == 2


async def test_anthropic_with_the_sdk(fake: FakeProvider) -> None:
    async with anthropic.AsyncAnthropic(
        base_url=fake.base_url_anthropic, api_key="k", max_retries=0
    ) as c:
        message = await c.messages.create(model=CLAUDE, max_tokens=3, messages=MSG)
        assert message.stop_reason == "max_tokens" and message.usage.output_tokens == 3
        async with c.messages.stream(
            model=CLAUDE, max_tokens=100, messages=MSG, extra_headers={"x-fake-cached-tokens": "2"}
        ) as stream:
            final = await stream.get_final_message()
        assert final.stop_reason == "end_turn" and final.usage.output_tokens == 20
        assert final.usage.cache_read_input_tokens == 2
    async with (
        aiohttp.ClientSession() as session,
        session.post(  # max_tokens is required
            f"{fake.base_url_anthropic}/v1/messages",
            headers={"x-api-key": "k"},
            json={"model": CLAUDE, "messages": MSG},
        ) as response,
    ):
        assert response.status == 400
        assert (await response.json())["error"]["type"] == "invalid_request_error"


async def test_gemini_stream_and_non_stream(fake: FakeProvider) -> None:
    body = {"contents": [{"parts": [{"text": "hi"}]}], "generationConfig": {"maxOutputTokens": 4}}
    url = f"{fake.base_url_gemini}/v1beta/models/gemini-2.5-flash"
    async with aiohttp.ClientSession(headers={"x-goog-api-key": "k"}) as session:
        async with session.post(url + ":generateContent", json=body) as response:
            answer = await response.json()
        assert answer["candidates"][0]["finishReason"] == "MAX_TOKENS"
        assert answer["usageMetadata"]["candidatesTokenCount"] == 4
        async with session.post(url + ":streamGenerateContent?alt=sse", json=body) as response:
            raw = await response.read()
        assert raw.count(b"\r\n\r\n") == 5 and b'"finishReason":"MAX_TOKENS"' in raw
        async with session.post(url + ":embedContent", json=body) as response:
            assert response.status == 404


async def test_auth_is_required(fake: FakeProvider) -> None:
    async with aiohttp.ClientSession() as session:
        chat = {"model": "gpt-4o", "messages": MSG}
        async with session.post(f"{fake.base_url_openai}/chat/completions", json=chat) as response:
            assert response.status == 401
            assert (await response.json())["error"]["code"] == "invalid_api_key"
        async with session.post(f"{fake.base_url_anthropic}/v1/messages", json={}) as response:
            assert response.status == 401
            assert (await response.json())["error"]["type"] == "authentication_error"
    assert fake.billed.total("requests") == 0


async def test_error_status_is_provider_shaped_and_billed_nothing(fake: FakeProvider) -> None:
    async with openai.AsyncOpenAI(base_url=fake.base_url_openai, api_key="k", max_retries=0) as c:
        with pytest.raises(openai.RateLimitError):
            await c.chat.completions.create(
                model="gpt-4o", messages=MSG, extra_headers={"x-fake-status": "429"}
            )
    async with anthropic.AsyncAnthropic(
        base_url=fake.base_url_anthropic, api_key="k", max_retries=0
    ) as c:
        with pytest.raises(anthropic.InternalServerError):
            await c.messages.create(
                model=CLAUDE, max_tokens=5, messages=MSG, extra_headers={"x-fake-status": "500"}
            )
    assert fake.billed.total("requests") == 0


async def test_omit_usage_and_ignore_max_tokens(fake: FakeProvider) -> None:
    fake.configure(omit_usage=True, ignore_max_tokens=True, words=12)
    async with openai.AsyncOpenAI(base_url=fake.base_url_openai, api_key="k", max_retries=0) as c:
        answer = await c.chat.completions.create(model="gpt-4o", messages=MSG, max_tokens=2)
        assert answer.usage is None and answer.choices[0].finish_reason == "stop"
    assert fake.billed.total("output_tokens") == 12  # billed what it generated, not the cap


async def test_config_reset_and_requests_endpoints(fake: FakeProvider) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{fake.origin}/_fake/config", json={"words": 3}) as response:
            assert (await response.json())["words"] == 3
        async with session.post(f"{fake.origin}/_fake/config", json={"nope": 1}) as response:
            assert response.status == 400
        headers = {"Authorization": "Bearer sk-1", "x-fake-words": "2"}
        chat = {"model": "gpt-4o", "messages": MSG, "max_completion_tokens": 9}
        async with session.post(
            f"{fake.base_url_openai}/chat/completions", json=chat, headers=headers
        ) as response:
            assert (await response.json())["usage"]["completion_tokens"] == 2
        async with session.get(f"{fake.origin}/_fake/requests") as response:
            seen = (await response.json())["requests"][-1]
        assert seen["body"]["max_completion_tokens"] == 9
        assert seen["headers"]["Authorization"] == "Bearer sk-1"
        async with session.get(f"{fake.origin}/_fake/billed") as response:
            assert (await response.json())["total"]["output_tokens"] == 2
        async with session.post(f"{fake.origin}/_fake/reset") as response:
            assert response.status == 200
    assert fake.requests == [] and fake.billed.total("requests") == 0
    assert fake.state.defaults.words == 20


async def test_disconnect_after_and_delays(fake: FakeProvider) -> None:
    chat = {"model": "gpt-4o", "messages": MSG, "stream": True}
    headers = {
        "Authorization": "Bearer k",
        "x-fake-disconnect-after": "3",
        "x-fake-first-byte-delay-ms": "50",
        "x-fake-delay-ms": "5",
    }
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{fake.base_url_openai}/chat/completions", json=chat, headers=headers
        ) as response,
    ):
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()
    assert loop.time() - started >= 0.05
    assert fake.billed.total("output_tokens") == 3


async def test_endless_stream_bills_what_it_generated_after_the_client_left(
    fake: FakeProvider,
) -> None:
    chat = {"model": "gpt-4o", "messages": MSG, "stream": True, "max_tokens": 5}
    headers = {"Authorization": "Bearer k", "x-fake-endless": "1", "x-fake-delay-ms": "2"}
    received = 0
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{fake.base_url_openai}/chat/completions", json=chat, headers=headers
        ) as response,
    ):
        async for line in response.content:
            if line.startswith(b"data: {") and b'"content":"' in line:
                received += 1
            if received == 30:
                break
    for _ in range(50):  # the fake notices the hang-up on its next write
        before = fake.billed.total("output_tokens")
        await asyncio.sleep(0.02)
        if fake.billed.total("output_tokens") == before:
            break
    assert fake.billed.total("output_tokens") >= 30  # far past the max_tokens it ignored


async def test_bill_full_on_disconnect(fake: FakeProvider) -> None:
    body = {"model": CLAUDE, "max_tokens": 1000, "messages": MSG, "stream": True}
    headers = {
        "x-api-key": "k",
        "x-fake-words": "500",
        "x-fake-delay-ms": "5",
        "x-fake-bill-full-on-disconnect": "true",
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{fake.base_url_anthropic}/v1/messages", json=body, headers=headers
        ) as response,
    ):
        await response.content.readline()
    for _ in range(100):
        if fake.billed.total("output_tokens") == 500:
            break
        await asyncio.sleep(0.02)
    assert fake.billed.total("output_tokens") == 500


def test_prompt_tokens_is_deterministic() -> None:
    body = {"model": "gpt-4o", "messages": MSG, "temperature": 0.5}
    assert prompt_tokens(body) == prompt_tokens(json.loads(json.dumps(body))) > 0


# ---------------------------------------------------------------- billed options

# A rate in cents per 1M tokens is exactly µ¢ per token; fees in cents per 1,000 calls are
# 1,000 × µ¢ per call. The figures below are the bundled table's (genai-prices 0.2.3).
GPT54 = "gpt-5.4"  # input 250 / 500 above 272,000 tokens, output 1500 / 2250; priority 500/3000


def _openai(fake: FakeProvider) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=fake.base_url_openai, api_key="k", max_retries=0)


def _anthropic(fake: FakeProvider) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=fake.base_url_anthropic, api_key="k", max_retries=0)


async def test_openai_answers_the_tier_it_served(fake: FakeProvider) -> None:
    async with _openai(fake) as c:

        async def tier(**extra: object) -> str | None:
            answer = await c.chat.completions.create(model=GPT54, messages=MSG, **extra)
            assert fake.billed.calls[-1].service_tier == answer.service_tier
            return answer.service_tier

        assert await tier() == "default"
        fake.configure(account_service_tier="priority")  # the project's default tier
        assert await tier() == "priority"
        assert await tier(service_tier="auto") == "priority"
        assert await tier(service_tier="default") == "default"
        assert await tier(service_tier="flex") == "flex"
        assert await tier(service_tier="fast") == "priority"  # billed and reported as priority
        chunks = [
            chunk
            async for chunk in await c.chat.completions.create(
                model=GPT54, messages=MSG, stream=True, service_tier="flex"
            )
        ]
        assert {chunk.service_tier for chunk in chunks} == {"flex"}
        async with c.responses.stream(model=GPT54, input="hi") as stream:
            events = [event async for event in stream]
        # While in progress the response echoes the request; done, it names the tier served.
        assert events[0].type == "response.created" and events[0].response.service_tier == "auto"
        assert events[-1].response.service_tier == "priority"
    costs = [call.cost_microcents for call in fake.billed.calls]
    assert costs[1] == 2 * costs[0] and costs[4] == costs[0] / 2  # priority 2x, flex 0.5x


async def test_responses_built_in_tools_stop_at_max_tool_calls(fake: FakeProvider) -> None:
    fake.configure(web_search_calls=120, file_search_calls=5, words=1)
    both = [{"type": "web_search"}, {"type": "file_search", "vector_store_ids": ["vs_1"]}]
    async with _openai(fake) as c:
        capped = await c.responses.create(model="gpt-4.1", input="hi", tools=both, max_tool_calls=8)
        assert [i.type for i in capped.output] == ["web_search_call"] * 8 + ["message"]
        files = await c.responses.create(
            model="gpt-4.1", input="hi", tools=both[1:], max_tool_calls=3
        )
        assert [i.type for i in files.output] == ["file_search_call"] * 3 + ["message"]
        assert files.output[0].queries == ["fake query 0"]
        plain = await c.responses.create(model="gpt-4.1", input="hi")  # no tool, no search
        assert [i.type for i in plain.output] == ["message"]
        uncapped = await c.responses.create(model="gpt-4.1", input="hi", tools=both)
        assert len(uncapped.output) == 120 + 5 + 1
    row = fake.billed.models["gpt-4.1"]
    assert row["web_search_calls"] == 8 + 120 and row["file_search_calls"] == 3 + 5
    capped, files, plain, _ = fake.billed.calls
    # gpt-4.1: input 200, output 800 µ¢ per token; $10 per 1,000 web searches, $2.50 per
    # 1,000 file searches
    assert capped.cost_microcents == 200 * capped.input_tokens + 800 + 8 * 1_000_000
    assert files.cost_microcents == 200 * files.input_tokens + 800 + 3 * 250_000
    assert plain.cost_microcents == 200 * plain.input_tokens + 800


async def test_anthropic_reports_cache_writes_by_ttl_tier_and_searches(fake: FakeProvider) -> None:
    long_rules = "Answer in French. " * 200
    body = {
        "model": "claude-haiku-4-5",
        "max_tokens": 50,
        "system": [
            {
                "type": "text",
                "text": long_rules,
                "cache_control": {"type": "ephemeral", "ttl": "1h"},
            },
        ],
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "text",
                        "text": "Here is a long document. " * 100,
                        "cache_control": {"type": "ephemeral"},
                    },
                    {"type": "text", "text": "Summarise it."},
                ],
            },
        ],
        "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 3}],
    }
    fake.configure(web_search_calls=10)
    async with _anthropic(fake) as c:
        message = await c.messages.create(**body)
        usage = message.usage
        written = usage.cache_creation
        assert written.ephemeral_1h_input_tokens > 0 and written.ephemeral_5m_input_tokens > 0
        assert usage.cache_creation_input_tokens == (
            written.ephemeral_1h_input_tokens + written.ephemeral_5m_input_tokens
        )
        assert usage.input_tokens > 0  # the tokens after the last breakpoint
        total = usage.input_tokens + usage.cache_creation_input_tokens
        assert total == prompt_tokens(body)
        assert usage.service_tier == "standard"
        assert usage.server_tool_use.web_search_requests == 3  # max_uses, not the 10 wanted
        fake.configure(account_service_tier="priority")
        assert (await c.messages.create(**body)).usage.service_tier == "priority"
        again = await c.messages.create(**body, service_tier="standard_only")
        assert again.usage.service_tier == "standard"
        events = [event async for event in await c.messages.create(**body, stream=True)]
    start = events[0].message.usage  # the TTL split and the tier come with message_start only
    assert start.cache_creation == written and start.service_tier == "priority"
    assert start.server_tool_use is None
    delta = next(e for e in events if e.type == "message_delta").usage
    assert delta.cache_creation_input_tokens == usage.cache_creation_input_tokens
    assert delta.server_tool_use.web_search_requests == 3
    call = fake.billed.calls[0]
    assert call.cache_write_tokens == usage.cache_creation_input_tokens
    assert call.cache_write_1h_tokens == written.ephemeral_1h_input_tokens
    # claude-haiku-4-5: input 100, 5m writes 125, 1h writes 200, output 500 µ¢ per token.
    expected = (
        100 * usage.input_tokens
        + 125 * written.ephemeral_5m_input_tokens
        + 200 * written.ephemeral_1h_input_tokens
        + 500 * usage.output_tokens
        + 3 * 1_000_000
    )
    assert call.cost_microcents == expected


async def test_anthropic_search_caps_and_top_level_cache_control(fake: FakeProvider) -> None:
    fake.configure(web_search_calls=10, words=1)
    search = {"type": "web_search_20250305", "name": "web_search"}
    async with _anthropic(fake) as c:

        async def usage(**extra: object) -> anthropic.types.Usage:
            answer = await c.messages.create(model=CLAUDE, max_tokens=5, messages=MSG, **extra)
            return answer.usage

        two_tools = [{**search, "max_uses": 2}, {**search, "name": "web_search_2", "max_uses": 3}]
        assert (await usage(tools=two_tools)).server_tool_use.web_search_requests == 5
        assert (await usage(tools=[search])).server_tool_use.web_search_requests == 10
        assert (await usage()).server_tool_use is None  # no search tool, no search
        top = await usage(cache_control={"type": "ephemeral", "ttl": "1h"})
        assert top.cache_creation.ephemeral_1h_input_tokens == prompt_tokens({"messages": MSG})
        assert top.input_tokens == 0 and top.cache_creation.ephemeral_5m_input_tokens == 0
        cached = await usage(
            cache_control={"type": "ephemeral"}, extra_headers={"x-fake-cached-tokens": "2"}
        )
        assert cached.cache_read_input_tokens == 2
        assert cached.cache_creation_input_tokens == prompt_tokens({"messages": MSG}) - 2


async def test_anthropic_fast_mode_is_reported_and_billed(fake: FakeProvider) -> None:
    async with _anthropic(fake) as c:
        for speed in (None, "fast"):
            extra = {"speed": speed} if speed else {}
            answer = await c.messages.create(
                model="claude-opus-4-8", max_tokens=5, messages=MSG, **extra
            )
            assert answer.usage.speed == speed
    standard, fast = (call.cost_microcents for call in fake.billed.calls)
    assert fake.billed.calls[1].speed == "fast" and fast == 2 * standard  # genai-prices 0.2.3


async def test_gemini_grounding_and_the_served_tier_header(fake: FakeProvider) -> None:
    fake.configure(web_search_calls=3, words=2)
    body = {"contents": [{"parts": [{"text": "news?"}]}], "tools": [{"googleSearch": {}}]}
    async with aiohttp.ClientSession(headers={"x-goog-api-key": "k"}) as session:

        async def call(model: str, extra: dict, stream: bool = False) -> tuple[dict, str]:
            action = ":streamGenerateContent?alt=sse" if stream else ":generateContent"
            url = f"{fake.base_url_gemini}/v1/models/{model}{action}"
            async with session.post(url, json={**body, **extra}) as response:
                assert response.status == 200
                tier = response.headers["x-gemini-service-tier"]
                if stream:
                    raw = await response.read()
                    last = raw.strip().split(b"\r\n\r\n")[-1].removeprefix(b"data: ")
                    return json.loads(last), tier
                return await response.json(), tier

        answer, tier = await call("gemini-2.5-flash", {})
        assert tier == "standard"
        queries = answer["candidates"][0]["groundingMetadata"]["webSearchQueries"]
        assert len(set(queries)) == 3
        final, tier = await call("gemini-3-flash-preview", {"serviceTier": "flex"}, stream=True)
        assert tier == "flex"
        assert len(final["candidates"][0]["groundingMetadata"]["webSearchQueries"]) == 3
        _, tier = await call("gemini-2.5-flash", {"service_tier": "priority", "tools": []})
        assert tier == "priority"
    two, three, plain = fake.billed.calls
    assert two.web_search_calls == three.web_search_calls == 3 and plain.web_search_calls == 0
    assert two.web_search_units == 1  # Gemini 2.x: one fee per grounded prompt
    assert three.web_search_units == 3  # Gemini 3: one fee per search query


async def test_count_tokens_endpoints_answer_the_billed_input(fake: FakeProvider) -> None:
    system = "Be brief."
    tools = [
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
    async with _anthropic(fake) as c:
        counted = await c.messages.count_tokens(
            model=CLAUDE, messages=MSG, system=system, tools=tools
        )
        usage = (
            await c.messages.create(
                model=CLAUDE, max_tokens=5, messages=MSG, system=system, tools=tools
            )
        ).usage
    assert (
        counted.input_tokens
        == usage.input_tokens
        == prompt_tokens({"messages": MSG, "system": system, "tools": tools})
    )
    contents = [{"parts": [{"text": "Say hi"}], "role": "user"}]
    async with aiohttp.ClientSession(headers={"x-goog-api-key": "k"}) as session:
        for version in ("v1", "v1beta"):
            url = f"{fake.base_url_gemini}/{version}/models/gemini-2.5-flash"
            async with session.post(url + ":countTokens", json={"contents": contents}) as r:
                assert (await r.json())["totalTokens"] == prompt_tokens({"contents": contents})
            wrapped = {
                "generateContentRequest": {"model": "models/gemini-2.5-flash", "contents": contents}
            }
            async with session.post(url + ":countTokens", json=wrapped) as r:
                assert (await r.json())["totalTokens"] == prompt_tokens({"contents": contents})
        async with session.post(url + ":generateContent", json={"contents": contents}) as r:
            meta = (await r.json())["usageMetadata"]
        assert meta["promptTokenCount"] == prompt_tokens({"contents": contents})
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{fake.base_url_anthropic}/v1/messages/count_tokens", json={}) as r,
    ):
        assert r.status == 401
    assert fake.billed.count_tokens_requests == 5
    assert fake.billed.total("requests") == 2  # counting tokens is free


async def test_the_bill_follows_long_context_tiers(fake: FakeProvider) -> None:
    """gpt-5.4 bills a whole call at its long-context rates once the input is strictly above
    272,000 tokens (priority has no long-context rate of its own)."""
    fake.configure(words=10)

    def body(chars: int) -> dict:
        # "1a1a..." is one o200k token per character: the count moves with the length.
        filler = ("1a" * (chars // 2 + 1))[:chars]
        return {"model": GPT54, "input": [{"role": "user", "content": filler}]}

    overhead = prompt_tokens(body(272_000)) - 272_000
    at_start = body(272_000 - overhead)
    assert prompt_tokens(at_start) == 272_000
    above = body(272_001 - overhead)
    assert prompt_tokens(above) == 272_001
    async with _openai(fake) as c:
        await c.responses.create(**at_start)
        await c.responses.create(**above)
        await c.responses.create(**above, service_tier="priority")
    at, over, priority = (call.cost_microcents for call in fake.billed.calls)
    assert at == 272_000 * 250 + 10 * 1500
    assert over == 272_001 * 500 + 10 * 2250
    assert priority == 272_001 * 500 + 10 * 3000
    snapshot = fake.billed.snapshot()
    assert Decimal(snapshot["total"]["cost_microcents"]) == at + over + priority
    assert snapshot["calls"][-1]["service_tier"] == "priority"


async def test_a_cut_stream_is_priced_for_what_was_generated(fake: FakeProvider) -> None:
    chat = {"model": "gpt-4o", "messages": MSG, "stream": True}
    headers = {"Authorization": "Bearer k", "x-fake-disconnect-after": "3"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{fake.base_url_openai}/chat/completions", json=chat, headers=headers) as r,
    ):
        with pytest.raises(aiohttp.ClientPayloadError):
            await r.read()
    [call] = fake.billed.calls
    assert call.done and call.output_tokens == 3
    # gpt-4o: input 250, output 1000 µ¢ per token
    assert call.cost_microcents == 250 * call.input_tokens + 1000 * 3
