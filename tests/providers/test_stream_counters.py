from __future__ import annotations

import json
from dataclasses import dataclass
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spendguard_proxy.providers.base import Adapter, StreamCounter
from spendguard_proxy.providers.registry import get_adapter
from spendguard_proxy.providers.sse import SseSplitter
from spendguard_proxy.tokens import bpe_count
from spendguard_proxy.usage import Usage

from . import streams
from .splits import chunkings, every_byte

FUZZ = settings(max_examples=60, deadline=None, database=None)

MESSAGES = [{"role": "user", "content": "hi"}]


@dataclass(frozen=True)
class Case:
    adapter: str
    body: dict
    stream: bytes
    usage: Usage
    visible_text: str  # text deltas the counter must at least count
    client_wants_usage: bool = False
    model: str | None = None


CASES = {
    "openai_chat": Case(
        "openai_chat",
        {"model": "gpt-4o", "messages": MESSAGES},
        streams.chat_stream(),
        Usage(input_tokens=57, output_tokens=31, cached_input_tokens=12),
        "".join(streams.CHAT_TEXT + streams.CHAT_TOOL_ARGS),
    ),
    "openai_chat_usage": Case(
        "openai_chat",
        {"model": "gpt-4o", "messages": MESSAGES},
        streams.chat_stream(),
        Usage(input_tokens=57, output_tokens=31, cached_input_tokens=12),
        "".join(streams.CHAT_TEXT),
        client_wants_usage=True,
    ),
    "grok_chat": Case(
        "grok_chat",
        {"model": "grok-3-mini", "messages": MESSAGES},
        streams.xai_chat_stream(),
        Usage(input_tokens=20, output_tokens=302, reasoning_tokens=300),
        "First, the user askedOlá!",
    ),
    "openai_responses": Case(
        "openai_responses",
        {"model": "gpt-4.1", "input": "hi"},
        streams.responses_stream(),
        Usage(
            input_tokens=300,
            output_tokens=150,
            cached_input_tokens=100,
            reasoning_tokens=120,
            web_search_calls=1,
        ),
        "".join(streams.RESPONSES_TEXT),
    ),
    "anthropic_messages": Case(
        "anthropic_messages",
        {"model": "claude-sonnet-4-5", "messages": MESSAGES},
        streams.anthropic_stream(),
        Usage(
            input_tokens=3025,
            output_tokens=89,
            cache_write_tokens=1000,
            cache_read_tokens=2000,
            web_search_calls=2,
        ),
        "".join(streams.ANTHROPIC_TEXT),
    ),
    "gemini": Case(
        "gemini",
        {"contents": [{"parts": [{"text": "hi"}]}]},
        streams.gemini_stream(),
        Usage(
            input_tokens=100,
            output_tokens=214,
            cached_input_tokens=10,
            reasoning_tokens=200,
            grounding_queries=3,  # Gemini 3 bills each query (2.x: one per grounded prompt)
        ),
        "".join(streams.GEMINI_TEXT),
        model="gemini-3.5-flash",
    ),
}


def _counter(case: Case) -> tuple[Adapter, StreamCounter]:
    adapter = get_adapter(case.adapter)
    preflight = adapter.preflight(case.body, model=case.model, stream=True)
    return adapter, adapter.new_stream_counter(preflight, case.client_wants_usage)


def _run(case: Case, chunks: list[bytes]) -> tuple[list[bytes], StreamCounter]:
    _, counter = _counter(case)
    out = [event for chunk in chunks for event in counter.feed(chunk)]
    return out + counter.finish(), counter


def _state(counter: StreamCounter) -> tuple:
    return counter.usage, counter.output_tokens, counter.done, counter.started_output


@pytest.mark.parametrize("name", CASES)
def test_whole_stream(name: str) -> None:
    case = CASES[name]
    forwarded, counter = _run(case, [case.stream])
    assert counter.done
    assert counter.usage == case.usage
    assert counter.started_output
    assert counter.output_tokens >= bpe_count("o200k_base", case.visible_text)
    assert counter.output_tokens >= case.usage.output_tokens  # reported mid-stream: max of both
    if case.adapter == "openai_chat" and not case.client_wants_usage:
        assert b"".join(forwarded) == case.stream.replace(_usage_event(case.stream), b"")
    else:
        assert b"".join(forwarded) == case.stream


def _usage_event(stream: bytes) -> bytes:
    for event in SseSplitter().feed(stream):
        payload = json.loads(event.data) if event.data != "[DONE]" else {}
        if payload.get("choices") == [] and payload.get("usage"):
            return event.raw
    raise AssertionError("no usage-only chunk")


@pytest.mark.parametrize("name", CASES)
def test_byte_by_byte_and_crlf(name: str) -> None:
    case = CASES[name]
    whole, reference = _run(case, [case.stream])
    forwarded, counter = _run(case, every_byte(case.stream))
    assert forwarded == whole and _state(counter) == _state(reference)
    crlf_case = Case(**{**case.__dict__, "stream": streams.crlf(case.stream)})
    forwarded, counter = _run(crlf_case, [crlf_case.stream])
    assert b"".join(forwarded).replace(b"\r\n", b"\n") == b"".join(whole)
    assert _state(counter) == _state(reference)


@FUZZ
@given(data=st.data(), name=st.sampled_from(sorted(CASES)))
def test_random_chunk_boundaries(data: st.DataObject, name: str) -> None:
    case = CASES[name]
    whole, reference = _run(case, [case.stream])
    forwarded, counter = _run(case, data.draw(chunkings(case.stream)))
    assert forwarded == whole
    assert _state(counter) == _state(reference)


def test_counts_grow_as_text_arrives_and_reported_usage_raises_them() -> None:
    case = CASES["gemini"]
    _, counter = _counter(case)
    seen = []
    for event in SseSplitter().feed(case.stream):
        counter.feed(event.raw)
        seen.append(counter.output_tokens)
    assert seen == sorted(seen)
    assert seen[-1] == 214  # the provider's own final figure, above our count


def test_not_done_and_no_usage_when_the_stream_stops_early() -> None:
    for name, stream in [
        ("anthropic_messages", streams.anthropic_stream(until_stop=False)),
        ("openai_responses", streams.responses_stream(finish=None)),
        ("gemini", streams.gemini_stream(finish=False)),
        ("openai_chat", streams.chat_stream().split(b"data: [DONE]")[0][:-30]),
    ]:
        case = Case(**{**CASES[name].__dict__, "stream": stream})
        _, counter = _run(case, [stream])
        assert not counter.done and counter.usage is None, name
        assert counter.started_output and counter.output_tokens > 0, name


def test_events_that_are_not_json_pass_through() -> None:
    case = CASES["anthropic_messages"]
    _, counter = _counter(case)
    raw = b": comment\n\nevent: weird\ndata: {not json\n\ndata: [1,2]\n\n"
    assert b"".join(counter.feed(raw)) == raw
    assert counter.output_tokens == 0 and not counter.started_output


def test_chat_usage_chunk_of_a_mid_stream_provider_error_is_forwarded() -> None:
    case = CASES["openai_chat"]
    _, counter = _counter(case)
    error = b'data: {"error": {"message": "overloaded", "type": "server_error"}}\n\n'
    assert counter.feed(error) == [error]
    assert not counter.done


def test_parser_throughput() -> None:
    import time

    case = CASES["anthropic_messages"]
    stream = case.stream * 50
    _run(case, [case.stream])  # tokenizers loaded
    started = time.perf_counter()
    _run(case, [stream[i : i + 1500] for i in range(0, len(stream), 1500)])
    elapsed = time.perf_counter() - started
    assert len(stream) / elapsed > 2_000_000, f"{len(stream) / elapsed / 1e6:.1f} MB/s"


def test_usage_json_round_trip() -> None:
    assert json.loads(json.dumps(CASES["gemini"].usage.as_dict()))["grounding_queries"] == 3


def _anthropic_text_stream(deltas: list[str]) -> bytes:
    events = [
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    ]
    events += [
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": d}}
        for d in deltas
    ]
    return b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)


@FUZZ
@given(text=st.text(min_size=1, max_size=300), cuts=st.lists(st.integers(0, 300), max_size=30))
def test_count_does_not_depend_on_how_the_provider_cut_the_text(text: str, cuts: list[int]) -> None:
    edges = [0, *sorted(c for c in cuts if c < len(text)), len(text)]
    deltas = [text[a:b] for a, b in pairwise(edges) if text[a:b]]
    counts = []
    for pieces in ([text], deltas):
        _, counter = _counter(CASES["anthropic_messages"])
        counter.feed(_anthropic_text_stream(pieces))
        counts.append((counter.output_tokens, counter.output_tokens_upper))
    assert counts[0] == counts[1]
    exact = max(bpe_count("o200k_base", text), bpe_count("cl100k_base", text))
    assert counts[0] == (exact, -(-exact * 3 // 2))


def test_openai_count_is_the_exact_encoding() -> None:
    _, counter = _counter(CASES["openai_chat"])
    counter.feed(streams.chat_stream())
    content = "".join(streams.CHAT_TEXT)
    tool = "get_weather" + "".join(streams.CHAT_TOOL_ARGS)
    counted = bpe_count("o200k_base", content) + bpe_count("o200k_base", tool)
    assert counter.output_tokens_upper == max(counted, 31)


# ---------------------------------------------------------------- tier and cache-TTL usage


def _sse(payloads: list[dict], *, named: bool = False) -> bytes:
    out = b""
    for payload in payloads:
        if named:
            out += f"event: {payload['type']}\n".encode()
        out += b"data: " + json.dumps(payload).encode() + b"\n\n"
    return out


def _stream_usage(adapter_name: str, body: dict, stream: bytes, model: str | None = None):
    adapter = get_adapter(adapter_name)
    counter = adapter.new_stream_counter(adapter.preflight(body, model=model, stream=True))
    for chunk in every_byte(stream):
        counter.feed(chunk)
    counter.finish()
    assert counter.done
    return counter.usage


def test_chat_stream_reports_the_tier_that_served_it() -> None:
    head = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-6-sol",
            "service_tier": "priority"}
    stream = _sse([
        {**head, "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}]},
        {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {**head, "choices": [], "usage": {
            "prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12,
            "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 8}}},
    ]) + b"data: [DONE]\n\n"
    body = {"model": "gpt-6-sol", "messages": MESSAGES, "service_tier": "priority"}
    usage = _stream_usage("openai_chat", body, stream)
    assert usage == Usage(input_tokens=10, output_tokens=2, cache_write_tokens=8,
                          service_tier="priority")


def test_chat_json_answer_reports_its_tier() -> None:
    answer = {"service_tier": "default",
              "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}}
    usage = get_adapter("openai_chat").usage_from_json(answer)
    assert usage is not None and usage.service_tier == "default"


def test_responses_stream_reports_tier_and_cache_writes() -> None:
    response = {"id": "r1", "object": "response", "model": "gpt-6-sol", "status": "completed",
                "service_tier": "flex", "output": [
                    {"type": "code_interpreter_call", "id": "ci1"},
                    {"type": "message", "content": [{"type": "output_text", "text": "ok"}]}],
                "usage": {"input_tokens": 40, "output_tokens": 3, "total_tokens": 43,
                          "input_tokens_details": {"cached_tokens": 10, "cache_write_tokens": 30},
                          "output_tokens_details": {"reasoning_tokens": 0}}}
    stream = _sse([
        {"type": "response.created", "sequence_number": 0,
         "response": {**response, "status": "in_progress", "output": [], "usage": None}},
        {"type": "response.output_text.delta", "sequence_number": 1, "output_index": 1,
         "content_index": 0, "delta": "ok"},
        {"type": "response.completed", "sequence_number": 2, "response": response},
    ], named=True)
    body = {"model": "gpt-6-sol", "input": "hi", "service_tier": "flex"}
    usage = _stream_usage("openai_responses", body, stream)
    assert usage == Usage(input_tokens=40, output_tokens=3, cached_input_tokens=10,
                          cache_write_tokens=30, code_executions=1, service_tier="flex")


def test_anthropic_stream_reads_1h_cache_writes_and_tier() -> None:
    start_usage = {
        "input_tokens": 5, "output_tokens": 1, "cache_creation_input_tokens": 3000,
        "cache_read_input_tokens": 0, "service_tier": "standard",
        "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 2000},
    }
    stream = _sse([
        {"type": "message_start", "message": {
            "id": "m1", "type": "message", "role": "assistant", "model": "claude-opus-5",
            "content": [], "usage": start_usage}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0,
         "delta": {"type": "text_delta", "text": "Hello"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
         "usage": {"output_tokens": 2}},
        {"type": "message_stop"},
    ], named=True)
    body = {"model": "claude-opus-5", "messages": MESSAGES, "system": [
        {"type": "text", "text": "long", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]}
    usage = _stream_usage("anthropic_messages", body, stream)
    assert usage == Usage(input_tokens=3005, output_tokens=2, cache_write_tokens=3000,
                          cache_write_1h_tokens=2000, service_tier="standard")
    assert get_adapter("anthropic_messages").preflight(body).cache_write == "1h"


def test_anthropic_json_answer_1h_writes_are_a_part_of_all_writes() -> None:
    answer = {"usage": {"input_tokens": 1, "output_tokens": 1, "cache_creation_input_tokens": 0,
                        "cache_creation": {"ephemeral_1h_input_tokens": 50},
                        "service_tier": "priority"}}
    usage = get_adapter("anthropic_messages").usage_from_json(answer)
    assert usage is not None
    assert (usage.cache_write_tokens, usage.cache_write_1h_tokens) == (50, 50)
    assert usage.input_tokens == 51 and usage.service_tier == "priority"


def test_gemini_usage_reads_a_reported_tier() -> None:
    answer = {"usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2,
                                "totalTokenCount": 5, "serviceTier": "SERVICE_TIER_FLEX"}}
    usage = get_adapter("gemini").usage_from_json(answer)
    assert usage is not None and usage.service_tier == "flex"
    plain = get_adapter("gemini").usage_from_json({"usageMetadata": {"promptTokenCount": 1}})
    assert plain is not None and plain.service_tier is None
