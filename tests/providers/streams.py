"""SSE streams shaped like the providers' recorded answers (tool calls, reasoning, CJK, emoji)."""

from __future__ import annotations

import json
from typing import Any


def _data(payload: Any) -> bytes:
    return b"data: " + json.dumps(payload, ensure_ascii=False).encode() + b"\n\n"


def _event(kind: str, payload: Any) -> bytes:
    return f"event: {kind}\n".encode() + _data(payload)


def crlf(stream: bytes) -> bytes:
    """The same stream with CRLF line ends (JSON payloads hold no raw newlines)."""
    return stream.replace(b"\n", b"\r\n")


# ---------------------------------------------------------------- OpenAI chat

_HEAD = {
    "id": "chatcmpl-abc",
    "object": "chat.completion.chunk",
    "created": 1730000000,
    "model": "gpt-4o-2024-08-06",
    "system_fingerprint": "fp_1",
    "usage": None,
}
CHAT_TEXT = ["Hello", " wörld", " 你好", "世界", " 👩‍👩‍👧", " `x = {1: 2}`"]
CHAT_TOOL_ARGS = ['{"ci', 'ty": "Pa', 'ris"}']


def chat_stream(*, usage_chunk: bool = True) -> bytes:
    chunks = [
        _data(
            {
                **_HEAD,
                "choices": [
                    {
                        "index": 0,
                        "delta": {"role": "assistant", "content": ""},
                        "logprobs": None,
                        "finish_reason": None,
                    }
                ],
            }
        )
    ]
    for text in CHAT_TEXT:
        chunks.append(
            _data(
                {
                    **_HEAD,
                    "choices": [
                        {
                            "index": 0,
                            "delta": {"content": text},
                            "logprobs": None,
                            "finish_reason": None,
                        }
                    ],
                }
            )
        )
    call = {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    chunks.append(
        _data(
            {
                **_HEAD,
                "choices": [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}],
            }
        )
    )
    for part in CHAT_TOOL_ARGS:
        delta = {"tool_calls": [{"index": 0, "function": {"arguments": part}}]}
        chunks.append(
            _data({**_HEAD, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
        )
    chunks.append(
        _data({**_HEAD, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    )
    if usage_chunk:
        usage = {
            "prompt_tokens": 57,
            "completion_tokens": 31,
            "total_tokens": 88,
            "prompt_tokens_details": {"cached_tokens": 12, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        }
        chunks.append(_data({**_HEAD, "choices": [], "usage": usage}))
    chunks.append(b"data: [DONE]\n\n")
    return b"".join(chunks)


def xai_chat_stream() -> bytes:
    """Grok: reasoning_content deltas, reasoning left out of completion_tokens."""
    head = {
        "id": "d8e0",
        "object": "chat.completion.chunk",
        "created": 1761231382,
        "model": "grok-3-mini",
        "system_fingerprint": "fp_x",
    }
    chunks = [
        _data(
            {
                **head,
                "choices": [
                    {"index": 0, "delta": {"reasoning_content": word, "role": "assistant"}}
                ],
            }
        )
        for word in ["First", ",", " the", " user", " asked"]
    ]
    chunks += [
        _data({**head, "choices": [{"index": 0, "delta": {"content": word}}]})
        for word in ["Olá", "!"]
    ]
    chunks.append(
        _data(
            {
                **head,
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                "usage": {
                    "prompt_tokens": 20,
                    "completion_tokens": 2,
                    "total_tokens": 322,
                    "completion_tokens_details": {"reasoning_tokens": 300},
                },
            }
        )
    )
    chunks.append(b"data: [DONE]\n\n")
    return b"".join(chunks)


# ---------------------------------------------------------------- OpenAI Responses

RESPONSES_TEXT = ["Die", " Antwort", " ist", " 42", " ✅", " 東京"]


def responses_stream(*, finish: str = "response.completed") -> bytes:
    response = {
        "id": "resp_1",
        "object": "response",
        "created_at": 1740000000,
        "status": "in_progress",
        "model": "gpt-4.1",
        "output": [],
        "usage": None,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
    }
    seq = iter(range(1000))
    out = [
        _event(
            "response.created",
            {"type": "response.created", "response": response, "sequence_number": next(seq)},
        ),
        _event(
            "response.in_progress",
            {"type": "response.in_progress", "response": response, "sequence_number": next(seq)},
        ),
    ]
    search = {
        "type": "web_search_call",
        "id": "ws_1",
        "status": "completed",
        "action": {"type": "search", "query": "answer"},
    }
    out.append(
        _event(
            "response.output_item.added",
            {
                "type": "response.output_item.added",
                "output_index": 0,
                "item": {**search, "status": "in_progress"},
                "sequence_number": next(seq),
            },
        )
    )
    out.append(
        _event(
            "response.output_item.done",
            {
                "type": "response.output_item.done",
                "output_index": 0,
                "item": search,
                "sequence_number": next(seq),
            },
        )
    )
    message = {
        "type": "message",
        "id": "msg_1",
        "status": "in_progress",
        "role": "assistant",
        "content": [],
    }
    out.append(
        _event(
            "response.output_item.added",
            {
                "type": "response.output_item.added",
                "output_index": 1,
                "item": message,
                "sequence_number": next(seq),
            },
        )
    )
    part = {"type": "output_text", "text": "", "annotations": []}
    out.append(
        _event(
            "response.content_part.added",
            {
                "type": "response.content_part.added",
                "item_id": "msg_1",
                "output_index": 1,
                "content_index": 0,
                "part": part,
                "sequence_number": next(seq),
            },
        )
    )
    for text in RESPONSES_TEXT:
        out.append(
            _event(
                "response.output_text.delta",
                {
                    "type": "response.output_text.delta",
                    "item_id": "msg_1",
                    "output_index": 1,
                    "content_index": 0,
                    "delta": text,
                    "sequence_number": next(seq),
                },
            )
        )
    if finish is None:
        return b"".join(out)
    full = "".join(RESPONSES_TEXT)
    done_message = {
        **message,
        "status": "completed",
        "content": [{"type": "output_text", "text": full, "annotations": []}],
    }
    out.append(
        _event(
            "response.output_item.done",
            {
                "type": "response.output_item.done",
                "output_index": 1,
                "item": done_message,
                "sequence_number": next(seq),
            },
        )
    )
    final = {
        **response,
        "status": finish.removeprefix("response."),
        "output": [search, done_message],
        "usage": {
            "input_tokens": 300,
            "input_tokens_details": {"cached_tokens": 100},
            "output_tokens": 150,
            "output_tokens_details": {"reasoning_tokens": 120},
            "total_tokens": 450,
        },
    }
    out.append(_event(finish, {"type": finish, "response": final, "sequence_number": next(seq)}))
    return b"".join(out)


# ---------------------------------------------------------------- Anthropic

ANTHROPIC_TEXT = ["Bonjour", " le", " monde", " 🌍", " — ", "日本語"]


def anthropic_stream(*, until_stop: bool = True) -> bytes:
    start = {
        "type": "message_start",
        "message": {
            "id": "msg_01",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": 25,
                "cache_creation_input_tokens": 1000,
                "cache_read_input_tokens": 2000,
                "output_tokens": 1,
            },
        },
    }
    out = [_event("message_start", start), _event("ping", {"type": "ping"})]
    out.append(
        _event(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "thinking", "thinking": ""},
            },
        )
    )
    out.append(
        _event(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "thinking_delta", "thinking": "Let me think."},
            },
        )
    )
    out.append(
        _event(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "signature_delta", "signature": "EqQBCgIYAhIM" * 20},
            },
        )
    )
    out.append(_event("content_block_stop", {"type": "content_block_stop", "index": 0}))
    out.append(
        _event(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {"type": "text", "text": ""},
            },
        )
    )
    for text in ANTHROPIC_TEXT:
        out.append(
            _event(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 1,
                    "delta": {"type": "text_delta", "text": text},
                },
            )
        )
    if not until_stop:
        return b"".join(out)
    out.append(_event("content_block_stop", {"type": "content_block_stop", "index": 1}))
    out.append(
        _event(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 2,
                "content_block": {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "get_weather",
                    "input": {},
                },
            },
        )
    )
    for part in ['{"location":', ' "Par', 'is"}']:
        out.append(
            _event(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 2,
                    "delta": {"type": "input_json_delta", "partial_json": part},
                },
            )
        )
    out.append(_event("content_block_stop", {"type": "content_block_stop", "index": 2}))
    out.append(
        _event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                "usage": {
                    "output_tokens": 89,
                    "server_tool_use": {"web_search_requests": 2, "web_fetch_requests": 0},
                },
            },
        )
    )
    out.append(_event("message_stop", {"type": "message_stop"}))
    return b"".join(out)


# ---------------------------------------------------------------- Gemini

GEMINI_TEXT = ["Ein", "mal ", "ist ", "keinmal. ", "一期一会 ", "🎌"]


def gemini_stream(*, finish: bool = True) -> bytes:
    """Gemini frames events with CRLF, and reports usage in every chunk."""
    out = []
    for n, text in enumerate(GEMINI_TEXT, start=1):
        chunk = {
            "candidates": [{"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}],
            "usageMetadata": {
                "promptTokenCount": 40,
                "candidatesTokenCount": n * 2,
                "totalTokenCount": 40 + n * 2,
            },
            "modelVersion": "gemini-2.5-flash",
            "responseId": "r1",
        }
        out.append(b"data: " + json.dumps(chunk, ensure_ascii=False).encode() + b"\r\n\r\n")
    if finish:
        last = {
            "candidates": [
                {
                    "content": {"parts": [{"text": ""}], "role": "model"},
                    "finishReason": "STOP",
                    "index": 0,
                    "groundingMetadata": {"webSearchQueries": ["a", "b", "c"]},
                }
            ],
            "usageMetadata": {
                "promptTokenCount": 40,
                "candidatesTokenCount": 14,
                "thoughtsTokenCount": 200,
                "cachedContentTokenCount": 10,
                "toolUsePromptTokenCount": 60,
                "totalTokenCount": 314,
            },
            "modelVersion": "gemini-2.5-flash",
            "responseId": "r1",
        }
        out.append(b"data: " + json.dumps(last).encode() + b"\r\n\r\n")
    return b"".join(out)
