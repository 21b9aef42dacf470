"""The fake provider against the official SDKs, and its switches."""

from __future__ import annotations

import asyncio
import json

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
        async with session.post(url + ":countTokens", json=body) as response:
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
