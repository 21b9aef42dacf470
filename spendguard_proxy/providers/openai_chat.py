"""OpenAI Chat Completions (and xAI Grok's copy of it): shaping, usage, stream counting."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from spendguard_proxy.providers import base
from spendguard_proxy.providers.base import Preflight, StreamCounter
from spendguard_proxy.providers.estimate import estimate_input
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
        "safety_identifier",
        "modalities",
    }
)
_MAX_FIELDS = ("max_completion_tokens", "max_tokens")


@dataclass(frozen=True)
class ChatAdapter:
    name: str
    pricing_provider: str
    base_url_setting: str
    api_key_setting: str
    api_key_env: str
    default_max_field: str  # clamped when the client sent neither field

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
        base.list_of_objects(body, "tools", required=False)
        stream_options = base.optional_object(body, "stream_options")
        wants_usage = base.optional_bool(stream_options, "include_usage")
        sent = {f: base.optional_positive_int(body, f) for f in _MAX_FIELDS}
        given = [value for value in sent.values() if value is not None]
        field = next((f for f in _MAX_FIELDS if sent[f] is not None), self.default_max_field)
        web_search = body.get("web_search_options") is not None
        estimate = estimate_input(
            body, provider=self.pricing_provider, model=model, skip_keys=_SETTINGS_KEYS
        )
        return Preflight(
            model=model,
            stream=base.optional_bool(body, "stream"),
            input_tokens=estimate.tokens,
            requested_max_tokens=min(given) if given else None,
            max_tokens_field=field,
            choices=base.optional_positive_int(body, "n") or 1,
            input_unbounded=estimate.unbounded or web_search,
            # Search-preview models run one search per request.
            fees={"web_searches": 1} if web_search else {},
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
        headers = base.forwarded_headers(client_headers)
        headers["content-type"] = "application/json"
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        return f"{base_url.rstrip('/')}/chat/completions", headers, base.dump_json(out)

    def usage_from_json(self, answer: Any, preflight: Preflight | None = None) -> Usage | None:
        usage = answer.get("usage") if isinstance(answer, dict) else None
        if not isinstance(usage, dict):
            return None
        return chat_usage(usage, web_searches=preflight.fees.get("web_searches", 0) if preflight else 0)

    def new_stream_counter(
        self, preflight: Preflight, client_wants_usage: bool | None = None
    ) -> ChatStreamCounter:
        wants = preflight.client_wants_usage if client_wants_usage is None else client_wants_usage
        return ChatStreamCounter(preflight, wants, self.pricing_provider)

    def client_api_key(self, client_headers: Mapping[str, str]) -> str | None:
        return base.bearer_token(client_headers)


def chat_usage(usage: dict[str, Any], *, web_searches: int = 0) -> Usage:
    prompt = base.positive_or_zero(usage.get("prompt_tokens"))
    completion = base.positive_or_zero(usage.get("completion_tokens"))
    total = base.positive_or_zero(usage.get("total_tokens"))
    # xAI leaves reasoning out of completion_tokens on some models (total = prompt +
    # completion + reasoning); OpenAI includes it. total - prompt is right for both.
    output = max(completion, total - prompt)
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    cached = base.positive_or_zero(_get(prompt_details, "cached_tokens"))
    reasoning = base.positive_or_zero(_get(completion_details, "reasoning_tokens"))
    sources = base.positive_or_zero(usage.get("num_sources_used"))  # xAI live search
    return Usage(
        input_tokens=prompt,
        output_tokens=output,
        cached_input_tokens=min(cached, prompt),
        reasoning_tokens=min(reasoning, output),
        web_search_calls=max(web_searches, sources),
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
        for key in ("id", "model", "created", "system_fingerprint"):
            if key in payload:
                self._meta[key] = payload[key]
        choices = payload.get("choices")
        if isinstance(choices, list):
            for choice in choices:
                self._on_choice(choice)
        usage = payload.get("usage")
        if isinstance(usage, dict):
            self._last_usage = chat_usage(usage, web_searches=self.preflight.fees.get("web_searches", 0))
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
)

GROK_CHAT = ChatAdapter(
    name="grok_chat",
    pricing_provider="grok",
    base_url_setting="xai_base_url",
    api_key_setting="xai_api_key",
    api_key_env="XAI_API_KEY",
    default_max_field="max_tokens",
)
