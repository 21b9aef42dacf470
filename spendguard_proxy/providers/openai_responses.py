"""OpenAI Responses API (and xAI's copy of it): shaping, usage, stream counting."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from spendguard_proxy.errors import InvalidRequest
from spendguard_proxy.providers import base
from spendguard_proxy.providers.base import Preflight, StreamCounter
from spendguard_proxy.providers.estimate import estimate_input
from spendguard_proxy.providers.sse import SseEvent, encode_event
from spendguard_proxy.usage import Usage

_SETTINGS_KEYS = frozenset(
    {
        "model",
        "stream",
        "stream_options",
        "max_output_tokens",
        "max_tool_calls",
        "temperature",
        "top_p",
        "user",
        "metadata",
        "store",
        "service_tier",
        "include",
        "previous_response_id",
        "conversation",
        "background",
        "parallel_tool_calls",
        "reasoning",
        "truncation",
        "top_logprobs",
        "prompt_cache_key",
        "safety_identifier",
    }
)
# Server-side state the provider adds to the input: its size is unknown to us.
_STORED_CONTEXT_KEYS = ("previous_response_id", "conversation", "prompt")
# Delta events that carry no generated text (audio bytes; a shell tool's own output).
_NOT_GENERATED = frozenset({"response.audio.delta", "response.shell_call_output_content.delta"})
_TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})


def _is_web_search(kind: Any) -> bool:
    return isinstance(kind, str) and kind.startswith(("web_search", "x_search"))


@dataclass(frozen=True)
class ResponsesAdapter:
    name: str
    pricing_provider: str
    base_url_setting: str
    api_key_setting: str
    api_key_env: str

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
        inp = body.get("input")
        if inp is not None and not isinstance(inp, (str, list)):
            raise InvalidRequest("input must be a string or a list of input items")
        if isinstance(inp, list):
            base.list_of_objects(body, "input", required=True)
        if body.get("instructions") is not None and not isinstance(body["instructions"], str):
            raise InvalidRequest("instructions must be a string")
        tools = base.list_of_objects(body, "tools", required=False)
        builtin = [
            t for t in tools if _is_web_search(t.get("type")) or t.get("type") == "file_search"
        ]
        estimate = estimate_input(
            body, provider=self.pricing_provider, model=model, skip_keys=_SETTINGS_KEYS
        )
        stored = any(body.get(key) is not None for key in _STORED_CONTEXT_KEYS)
        return Preflight(
            model=model,
            stream=base.optional_bool(body, "stream"),
            input_tokens=estimate.tokens,
            requested_max_tokens=base.optional_positive_int(body, "max_output_tokens"),
            max_tokens_field="max_output_tokens",
            # Search results and retrieved chunks are billed as input we cannot see.
            input_unbounded=estimate.unbounded or stored or bool(builtin),
            fees=_builtin_fees(body, builtin),
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
        out["max_output_tokens"] = max_tokens
        if stream or "stream" in out:
            out["stream"] = stream
        headers = base.forwarded_headers(client_headers)
        headers["content-type"] = "application/json"
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        return f"{base_url.rstrip('/')}/responses", headers, base.dump_json(out)

    def usage_from_json(self, answer: Any, preflight: Preflight | None = None) -> Usage | None:
        if not isinstance(answer, dict) or not isinstance(answer.get("usage"), dict):
            return None
        return responses_usage(answer)

    def new_stream_counter(
        self, preflight: Preflight, client_wants_usage: bool | None = None
    ) -> ResponsesStreamCounter:
        return ResponsesStreamCounter(preflight, True, self.pricing_provider)

    def client_api_key(self, client_headers: Mapping[str, str]) -> str | None:
        return base.bearer_token(client_headers)


def responses_usage(response: dict[str, Any], extra_items: Sequence[Any] = ()) -> Usage:
    usage = response.get("usage") or {}
    given = base.positive_or_zero(usage.get("input_tokens"))
    output = base.positive_or_zero(usage.get("output_tokens"))
    total = base.positive_or_zero(usage.get("total_tokens"))
    output = max(output, total - given)  # xAI may leave reasoning out of output_tokens
    in_details = usage.get("input_tokens_details")
    out_details = usage.get("output_tokens_details")
    cached = (
        base.positive_or_zero(in_details.get("cached_tokens"))
        if isinstance(in_details, dict)
        else 0
    )
    reasoning = (
        base.positive_or_zero(out_details.get("reasoning_tokens"))
        if isinstance(out_details, dict)
        else 0
    )
    items = response.get("output")
    items = items if isinstance(items, list) and items else list(extra_items)
    kinds = [item.get("type") for item in items if isinstance(item, dict)]
    return Usage(
        input_tokens=given,
        output_tokens=output,
        cached_input_tokens=min(cached, given),
        reasoning_tokens=min(reasoning, output),
        web_search_calls=sum(
            1
            for kind in kinds
            if isinstance(kind, str) and kind.startswith(("web_search_call", "x_search_call"))
        ),
        file_search_calls=kinds.count("file_search_call"),
    )


class ResponsesStreamCounter(StreamCounter):
    def __init__(self, preflight: Preflight, client_wants_usage: bool, provider: str) -> None:
        super().__init__(preflight, client_wants_usage, provider)
        self._response: dict[str, Any] = {}
        self._sequence = -1
        self._items: dict[int, dict[str, Any]] = {}
        self._items_done: set[int] = set()
        self._texts: dict[tuple[int, int], list[str]] = {}  # (item, part) -> text deltas
        self._arguments: dict[int, list[str]] = {}

    def _on_event(self, event: SseEvent, payload: Any) -> bool:
        if not isinstance(payload, dict):
            return True
        kind = payload.get("type") or event.event or ""
        sequence = payload.get("sequence_number")
        if isinstance(sequence, int):
            self._sequence = max(self._sequence, sequence)
        if kind in ("response.created", "response.in_progress", "response.queued"):
            if isinstance(payload.get("response"), dict):
                self._response = payload["response"]
        elif kind in _TERMINAL:
            self._finish(payload.get("response"))
        elif kind.endswith(".delta") and kind not in _NOT_GENERATED:
            self._delta(kind, payload)
        elif kind.startswith("response.output_item.") or kind == "response.content_part.added":
            self._track_item(kind, payload)
        return True

    def _delta(self, kind: str, payload: dict[str, Any]) -> None:
        delta = payload.get("delta")
        if not isinstance(delta, str):
            return
        self._count(
            delta, (kind, str(payload.get("output_index")), str(payload.get("content_index")))
        )
        index = payload.get("output_index")
        if not isinstance(index, int):
            return
        if kind == "response.output_text.delta":
            part = payload.get("content_index", 0)
            self._texts.setdefault((index, part if isinstance(part, int) else 0), []).append(delta)
        elif kind == "response.function_call_arguments.delta":
            self._arguments.setdefault(index, []).append(delta)

    def _track_item(self, kind: str, payload: dict[str, Any]) -> None:
        index = payload.get("output_index")
        if not isinstance(index, int):
            return
        if kind == "response.content_part.added":
            item = self._items.get(index)
            part = payload.get("part")
            if item is not None and isinstance(part, dict):
                item.setdefault("content", []).append(dict(part))
            return
        item = payload.get("item")
        if isinstance(item, dict):
            self._items[index] = dict(item)
            if kind == "response.output_item.done":
                self._items_done.add(index)
                if item.get("type") == "function_call":
                    self._count(item.get("name"), ("name", index))

    def _finish(self, response: Any) -> None:
        self.done = True
        if isinstance(response, dict) and isinstance(response.get("usage"), dict):
            done_items = [self._items[i] for i in sorted(self._items_done)]
            self.usage = responses_usage(response, done_items)
            self._tally.add_reported(self.usage.output_tokens)

    # ---------------------------------------------------------------- cutoff

    def cutoff_events(self) -> bytes:
        if self.done:
            return b""
        out = b""
        if not self._response:  # cut before response.created: the SDKs need one first
            self._response = {
                "id": "resp_spendguard_cutoff",
                "object": "response",
                "created_at": 0,
                "model": self.preflight.model,
                "status": "in_progress",
                "output": [],
            }
            out += self._event("response.created", {"response": self._response})
        response = {
            **self._response,
            "status": "incomplete",
            "incomplete_details": {"reason": "max_output_tokens"},
            "output": self._partial_output(),
            "usage": self._usage_estimate(),
        }
        return out + self._event("response.incomplete", {"response": response})

    def _event(self, kind: str, fields: dict[str, Any]) -> bytes:
        self._sequence += 1
        payload = {"type": kind, **fields, "sequence_number": self._sequence}
        return encode_event(json.dumps(payload, separators=(",", ":")), kind)

    def _partial_output(self) -> list[dict[str, Any]]:
        output = []
        for index in sorted(self._items):
            item = dict(self._items[index])
            if index not in self._items_done:
                item["status"] = "incomplete"
                if index in self._arguments:
                    item["arguments"] = "".join(self._arguments[index])
                parts = item.get("content")
                if isinstance(parts, list):
                    item["content"] = [self._filled(index, n, p) for n, p in enumerate(parts)]
            output.append(item)
        return output

    def _filled(self, index: int, part_index: int, part: Any) -> Any:
        deltas = self._texts.get((index, part_index))
        if isinstance(part, dict) and deltas is not None:
            return {**part, "text": "".join(deltas)}
        return part

    def _usage_estimate(self) -> dict[str, Any]:
        given = self.preflight.input_tokens
        output = self.output_tokens
        return {
            "input_tokens": given,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": output,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": given + output,
        }


OPENAI_RESPONSES = ResponsesAdapter(
    name="openai_responses",
    pricing_provider="openai",
    base_url_setting="openai_base_url",
    api_key_setting="openai_api_key",
    api_key_env="OPENAI_API_KEY",
)

GROK_RESPONSES = ResponsesAdapter(
    name="grok_responses",
    pricing_provider="grok",
    base_url_setting="xai_base_url",
    api_key_setting="xai_api_key",
    api_key_env="XAI_API_KEY",
)


def _builtin_fees(body: dict[str, Any], builtin: list[dict[str, Any]]) -> dict[str, int]:
    cap = base.tool_calls_cap(body, bool(builtin))
    fees: dict[str, int] = {}
    for tool in builtin:
        unit = "web_searches" if _is_web_search(tool.get("type")) else "storage_searches"
        fees[unit] = cap
    return fees
