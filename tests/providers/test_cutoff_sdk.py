"""The events SpendGuard sends when it cuts a stream parse cleanly in the official SDKs.

A tiny server answers the first part of a recorded stream followed by the counter's
cutoff events; the SDKs read it as they would read the provider.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import anthropic
import openai
import pytest
from aiohttp import web

from spendguard_proxy.providers.registry import get_adapter
from spendguard_proxy.providers.sse import SseSplitter

from . import streams


class Canned:
    body = b""


CANNED = web.AppKey("canned", Canned)


@pytest.fixture
async def server() -> AsyncIterator[tuple[Canned, str]]:
    async def answer(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(request.app[CANNED].body)
        return response

    app = web.Application()
    app[CANNED] = Canned()
    app.router.add_post("/{tail:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield app[CANNED], f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


def _cut(
    adapter_name: str,
    body: dict,
    stream: bytes,
    events_kept: int,
    wants_usage: bool = False,
    model: str | None = None,
) -> bytes:
    """The first ``events_kept`` events as forwarded, then the cutoff events."""
    adapter = get_adapter(adapter_name)
    counter = adapter.new_stream_counter(adapter.preflight(body, model=model), wants_usage)
    raws = [e.raw for e in SseSplitter().feed(stream)][:events_kept]
    forwarded = [event for raw in raws for event in counter.feed(raw)]
    return b"".join(forwarded) + counter.cutoff_events()


CHAT_BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize("wants_usage", [False, True])
async def test_openai_chat_cutoff(server, wants_usage: bool) -> None:
    canned, url = server
    canned.body = _cut("openai_chat", CHAT_BODY, streams.chat_stream(), 4, wants_usage)
    async with openai.AsyncOpenAI(base_url=url + "/v1", api_key="k", max_retries=0) as client:
        chunks = [
            c
            async for c in await client.chat.completions.create(
                model="gpt-4o", messages=CHAT_BODY["messages"], stream=True
            )
        ]
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == "".join(streams.CHAT_TEXT[:3])
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
        assert chunks[-1].id == "chatcmpl-abc"
        if wants_usage:
            assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
        else:
            assert all(c.usage is None for c in chunks)
        async with client.chat.completions.stream(
            model="gpt-4o", messages=CHAT_BODY["messages"]
        ) as stream:
            with pytest.raises(openai.LengthFinishReasonError):
                async for _ in stream:
                    pass
                await stream.get_final_completion()


async def test_openai_chat_cutoff_before_any_chunk(server) -> None:
    canned, url = server
    canned.body = _cut("openai_chat", CHAT_BODY, streams.chat_stream(), 0)
    async with openai.AsyncOpenAI(base_url=url + "/v1", api_key="k", max_retries=0) as client:
        chunks = [
            c
            async for c in await client.chat.completions.create(
                model="gpt-4o", messages=CHAT_BODY["messages"], stream=True
            )
        ]
        assert chunks[-1].choices[0].finish_reason == "length"


@pytest.mark.parametrize("kept", [0, 2, 9])
async def test_openai_responses_cutoff(server, kept: int) -> None:
    canned, url = server
    canned.body = _cut(
        "openai_responses", {"model": "gpt-4.1", "input": "hi"}, streams.responses_stream(), kept
    )
    async with openai.AsyncOpenAI(base_url=url + "/v1", api_key="k", max_retries=0) as client:
        events = [
            e async for e in await client.responses.create(model="gpt-4.1", input="hi", stream=True)
        ]
        last = events[-1]
        assert last.type == "response.incomplete"
        assert last.response.incomplete_details.reason == "max_output_tokens"
        assert [e.sequence_number for e in events] == sorted({e.sequence_number for e in events})
        async with client.responses.stream(model="gpt-4.1", input="hi") as stream:
            helper_events = [e async for e in stream]
        assert helper_events[-1].type == "response.incomplete"
        if kept == 9:  # created, in_progress, search added/done, message added, part, 3 deltas
            assert last.response.output_text == "".join(streams.RESPONSES_TEXT[:3])
            assert last.response.id == "resp_1"


@pytest.mark.parametrize("kept", [0, 1, 5, 10])
async def test_anthropic_cutoff(server, kept: int) -> None:
    canned, url = server
    body = {"model": "claude-sonnet-4-6", "messages": [{"role": "user", "content": "hi"}]}
    canned.body = _cut("anthropic_messages", body, streams.anthropic_stream(), kept)
    async with anthropic.AsyncAnthropic(base_url=url, api_key="k", max_retries=0) as client:
        async with client.messages.stream(
            model="claude-sonnet-4-6", max_tokens=100, messages=body["messages"]
        ) as stream:
            message = await stream.get_final_message()
        assert message.stop_reason == "max_tokens"
        assert message.usage.output_tokens >= 0
        if kept == 10:  # start, ping, thinking block (4), text start, 3 text deltas
            assert message.content[-1].text == "".join(streams.ANTHROPIC_TEXT[:3])
        raw = [
            e
            async for e in await client.messages.create(
                model="claude-sonnet-4-6", max_tokens=100, messages=body["messages"], stream=True
            )
        ]
        assert [e.type for e in raw][-2:] == ["message_delta", "message_stop"]


def test_gemini_cutoff_keeps_the_crlf_framing() -> None:
    body = {"contents": [{"parts": [{"text": "hi"}]}]}
    data = _cut("gemini", body, streams.gemini_stream(), 2, model="gemini-2.5-flash")
    events = SseSplitter().feed(data)
    assert events[-1].raw.endswith(b"}\r\n\r\n")
    last = json.loads(events[-1].data)
    assert last["candidates"][0]["finishReason"] == "MAX_TOKENS"
    assert last["responseId"] == "r1"
    assert last["usageMetadata"]["candidatesTokenCount"] >= 4


def test_no_cutoff_events_once_the_provider_finished() -> None:
    for name, body, stream, model in [
        ("openai_chat", CHAT_BODY, streams.chat_stream(), None),
        (
            "anthropic_messages",
            {"model": "claude-sonnet-4-6", "messages": []},
            streams.anthropic_stream(),
            None,
        ),
        ("openai_responses", {"model": "gpt-4.1"}, streams.responses_stream(), None),
        ("gemini", {"contents": []}, streams.gemini_stream(), "gemini-2.5-flash"),
    ]:
        adapter = get_adapter(name)
        counter = adapter.new_stream_counter(adapter.preflight(body, model=model))
        counter.feed(stream)
        assert counter.done and counter.cutoff_events() == b"", name
