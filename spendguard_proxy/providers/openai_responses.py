"""OpenAI Responses API (and xAI's copy of it): shaping, usage, stream counting."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from spendguard_proxy.errors import InvalidRequest
from spendguard_proxy.providers import base, fields
from spendguard_proxy.providers.base import Preflight, StreamCounter
from spendguard_proxy.providers.estimate import estimate_input
from spendguard_proxy.providers.fields import BOUNDED, FREE, Kind, Rule, bounded, free, refused
from spendguard_proxy.providers.openai_chat import (
    GROK_CHAT_TOOLS,
    openai_price_context,
    pin_openai_tier,
    writes_prompt_cache,
)
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
        "prompt_cache_options",
        "prompt_cache_retention",
        "safety_identifier",
        "background_options",
        "image",
        "max_turns",
    }
)
# Server-side state the provider adds to the input: its size is unknown to us.
_STORED_CONTEXT_KEYS = ("previous_response_id", "conversation", "prompt")
# Delta events that carry no generated text (audio bytes; a shell tool's own output).
_NOT_GENERATED = frozenset({"response.audio.delta", "response.shell_call_output_content.delta"})
_TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})

_INPUT = "counted into the input-token estimate"
_OUTPUT_CAP = "output stays under the max_output_tokens SpendGuard clamps"
_SAMPLING = free(f"sampling control; {_OUTPUT_CAP}")
_STORED = bounded(
    "stored context is input SpendGuard cannot see: reserved as CAP_UNSEEN_INPUT_TOKENS"
)
_CACHE = "prompt-cache writes are priced at the cache-write rate (SpendGuard holds all input at it)"
_SHARED: dict[str, Rule] = {
    "model": bounded("selects the price row (an unpriced model is refused)"),
    "input": bounded(_INPUT),
    "instructions": bounded(_INPUT),
    "max_output_tokens": bounded("the output cap SpendGuard prices and clamps"),
    "max_tool_calls": bounded(
        "caps built-in tool calls: SpendGuard prices that many and sends the cap upstream"
    ),
    "stream": free("same tokens; usage arrives in the terminal event"),
    "stream_options": free(fields={"include_obfuscation": free()}),
    "temperature": _SAMPLING,
    "top_p": _SAMPLING,
    "top_logprobs": free("response detail"),
    "user": free("an identifier"),
    "metadata": free("stored with the response"),
    "store": free("stored responses are not billed"),
    "parallel_tool_calls": free("tool-call shape only"),
    "tool_choice": free("tool selection only"),
    "truncation": free("'auto' only drops input; the estimate of the full input bounds it"),
    "include": free("adds data to the response only"),
    "text": bounded(f"a JSON schema format is {_INPUT}; verbosity stays under the output cap"),
    "tools": bounded(f"definitions are {_INPUT}; each tool type below"),
    "previous_response_id": _STORED,
    "service_tier": bounded(
        "priced by the model's service_tier price variant, refused where the price table has "
        "none; absent or 'auto' is sent upstream as 'default' (the project default may be "
        "priority)",
        {"auto": BOUNDED, "default": BOUNDED},
        other=BOUNDED,
    ),
    "background": bounded(
        "a background response returns before its usage is known",
        {"false": FREE},
    ),
}

# OpenAI Responses (openai 3.57.0 ResponseCreateParams).
OPENAI_RESPONSES_FIELDS: dict[str, Rule] = {
    **_SHARED,
    "reasoning": bounded(
        f"reasoning tokens are output; {_OUTPUT_CAP}",
        fields={
            "effort": free(_OUTPUT_CAP),
            "summary": free(_OUTPUT_CAP),
            "generate_summary": free(_OUTPUT_CAP),
            "context": free("re-rendered reasoning is part of the input items counted"),
            "mode": Rule(
                Kind.BOUNDED,
                "only the standard reasoning mode has a price in the price table",
                {"standard": FREE},
            ),
        },
    ),
    "safety_identifier": free("an identifier"),
    "prompt_cache_key": free("a cache routing hint"),
    "prompt_cache_options": bounded(
        _CACHE,
        fields={
            "mode": free("which breakpoints are written; all input is held at the write rate"),
            "ttl": Rule(
                Kind.BOUNDED,
                "only the 30-minute cache write has a price in the price table",
                {"30m": BOUNDED},
            ),
            "prewarm": bounded("bills the input (a cache write) and no output"),
            "comparison_response_id": free("cache diagnostics"),
        },
    ),
    "prompt_cache_retention": bounded(_CACHE),
    "background_options": free(
        "'2h'/'8h' completion windows are discounts, bounded by the standard price",
        fields={"completion_window": free(), "continuation_id": free()},
    ),
    "conversation": _STORED,
    "image": free(
        "image context compression only lowers image tokens",
        fields={"context_compression": free()},
    ),
    "access_programs": free(
        "the standard program only",
        fields={"cyber": Rule(Kind.FREE, "Daybreak programs have no price in the price table",
                              {"standard": FREE})},
    ),
    "prompt": refused(
        "a stored prompt template of unknown size, which can also set the model and tools"
    ),
    "context_management": refused(
        "server-side compaction runs extra model work SpendGuard cannot bound"
    ),
    "moderation": refused("runs a moderation model with no price in the price table"),
}
_CLIENT_TOOL = bounded(
    "executed by the client: the call is output, its result input of the next request"
)
_DEFINITION = bounded(f"the definition is {_INPUT}")
# Built-in tools billed per call, by their fee unit in the price table.
_FEE_UNITS = {
    "web_search": "web_searches",
    "web_search_2025_08_26": "web_searches",
    "web_search_preview": "web_searches",
    "web_search_preview_2025_03_11": "web_searches",
    "file_search": "storage_searches",
    "code_interpreter": "code_executions",
}
_FEE_TOOL = bounded(
    "billed per call: max_tool_calls x its fee is in the hold (refused where the price table "
    "has no fee) and SpendGuard sends max_tool_calls upstream; results count as unseen input"
)
OPENAI_RESPONSES_TOOLS: dict[str, Rule] = {
    "function": _DEFINITION,
    "custom": _DEFINITION,
    "namespace": _DEFINITION,
    "computer": _CLIENT_TOOL,
    "computer_use_preview": _CLIENT_TOOL,
    "local_shell": _CLIENT_TOOL,
    "apply_patch": _CLIENT_TOOL,
    **{kind: _FEE_TOOL for kind in _FEE_UNITS},
    "shell": refused("a hosted shell runs in a container billed by the session"),
    "image_generation": refused(
        "generated images are priced per image, which the hold does not cover"
    ),
    "mcp": refused("remote MCP tool results enter the context with no size cap"),
    "programmatic_tool_calling": refused(
        "model-written code calls tools in a loop with no published bound"
    ),
    "tool_search": refused("server-side tool search has no published fee"),
}

# xAI Responses: OpenAI's shape, xAI's fields; the same tools as xAI's chat completions.
GROK_RESPONSES_FIELDS: dict[str, Rule] = {
    **_SHARED,
    "reasoning": bounded(f"reasoning tokens are output; {_OUTPUT_CAP}",
                         fields={"effort": free(_OUTPUT_CAP), "summary": free(_OUTPUT_CAP)}),
    "logprobs": free("response detail"),
    "max_turns": free("limits agentic turns (server-side tools are refused)"),
    "search_parameters": refused(
        "Live Search bills per source retrieved and is retired by xAI; use server-side tools"
    ),
}
GROK_RESPONSES_TOOLS = GROK_CHAT_TOOLS


def _builtin_kinds(tools: Sequence[Any]) -> list[str]:
    return [
        t["type"] for t in tools if isinstance(t, dict) and t.get("type") in _FEE_UNITS
    ]


def tool_calls_cap(body: Mapping[str, Any]) -> int:
    """The built-in tool calls the hold prices and ``max_tool_calls`` sends upstream."""
    tools = body.get("tools")
    return base.tool_calls_cap(body, bool(_builtin_kinds(tools if isinstance(tools, list) else [])))


@dataclass(frozen=True, eq=False)
class ResponsesAdapter:
    name: str
    pricing_provider: str
    base_url_setting: str
    api_key_setting: str
    api_key_env: str
    field_table: Mapping[str, Rule]
    tool_table: Mapping[str, Rule]

    def preflight(
        self,
        body: Any,
        *,
        model: str | None = None,
        stream: bool | None = None,
        forwarded: frozenset[str] = frozenset(),
        headers: Mapping[str, str] | None = None,
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
        fields.check_fields(self.name, body, self.field_table, forwarded)
        kinds = fields.check_tools(self.name, tools, self.tool_table, forwarded,
                                   default_type="function")
        cap = tool_calls_cap(body)
        fees: dict[str, int] = {}
        for kind in kinds:
            unit = _FEE_UNITS.get(kind)
            if unit and not fields.is_forwarded(self.name, "tools", kind, forwarded):
                fees[unit] = cap  # the cap is shared by all built-in tools
        estimate = estimate_input(
            body, provider=self.pricing_provider, model=model, skip_keys=_SETTINGS_KEYS
        )
        stored = any(body.get(key) is not None for key in _STORED_CONTEXT_KEYS)
        return Preflight(
            model=model,
            stream=base.optional_bool(body, "stream"),
            input_tokens=estimate.tokens,
            media_tokens=estimate.media,
            requested_max_tokens=base.optional_positive_int(body, "max_output_tokens"),
            max_tokens_field="max_output_tokens",
            # Search results and retrieved chunks are billed as input we cannot see.
            input_unbounded=estimate.unbounded or stored or bool(_builtin_kinds(tools)),
            cache_write="5m" if writes_prompt_cache(body) else None,
            fees=fees,
            price_context=openai_price_context(self.name, body, forwarded),
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
        price_context: Mapping[str, str] | None = None,  # the variant priced
    ) -> tuple[str, dict[str, str], bytes]:
        out = dict(body)
        out["max_output_tokens"] = max_tokens
        if stream or "stream" in out:
            out["stream"] = stream
        tools = out.get("tools")
        if isinstance(tools, list) and _builtin_kinds(tools):
            out["max_tool_calls"] = tool_calls_cap(out)  # the cap the hold priced
        pin_openai_tier(out, self.pricing_provider)
        headers = base.openai_style_headers(client_headers, api_key)
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
    writes = (
        base.positive_or_zero(in_details.get("cache_write_tokens"))
        if isinstance(in_details, dict)
        else 0
    )
    items = response.get("output")
    items = items if isinstance(items, list) and items else list(extra_items)
    kinds = [item.get("type") for item in items if isinstance(item, dict)]
    tier = response.get("service_tier")
    return Usage(
        input_tokens=given,
        output_tokens=output,
        cached_input_tokens=min(cached, given),
        reasoning_tokens=min(reasoning, output),
        cache_write_tokens=min(writes, given),
        web_search_calls=sum(
            1
            for kind in kinds
            if isinstance(kind, str) and kind.startswith(("web_search_call", "x_search_call"))
        ),
        file_search_calls=kinds.count("file_search_call"),
        code_executions=kinds.count("code_interpreter_call"),
        service_tier=tier if isinstance(tier, str) else None,
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
    field_table=OPENAI_RESPONSES_FIELDS,
    tool_table=OPENAI_RESPONSES_TOOLS,
)

GROK_RESPONSES = ResponsesAdapter(
    name="grok_responses",
    pricing_provider="grok",
    base_url_setting="xai_base_url",
    api_key_setting="xai_api_key",
    api_key_env="XAI_API_KEY",
    field_table=GROK_RESPONSES_FIELDS,
    tool_table=GROK_RESPONSES_TOOLS,
)
