"""OpenAI Chat Completions (and xAI Grok's copy of it): shaping, usage, stream counting."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from spendguard_proxy.errors import InvalidRequest
from spendguard_proxy.providers import base, fields
from spendguard_proxy.providers.base import Preflight, StreamCounter
from spendguard_proxy.providers.estimate import contains_key, estimate_input
from spendguard_proxy.providers.fields import BOUNDED, FREE, bounded, free, refused
from spendguard_proxy.providers.sse import SseEvent
from spendguard_proxy.usage import Usage

_SETTINGS_KEYS = frozenset(
    {
        "model",
        "stream",
        "stream_options",
        "max_tokens",
        "max_completion_tokens",
        "n",
        "temperature",
        "top_p",
        "seed",
        "user",
        "metadata",
        "store",
        "service_tier",
        "logit_bias",
        "logprobs",
        "top_logprobs",
        "presence_penalty",
        "frequency_penalty",
        "parallel_tool_calls",
        "reasoning_effort",
        "verbosity",
        "prompt_cache_key",
        "prompt_cache_options",
        "prompt_cache_retention",
        "safety_identifier",
        "modalities",
        "store_messages",
        "use_encrypted_content",
        "max_turns",
        "include",
    }
)
_MAX_FIELDS = ("max_completion_tokens", "max_tokens")

_OUTPUT_CAP = "output stays under the max tokens SpendGuard clamps"
_INPUT = "counted into the input-token estimate"
_SAMPLING = free(f"sampling control; {_OUTPUT_CAP}")
_ID = free("an identifier: no effect on the bill")
_TIER = bounded(
    "priced by the model's service_tier price variant, refused where the price table has "
    "none; absent or 'auto' is sent upstream as 'default' (the project default may be priority)",
    {"auto": BOUNDED, "default": BOUNDED},
    other=BOUNDED,  # any other tier: the price table decides (400 UnpricedOption if unpriced)
)
_CACHE = (
    "prompt-cache writes are priced at the cache-write rate (SpendGuard holds all input at it)"
)
_SHARED: dict[str, fields.Rule] = {
    "model": bounded("selects the price row (an unpriced model is refused)"),
    "messages": bounded(_INPUT),
    "max_tokens": bounded("the output cap SpendGuard prices and clamps"),
    "max_completion_tokens": bounded("the output cap SpendGuard prices and clamps"),
    "n": bounded("priced per choice: n x the output cap"),
    "stream": free("same tokens; SpendGuard asks for the final usage upstream itself"),
    "stream_options": free(
        "usage reporting (SpendGuard sets include_usage upstream)",
        fields={"include_usage": free(), "include_obfuscation": free()},
    ),
    "temperature": _SAMPLING,
    "top_p": _SAMPLING,
    "seed": _SAMPLING,
    "stop": _SAMPLING,
    "presence_penalty": _SAMPLING,
    "frequency_penalty": _SAMPLING,
    "logprobs": free("response detail"),
    "top_logprobs": free("response detail"),
    "user": _ID,
    "safety_identifier": _ID,
    "parallel_tool_calls": free("tool-call shape only"),
    "tool_choice": free("tool selection only"),
    "tools": bounded(f"definitions are {_INPUT}; each tool type below"),
    "response_format": bounded(f"a JSON schema is {_INPUT}"),
    "reasoning_effort": free(f"reasoning tokens are output; {_OUTPUT_CAP}"),
    "service_tier": _TIER,
}

# OpenAI chat completions (openai 3.57.0 CompletionCreateParams).
OPENAI_CHAT_FIELDS: dict[str, fields.Rule] = {
    **_SHARED,
    "metadata": free("stored with the completion"),
    "store": free("stored completions are not billed"),
    "logit_bias": _SAMPLING,
    "verbosity": free(_OUTPUT_CAP),
    "functions": bounded(f"legacy tool definitions, {_INPUT}"),
    "function_call": free("legacy tool_choice"),
    "prediction": bounded(
        "rejected prediction tokens are billed as output and count against the output cap "
        "SpendGuard clamps"
    ),
    "prompt_cache_key": free("a cache routing hint"),
    "prompt_cache_options": bounded(_CACHE),
    "prompt_cache_retention": bounded(_CACHE),
    "web_search_options": bounded(
        "search models run one web search per request: its fee is in the hold (refused where "
        "the model has no web-search price); results count as unseen input"
    ),
    "modalities": bounded(
        "text only: audio output is priced at an audio rate the hold does not cover",
        {"text": FREE},
    ),
    "audio": refused("audio output is priced at an audio rate the hold does not cover"),
    "moderation": refused("runs a moderation model with no price in the price table"),
}
OPENAI_CHAT_TOOLS: dict[str, fields.Rule] = {
    "function": bounded(f"the definition is {_INPUT}"),
    "custom": bounded(f"the definition is {_INPUT}"),
}

# xAI chat completions: OpenAI's fields minus some, plus xAI's own (xai_sdk GetCompletionsRequest).
_XAI_SERVER_TOOL = refused(
    "xAI bills each server-side tool call, and SpendGuard cannot cap their number upstream "
    "(max_turns limits turns, not calls)"
)
GROK_CHAT_FIELDS: dict[str, fields.Rule] = {
    **_SHARED,
    "search_parameters": refused(
        "Live Search bills per source retrieved and is retired by xAI; use server-side tools"
    ),
    "previous_response_id": bounded("stored context is unseen input, bounded by the context"),
    "store_messages": free("storage is not billed"),
    "use_encrypted_content": free("response detail"),
    "include": free("response detail"),
    "max_turns": free("limits agentic turns (server-side tools are refused)"),
    "agent_count": refused("multi-agent runs multiply the tokens by an undocumented factor"),
    "guidelines": bounded(_INPUT),
}
GROK_CHAT_TOOLS: dict[str, fields.Rule] = {
    "function": bounded(f"the definition is {_INPUT}"),
    **{
        kind: _XAI_SERVER_TOOL
        for kind in (
            "web_search",
            "x_search",
            "code_execution",
            "code_interpreter",
            "collections_search",
            "attachment_search",
            "file_search",
            "image_generation",
        )
    },
    "mcp": refused("remote MCP tool results enter the context with no size cap"),
}


def openai_price_context(adapter: str, body: Mapping[str, Any],
                         forwarded: frozenset[str]) -> dict[str, str]:
    """The price variant of an OpenAI-style ``service_tier`` (standard: no key). A tier the
    operator forwards is priced at standard rates (that is the documented risk)."""
    tier = body.get("service_tier")
    if tier is None:
        return {}
    if not isinstance(tier, str):
        raise InvalidRequest("service_tier must be a string")
    if tier in ("auto", "default") or fields.is_forwarded(adapter, "service_tier", tier, forwarded):
        return {}
    return {"service_tier": tier}


def pin_openai_tier(out: dict[str, Any], provider: str) -> None:
    """Send the tier SpendGuard priced: absent or 'auto' would take the OpenAI project's
    default, which may be priority. xAI publishes no tiers, so nothing is added there."""
    if provider == "openai" and out.get("service_tier") in (None, "auto"):
        out["service_tier"] = "default"


def writes_prompt_cache(body: Mapping[str, Any]) -> bool:
    """OpenAI writes the prompt cache by default (one implicit breakpoint); only
    ``prompt_cache_options.mode: explicit`` without any breakpoint writes nothing."""
    options = body.get("prompt_cache_options")
    explicit = isinstance(options, dict) and options.get("mode") == "explicit"
    return not explicit or contains_key(body, "prompt_cache_breakpoint")


@dataclass(frozen=True, eq=False)
class ChatAdapter:
    name: str
    pricing_provider: str
    base_url_setting: str
    api_key_setting: str
    api_key_env: str
    default_max_field: str  # clamped when the client sent neither field
    field_table: Mapping[str, fields.Rule]
    tool_table: Mapping[str, fields.Rule]

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
        base.list_of_objects(body, "messages", required=True)
        tools = base.list_of_objects(body, "tools", required=False)
        fields.check_fields(self.name, body, self.field_table, forwarded)
        fields.check_tools(self.name, tools, self.tool_table, forwarded, default_type="function")
        stream_options = base.optional_object(body, "stream_options")
        wants_usage = base.optional_bool(stream_options, "include_usage")
        sent = {f: base.optional_positive_int(body, f) for f in _MAX_FIELDS}
        given = [value for value in sent.values() if value is not None]
        field = next((f for f in _MAX_FIELDS if sent[f] is not None), self.default_max_field)
        web_search = body.get("web_search_options") is not None
        priced_search = web_search and not fields.is_forwarded(
            self.name, "web_search_options", None, forwarded
        )
        estimate = estimate_input(
            body, provider=self.pricing_provider, model=model, skip_keys=_SETTINGS_KEYS
        )
        return Preflight(
            model=model,
            stream=base.optional_bool(body, "stream"),
            input_tokens=estimate.tokens,
            media_tokens=estimate.media,
            requested_max_tokens=min(given) if given else None,
            max_tokens_field=field,
            choices=base.optional_positive_int(body, "n") or 1,
            input_unbounded=estimate.unbounded
            or web_search
            or body.get("previous_response_id") is not None,
            cache_write="5m" if writes_prompt_cache(body) else None,
            # Search-preview models run one search per request.
            fees={"web_searches": 1} if priced_search else {},
            price_context=openai_price_context(self.name, body, forwarded),
            client_wants_usage=wants_usage,
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
        present = [f for f in _MAX_FIELDS if out.get(f) is not None]
        for field in present or [self.default_max_field]:
            out[field] = max_tokens
        if stream:
            out["stream"] = True
            out["stream_options"] = {**(out.get("stream_options") or {}), "include_usage": True}
        elif "stream" in out:
            out["stream"] = False
        pin_openai_tier(out, self.pricing_provider)
        headers = base.openai_style_headers(client_headers, api_key)
        return f"{base_url.rstrip('/')}/chat/completions", headers, base.dump_json(out)

    def usage_from_json(self, answer: Any, preflight: Preflight | None = None) -> Usage | None:
        usage = answer.get("usage") if isinstance(answer, dict) else None
        if not isinstance(usage, dict):
            return None
        searches = preflight.fees.get("web_searches", 0) if preflight else 0
        return chat_usage(usage, web_searches=searches, service_tier=answer.get("service_tier"))

    def new_stream_counter(
        self, preflight: Preflight, client_wants_usage: bool | None = None
    ) -> ChatStreamCounter:
        wants = preflight.client_wants_usage if client_wants_usage is None else client_wants_usage
        return ChatStreamCounter(preflight, wants, self.pricing_provider)

    def client_api_key(self, client_headers: Mapping[str, str]) -> str | None:
        return base.bearer_token(client_headers)


def chat_usage(
    usage: dict[str, Any], *, web_searches: int = 0, service_tier: Any = None
) -> Usage:
    prompt = base.positive_or_zero(usage.get("prompt_tokens"))
    completion = base.positive_or_zero(usage.get("completion_tokens"))
    total = base.positive_or_zero(usage.get("total_tokens"))
    # xAI leaves reasoning out of completion_tokens on some models (total = prompt +
    # completion + reasoning); OpenAI includes it. total - prompt is right for both.
    output = max(completion, total - prompt)
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    cached = base.positive_or_zero(_get(prompt_details, "cached_tokens"))
    writes = base.positive_or_zero(_get(prompt_details, "cache_write_tokens"))
    reasoning = base.positive_or_zero(_get(completion_details, "reasoning_tokens"))
    sources = base.positive_or_zero(usage.get("num_sources_used"))  # xAI live search
    return Usage(
        input_tokens=prompt,
        output_tokens=output,
        cached_input_tokens=min(cached, prompt),
        reasoning_tokens=min(reasoning, output),
        cache_write_tokens=min(writes, prompt),
        input_audio_tokens=base.positive_or_zero(_get(prompt_details, "audio_tokens")),
        input_image_tokens=base.positive_or_zero(_get(prompt_details, "image_tokens")),
        output_audio_tokens=base.positive_or_zero(_get(completion_details, "audio_tokens")),
        web_search_calls=max(web_searches, sources),
        service_tier=service_tier if isinstance(service_tier, str) else None,
    )


def _get(container: Any, key: str) -> Any:
    return container.get(key) if isinstance(container, dict) else None


class ChatStreamCounter(StreamCounter):
    def __init__(self, preflight: Preflight, client_wants_usage: bool, provider: str) -> None:
        super().__init__(preflight, client_wants_usage, provider)
        self._last_usage: Usage | None = None
        self._meta: dict[str, Any] = {}
        self._choices_seen: set[int] = set()
        self._choices_finished: set[int] = set()

    def _on_event(self, event: SseEvent, payload: Any) -> bool:
        if event.data == "[DONE]":
            self.done = True
            if self.usage is None:
                self.usage = self._last_usage
            return True
        if not isinstance(payload, dict):
            return True
        for key in ("id", "model", "created", "system_fingerprint", "service_tier"):
            if key in payload:
                self._meta[key] = payload[key]
        choices = payload.get("choices")
        if isinstance(choices, list):
            for choice in choices:
                self._on_choice(choice)
        usage = payload.get("usage")
        if isinstance(usage, dict):
            self._last_usage = chat_usage(
                usage,
                web_searches=self.preflight.fees.get("web_searches", 0),
                service_tier=self._meta.get("service_tier"),
            )
            self._tally.add_reported(self._last_usage.output_tokens)
            if not choices:  # the usage-only chunk include_usage adds at the end
                self.usage = self._last_usage
                return self.client_wants_usage
        return True

    def _on_choice(self, choice: Any) -> None:
        if not isinstance(choice, dict):
            return
        index = choice.get("index", 0)
        if not isinstance(index, int):
            index = 0
        self._choices_seen.add(index)
        if choice.get("finish_reason"):
            self._choices_finished.add(index)
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            return
        for key in ("content", "refusal", "reasoning_content", "reasoning"):
            self._count(delta.get(key), (index, key))
        audio = delta.get("audio")
        if isinstance(audio, dict):
            self._count(audio.get("transcript"), (index, "audio"))
        calls = delta.get("tool_calls")
        for call in calls if isinstance(calls, list) else ():
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                channel = (index, "tool", str(call.get("index")))
                self._count(function.get("name"), channel)
                self._count(function.get("arguments"), channel)

    def cutoff_events(self) -> bytes:
        if self.done:
            return b""
        head = {
            "id": self._meta.get("id", "chatcmpl-spendguard-cutoff"),
            "object": "chat.completion.chunk",
            "created": self._meta.get("created", 0),
            "model": self._meta.get("model", self.preflight.model),
        }
        if "system_fingerprint" in self._meta:
            head["system_fingerprint"] = self._meta["system_fingerprint"]
        open_choices = sorted((self._choices_seen or {0}) - self._choices_finished)
        out = b""
        if open_choices:
            choices = [
                {"index": i, "delta": {}, "logprobs": None, "finish_reason": "length"}
                for i in open_choices
            ]
            out += _data({**head, "choices": choices})
        if self.client_wants_usage:
            out += _data({**head, "choices": [], "usage": self._usage_estimate()})
        return out + b"data: [DONE]\n\n"

    def _usage_estimate(self) -> dict[str, int]:
        prompt = self.preflight.input_tokens
        completion = self.output_tokens
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }


def _data(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


OPENAI_CHAT = ChatAdapter(
    name="openai_chat",
    pricing_provider="openai",
    base_url_setting="openai_base_url",
    api_key_setting="openai_api_key",
    api_key_env="OPENAI_API_KEY",
    default_max_field="max_completion_tokens",  # o-series reject max_tokens
    field_table=OPENAI_CHAT_FIELDS,
    tool_table=OPENAI_CHAT_TOOLS,
)

GROK_CHAT = ChatAdapter(
    name="grok_chat",
    pricing_provider="grok",
    base_url_setting="xai_base_url",
    api_key_setting="xai_api_key",
    api_key_env="XAI_API_KEY",
    default_max_field="max_tokens",
    field_table=GROK_CHAT_FIELDS,
    tool_table=GROK_CHAT_TOOLS,
)
