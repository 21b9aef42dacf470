"""Wire formats the fake provider speaks: answers, SSE events and errors per provider.

Pure builders, no I/O. A ``Plan`` says what the fake will bill; each ``Wire`` renders it
as its provider does: ``start()`` events, one ``word()`` event per generated token,
``finish()`` events, or the whole non-stream ``body()``.

Where each provider reports the billed options (shapes from the official SDKs' types):
OpenAI chat: top-level ``service_tier`` in the body and in every chunk; Responses: top-level
``service_tier`` (the requested value while ``in_progress``, the served one when done) and one
``web_search_call`` / ``file_search_call`` output item per call; Anthropic: ``usage.service_tier``
and the ``usage.cache_creation`` TTL split in the message (``message_start``) only --
``message_delta`` carries the cumulative counts and ``server_tool_use`` but neither of those;
Gemini: ``groundingMetadata.webSearchQueries`` on the candidate, the served tier only in the
``x-gemini-service-tier`` response header (``usageMetadata.trafficType`` is Vertex-only).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

# Each is exactly one o200k (and cl100k) token, so a word is a generated token.
WORDS = (
    "The",
    " quick",
    " brown",
    " fox",
    " jumps",
    " over",
    " the",
    " lazy",
    " dog",
    ".",
    " and",
    " then",
    " it",
    " runs",
    " far",
    " away",
    " from",
    " home",
    " again",
    ",",
)


def word_source(limit: int | None) -> Iterator[str]:
    words = itertools.cycle(WORDS)
    return words if limit is None else itertools.islice(words, limit)


@dataclass
class Plan:
    model: str
    prompt_tokens: int  # every input token, cache reads and writes included
    cached_tokens: int = 0
    reasoning_tokens: int = 0  # hidden, billed as output
    web_search_calls: int = 0  # searches run (Gemini: distinct grounding queries)
    file_search_calls: int = 0  # Responses file_search calls run
    cache_write_5m_tokens: int = 0  # Anthropic prompt-cache writes by TTL
    cache_write_1h_tokens: int = 0
    service_tier: str | None = None  # the tier the call ran on, as the provider names it
    service_tier_requested: str | None = None  # as the request said it (Responses echo)
    speed: str | None = None  # Anthropic usage.speed
    choices: int = 1
    omit_usage: bool = False
    include_usage: bool = False  # OpenAI chat stream_options.include_usage
    created: int = 1_700_000_000
    call_id: str = "fake"


def _json(payload: Any) -> str:
    return json.dumps(payload, separators=(",", ":"))


def _sse(payload: Any, event: str | None = None, end: str = "\n") -> bytes:
    head = f"event: {event}{end}" if event else ""
    return f"{head}data: {_json(payload)}{end}{end}".encode()


class ChatWire:
    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.head = {
            "id": f"chatcmpl-{plan.call_id}",
            "object": "chat.completion.chunk",
            "created": plan.created,
            "model": plan.model,
            "service_tier": plan.service_tier,
            "system_fingerprint": "fp_fake",
        }

    def headers(self) -> dict[str, str]:
        return {}

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        payload = {**self.head, "choices": choices, **extra}
        if self.plan.include_usage and "usage" not in payload:
            payload["usage"] = None
        return _sse(payload)

    def _choices(self, delta: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
        return [
            {"index": i, "delta": delta, "logprobs": None, "finish_reason": finish}
            for i in range(self.plan.choices)
        ]

    def usage(self, words: int) -> dict[str, Any]:
        output = (words + self.plan.reasoning_tokens) * self.plan.choices
        return {
            "prompt_tokens": self.plan.prompt_tokens,
            "completion_tokens": output,
            "total_tokens": self.plan.prompt_tokens + output,
            "prompt_tokens_details": {"cached_tokens": self.plan.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": self.plan.reasoning_tokens * self.plan.choices,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def start(self) -> list[bytes]:
        return [self._chunk(self._choices({"role": "assistant", "content": "", "refusal": None}))]

    def word(self, text: str) -> bytes:
        return self._chunk(self._choices({"content": text}))

    def finish(self, words: int, truncated: bool, text: str = "") -> list[bytes]:
        events = [self._chunk(self._choices({}, "length" if truncated else "stop"))]
        if self.plan.include_usage and not self.plan.omit_usage:
            events.append(self._chunk([], usage=self.usage(words)))
        return [*events, b"data: [DONE]\n\n"]

    def body(self, text: str, words: int, truncated: bool) -> dict[str, Any]:
        choices = [
            {
                "index": i,
                "message": {
                    "role": "assistant",
                    "content": text,
                    "refusal": None,
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": "length" if truncated else "stop",
            }
            for i in range(self.plan.choices)
        ]
        answer = {**self.head, "object": "chat.completion", "choices": choices}
        if not self.plan.omit_usage:
            answer["usage"] = self.usage(words)
        return answer


class ResponsesWire:
    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.sequence = 0
        self.message_index = plan.web_search_calls + plan.file_search_calls
        self.msg_id = f"msg_{plan.call_id}"

    def headers(self) -> dict[str, str]:
        return {}

    def _event(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, **fields, "sequence_number": self.sequence}
        self.sequence += 1
        return _sse(payload, kind)

    def _searches(self) -> list[dict[str, Any]]:
        web = [
            {
                "type": "web_search_call",
                "id": f"ws_{self.plan.call_id}_{i}",
                "status": "completed",
                "action": {"type": "search", "query": f"fake query {i}"},
            }
            for i in range(self.plan.web_search_calls)
        ]
        files = [
            {
                "type": "file_search_call",
                "id": f"fs_{self.plan.call_id}_{i}",
                "status": "completed",
                "queries": [f"fake query {i}"],
                "results": None,
            }
            for i in range(self.plan.file_search_calls)
        ]
        return web + files

    def _message(self, text: str, status: str) -> dict[str, Any]:
        part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
        return {
            "type": "message",
            "id": self.msg_id,
            "status": status,
            "role": "assistant",
            "content": [part],
        }

    def response(self, status: str, output: list[Any], words: int | None) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "id": f"resp_{self.plan.call_id}",
            "object": "response",
            "created_at": self.plan.created,
            "status": status,
            "model": self.plan.model,
            "output": output,
            "error": None,
            "incomplete_details": None,
            "instructions": None,
            "metadata": {},
            "parallel_tool_calls": True,
            "temperature": 1.0,
            "top_p": 1.0,
            "tool_choice": "auto",
            "tools": [],
            "text": {"format": {"type": "text"}},
            "service_tier": self.plan.service_tier_requested or "auto",
            "usage": None,
        }
        if status != "in_progress":
            answer["service_tier"] = self.plan.service_tier
        if status == "incomplete":
            answer["incomplete_details"] = {"reason": "max_output_tokens"}
        if words is not None and not self.plan.omit_usage:
            output_tokens = words + self.plan.reasoning_tokens
            answer["usage"] = {
                "input_tokens": self.plan.prompt_tokens,
                "input_tokens_details": {"cached_tokens": self.plan.cached_tokens},
                "output_tokens": output_tokens,
                "output_tokens_details": {"reasoning_tokens": self.plan.reasoning_tokens},
                "total_tokens": self.plan.prompt_tokens + output_tokens,
            }
        return answer

    def start(self) -> list[bytes]:
        events = [
            self._event("response.created", response=self.response("in_progress", [], None)),
            self._event("response.in_progress", response=self.response("in_progress", [], None)),
        ]
        for index, item in enumerate(self._searches()):
            events.append(
                self._event(
                    "response.output_item.added",
                    output_index=index,
                    item={**item, "status": "in_progress"},
                )
            )
            events.append(self._event("response.output_item.done", output_index=index, item=item))
        message = {**self._message("", "in_progress"), "content": []}
        events.append(
            self._event("response.output_item.added", output_index=self.message_index, item=message)
        )
        events.append(
            self._event(
                "response.content_part.added",
                item_id=self.msg_id,
                output_index=self.message_index,
                content_index=0,
                part={"type": "output_text", "text": "", "annotations": [], "logprobs": []},
            )
        )
        return events

    def word(self, text: str) -> bytes:
        return self._event(
            "response.output_text.delta",
            item_id=self.msg_id,
            output_index=self.message_index,
            content_index=0,
            delta=text,
            logprobs=[],
        )

    def finish(self, words: int, truncated: bool, text: str = "") -> list[bytes]:
        status = "incomplete" if truncated else "completed"
        message = self._message(text, status)
        part = message["content"][0]
        return [
            self._event(
                "response.output_text.done",
                item_id=self.msg_id,
                output_index=self.message_index,
                content_index=0,
                text=text,
                logprobs=[],
            ),
            self._event(
                "response.content_part.done",
                item_id=self.msg_id,
                output_index=self.message_index,
                content_index=0,
                part=part,
            ),
            self._event("response.output_item.done", output_index=self.message_index, item=message),
            self._event(
                f"response.{status}",
                response=self.response(status, [*self._searches(), message], words),
            ),
        ]

    def body(self, text: str, words: int, truncated: bool) -> dict[str, Any]:
        status = "incomplete" if truncated else "completed"
        return self.response(status, [*self._searches(), self._message(text, status)], words)


class AnthropicWire:
    def __init__(self, plan: Plan) -> None:
        self.plan = plan

    def headers(self) -> dict[str, str]:
        return {}

    def usage(self, words: int, *, whole: bool = True, final: bool = True) -> dict[str, Any]:
        """``whole``: the Usage object of a message (TTL split, tier, speed); else the
        cumulative MessageDeltaUsage. ``final``: after the searches ran."""
        plan = self.plan
        writes = plan.cache_write_5m_tokens + plan.cache_write_1h_tokens
        usage: dict[str, Any] = {
            "input_tokens": plan.prompt_tokens - plan.cached_tokens - writes,
            "cache_creation_input_tokens": writes,
            "cache_read_input_tokens": plan.cached_tokens,
        }
        if whole:
            usage["cache_creation"] = {
                "ephemeral_5m_input_tokens": plan.cache_write_5m_tokens,
                "ephemeral_1h_input_tokens": plan.cache_write_1h_tokens,
            }
        usage["output_tokens"] = words + plan.reasoning_tokens
        if plan.reasoning_tokens:
            usage["output_tokens_details"] = {"thinking_tokens": plan.reasoning_tokens}
        if final and plan.web_search_calls:
            usage["server_tool_use"] = {
                "web_search_requests": plan.web_search_calls,
                "web_fetch_requests": 0,
            }
        if whole:
            usage["service_tier"] = plan.service_tier
            if plan.speed:
                usage["speed"] = plan.speed
        return usage

    def _message(
        self, content: list[Any], stop: str | None, usage: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "id": f"msg_{self.plan.call_id}",
            "type": "message",
            "role": "assistant",
            "model": self.plan.model,
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": usage,
        }

    def start(self) -> list[bytes]:
        usage = {**self.usage(0, final=False), "output_tokens": 1}
        if self.plan.omit_usage:
            usage = {"input_tokens": 0, "output_tokens": 0}
        return [
            _sse(
                {"type": "message_start", "message": self._message([], None, usage)},
                "message_start",
            ),
            _sse(
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
                "content_block_start",
            ),
            _sse({"type": "ping"}, "ping"),
        ]

    def word(self, text: str) -> bytes:
        return _sse(
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": text},
            },
            "content_block_delta",
        )

    def finish(self, words: int, truncated: bool, text: str = "") -> list[bytes]:
        delta: dict[str, Any] = {
            "type": "message_delta",
            "delta": {
                "stop_reason": "max_tokens" if truncated else "end_turn",
                "stop_sequence": None,
            },
        }
        if not self.plan.omit_usage:
            delta["usage"] = self.usage(words, whole=False)
        else:
            delta["usage"] = {"output_tokens": 0}
        return [
            _sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
            _sse(delta, "message_delta"),
            _sse({"type": "message_stop"}, "message_stop"),
        ]

    def body(self, text: str, words: int, truncated: bool) -> dict[str, Any]:
        usage = (
            {"input_tokens": 0, "output_tokens": 0} if self.plan.omit_usage else self.usage(words)
        )
        answer = self._message(
            [{"type": "text", "text": text}], "max_tokens" if truncated else "end_turn", usage
        )
        if self.plan.omit_usage:
            del answer["usage"]
        return answer


class GeminiWire:
    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.words = 0

    def headers(self) -> dict[str, str]:
        """The Gemini API names the tier it served in a header, not in the body."""
        tier = self.plan.service_tier
        return {"x-gemini-service-tier": tier} if tier else {}

    def usage(self, words: int, final: bool) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "promptTokenCount": self.plan.prompt_tokens,
            "candidatesTokenCount": words,
            "totalTokenCount": self.plan.prompt_tokens + words,
        }
        if final and self.plan.reasoning_tokens:
            meta["thoughtsTokenCount"] = self.plan.reasoning_tokens
            meta["totalTokenCount"] += self.plan.reasoning_tokens
        if self.plan.cached_tokens:
            meta["cachedContentTokenCount"] = self.plan.cached_tokens
        return meta

    def _chunk(self, text: str, finish: str | None, final: bool) -> dict[str, Any]:
        candidate: dict[str, Any] = {
            "content": {"parts": [{"text": text}], "role": "model"},
            "index": 0,
        }
        if finish:
            candidate["finishReason"] = finish
            if self.plan.web_search_calls:
                candidate["groundingMetadata"] = {
                    "webSearchQueries": [
                        f"fake query {i}" for i in range(self.plan.web_search_calls)
                    ]
                }
        chunk: dict[str, Any] = {
            "candidates": [candidate],
            "modelVersion": self.plan.model,
            "responseId": self.plan.call_id,
        }
        if not self.plan.omit_usage:
            chunk["usageMetadata"] = self.usage(self.words, final)
        return chunk

    def start(self) -> list[bytes]:
        return []

    def word(self, text: str) -> bytes:
        self.words += 1
        return _sse(self._chunk(text, None, False), end="\r\n")

    def finish(self, words: int, truncated: bool, text: str = "") -> list[bytes]:
        self.words = words
        return [_sse(self._chunk("", "MAX_TOKENS" if truncated else "STOP", True), end="\r\n")]

    def body(self, text: str, words: int, truncated: bool) -> dict[str, Any]:
        self.words = words
        return self._chunk(text, "MAX_TOKENS" if truncated else "STOP", True)


def count_tokens_body(kind: str, tokens: int) -> dict[str, Any]:
    """The answer of Anthropic ``/v1/messages/count_tokens`` or Gemini ``:countTokens``."""
    if kind == "anthropic":
        return {"input_tokens": tokens}
    details = [{"modality": "TEXT", "tokenCount": tokens}]
    return {"totalTokens": tokens, "promptTokensDetails": details}


def error_body(kind: str, status: int, message: str) -> dict[str, Any]:
    if kind == "anthropic":
        names = {
            401: "authentication_error",
            429: "rate_limit_error",
            400: "invalid_request_error",
            529: "overloaded_error",
        }
        return {
            "type": "error",
            "error": {"type": names.get(status, "api_error"), "message": message},
        }
    if kind == "gemini":
        names = {
            401: "UNAUTHENTICATED",
            429: "RESOURCE_EXHAUSTED",
            400: "INVALID_ARGUMENT",
            503: "UNAVAILABLE",
        }
        return {
            "error": {"code": status, "message": message, "status": names.get(status, "INTERNAL")}
        }
    names = {401: "invalid_request_error", 429: "rate_limit_exceeded", 400: "invalid_request_error"}
    return {
        "error": {
            "message": message,
            "type": names.get(status, "server_error"),
            "param": None,
            "code": "invalid_api_key" if status == 401 else None,
        }
    }
