"""Anthropic Messages: shaping, usage, stream counting.

Anthropic's ``usage.input_tokens`` leaves out cache writes and cache reads; ``Usage``
counts every input token, so the three are added up here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from spendguard_proxy.errors import InvalidRequest
from spendguard_proxy.providers import base
from spendguard_proxy.providers.base import Preflight, StreamCounter, ThinkingBudgetUnaffordable
from spendguard_proxy.providers.estimate import contains_key, estimate_input
from spendguard_proxy.providers.sse import SseEvent, encode_event
from spendguard_proxy.usage import Usage

DEFAULT_VERSION = "2023-06-01"
THINKING_BUDGET_MIN = 1024

_SETTINGS_KEYS = frozenset(
    {
        "model",
        "stream",
        "max_tokens",
        "temperature",
        "top_p",
        "top_k",
        "metadata",
        "service_tier",
        "thinking",
        "container",
        "context_management",
        "inference_geo",
    }
)
# Server tools add what they fetch or run to the input, by amounts unknown in advance.
_SERVER_TOOL_PREFIXES = ("web_search_", "web_fetch_", "code_execution_", "bash_code_execution")


@dataclass(frozen=True)
class AnthropicAdapter:
    name: str = "anthropic_messages"
    pricing_provider: str = "anthropic"
    base_url_setting: str = "anthropic_base_url"
    api_key_setting: str = "anthropic_api_key"
    api_key_env: str = "ANTHROPIC_API_KEY"

    def preflight(
        self,
        body: Any,
        *,
        model: str | None = None,
        stream: bool | None = None,
        forwarded: frozenset[str] = frozenset(),
    ) -> Preflight:
        body = base.require_object(body)
        model = base.require_model(body.get("model"))
        base.list_of_objects(body, "messages", required=True)
        system = body.get("system")
        if system is not None and not isinstance(system, (str, list)):
            raise InvalidRequest("system must be a string or a list of content blocks")
        tools = base.list_of_objects(body, "tools", required=False)
        thinking = base.optional_object(body, "thinking")
        budget = None
        if thinking.get("type") == "enabled":
            budget = base.optional_positive_int(thinking, "budget_tokens", "thinking.budget_tokens")
        searches = _web_search_cap(tools)
        server_tools = any(str(t.get("type", "")).startswith(_SERVER_TOOL_PREFIXES) for t in tools)
        estimate = estimate_input(
            body, provider=self.pricing_provider, model=model, skip_keys=_SETTINGS_KEYS
        )
        return Preflight(
            model=model,
            stream=base.optional_bool(body, "stream"),
            input_tokens=estimate.tokens,
            requested_max_tokens=base.optional_positive_int(body, "max_tokens"),
            max_tokens_field="max_tokens",
            input_unbounded=estimate.unbounded or server_tools or bool(body.get("mcp_servers")),
            cache_write="5m" if contains_key(body, "cache_control") else None,
            fees={"web_searches": searches} if searches else {},
            thinking_budget=budget,
        )

    def build_upstream(
        self,
        body: dict[str, Any],
        *,
        max_tokens: int,
        stream: bool,
        base_url: str,
        api_key: str | None,
        client_headers: Mapping[str, str],
        model: str | None = None,
    ) -> tuple[str, dict[str, str], bytes]:
        out = dict(body)
        out["max_tokens"] = max_tokens
        if stream or "stream" in out:
            out["stream"] = stream
        thinking = out.get("thinking")
        if isinstance(thinking, dict) and thinking.get("type") == "enabled":
            out["thinking"] = _fit_thinking(thinking, max_tokens)
        headers = base.forwarded_headers(client_headers)
        headers.setdefault("anthropic-version", DEFAULT_VERSION)
        headers["content-type"] = "application/json"
        if api_key:
            headers["x-api-key"] = api_key
        return f"{base_url.rstrip('/')}/v1/messages", headers, base.dump_json(out)

    def usage_from_json(self, answer: Any, preflight: Preflight | None = None) -> Usage | None:
        usage = answer.get("usage") if isinstance(answer, dict) else None
        return anthropic_usage(usage) if isinstance(usage, dict) else None

    def new_stream_counter(
        self, preflight: Preflight, client_wants_usage: bool | None = None
    ) -> AnthropicStreamCounter:
        return AnthropicStreamCounter(preflight, True, self.pricing_provider)

    def client_api_key(self, client_headers: Mapping[str, str]) -> str | None:
        return base.header(client_headers, "x-api-key") or base.bearer_token(client_headers)


def _web_search_cap(tools: list[dict[str, Any]]) -> int:
    total = 0
    for tool in tools:
        if str(tool.get("type", "")).startswith("web_search_"):
            uses = tool.get("max_uses")
            valid = isinstance(uses, int) and not isinstance(uses, bool) and uses > 0
            total += uses if valid else base.DEFAULT_TOOL_CALLS_MAX
    return total


def _fit_thinking(thinking: dict[str, Any], max_tokens: int) -> dict[str, Any]:
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int) or budget < max_tokens:
        return thinking
    if max_tokens - 1 < THINKING_BUDGET_MIN:
        raise ThinkingBudgetUnaffordable(max_tokens, THINKING_BUDGET_MIN)
    return {**thinking, "budget_tokens": max_tokens - 1}


def anthropic_usage(usage: dict[str, Any]) -> Usage:
    uncached = base.positive_or_zero(usage.get("input_tokens"))
    writes = base.positive_or_zero(usage.get("cache_creation_input_tokens"))
    reads = base.positive_or_zero(usage.get("cache_read_input_tokens"))
    output = base.positive_or_zero(usage.get("output_tokens"))
    details = usage.get("output_tokens_details")
    thinking = (
        base.positive_or_zero(details.get("thinking_tokens")) if isinstance(details, dict) else 0
    )
    server = usage.get("server_tool_use")
    searches = (
        base.positive_or_zero(server.get("web_search_requests")) if isinstance(server, dict) else 0
    )
    return Usage(
        input_tokens=uncached + writes + reads,
        output_tokens=output,
        reasoning_tokens=min(thinking, output),
        cache_write_tokens=writes,
        cache_read_tokens=reads,
        web_search_calls=searches,
    )


class AnthropicStreamCounter(StreamCounter):
    def __init__(self, preflight: Preflight, client_wants_usage: bool, provider: str) -> None:
        super().__init__(preflight, client_wants_usage, provider)
        self._message: dict[str, Any] | None = None
        self._usage_fields: dict[str, Any] = {}
        self._saw_delta_usage = False
        self._open_blocks: set[int] = set()

    def _on_event(self, event: SseEvent, payload: Any) -> bool:
        if not isinstance(payload, dict):
            return True
        kind = payload.get("type") or event.event
        if kind == "message_start" and isinstance(payload.get("message"), dict):
            self._message = payload["message"]
            self._merge_usage(self._message.get("usage"))
        elif kind == "content_block_start":
            self._block_start(payload)
        elif kind == "content_block_delta":
            self._block_delta(payload.get("delta"), str(payload.get("index")))
        elif kind == "content_block_stop" and isinstance(payload.get("index"), int):
            self._open_blocks.discard(payload["index"])
        elif kind == "message_delta":
            self._saw_delta_usage |= isinstance(payload.get("usage"), dict)
            self._merge_usage(payload.get("usage"))
        elif kind == "message_stop":
            self.done = True
            if self._saw_delta_usage:
                self.usage = anthropic_usage(self._usage_fields)
        return True

    def _merge_usage(self, usage: Any) -> None:
        # message_delta repeats the figures cumulatively; null means "not reported here".
        if isinstance(usage, dict):
            self._usage_fields.update({k: v for k, v in usage.items() if v is not None})
            self._tally.add_reported(base.positive_or_zero(self._usage_fields.get("output_tokens")))

    def _block_start(self, payload: dict[str, Any]) -> None:
        index = payload.get("index")
        if isinstance(index, int):
            self._open_blocks.add(index)
        block = payload.get("content_block")
        if isinstance(block, dict):
            channel = str(index)
            for key in ("text", "thinking", "name"):
                self._count(block.get(key), channel)
            if block.get("input"):
                self._count(json.dumps(block["input"]), channel)

    def _block_delta(self, delta: Any, channel: str) -> None:
        if not isinstance(delta, dict):
            return
        kind = delta.get("type")
        if kind == "text_delta":
            self._count(delta.get("text"), channel)
        elif kind == "input_json_delta":
            self._count(delta.get("partial_json"), channel)
        elif kind == "thinking_delta":
            self._count(delta.get("thinking"), channel)

    def cutoff_events(self) -> bytes:
        if self.done:
            return b""
        out = b""
        if self._message is None:  # cut before message_start: the SDKs need one first
            self._message = _empty_message(self.preflight)
            out += _event("message_start", {"message": self._message})
        for index in sorted(self._open_blocks):
            out += _event("content_block_stop", {"index": index})
        usage = {"output_tokens": self.output_tokens}
        delta = {"stop_reason": "max_tokens", "stop_sequence": None}
        out += _event("message_delta", {"delta": delta, "usage": usage})
        return out + _event("message_stop", {})


def _empty_message(preflight: Preflight) -> dict[str, Any]:
    return {
        "id": "msg_spendguard_cutoff",
        "type": "message",
        "role": "assistant",
        "model": preflight.model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": preflight.input_tokens, "output_tokens": 0},
    }


def _event(kind: str, fields: dict[str, Any]) -> bytes:
    return encode_event(json.dumps({"type": kind, **fields}, separators=(",", ":")), kind)


ANTHROPIC_MESSAGES = AnthropicAdapter()
