"""Gemini generateContent / streamGenerateContent?alt=sse: shaping, usage, stream counting.

The model comes from the URL path, not the body. Gemini's JSON parser accepts both
camelCase and snake_case field names, so both are read (and the one the client used is
the one clamped).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from spendguard_proxy.errors import InvalidRequest
from spendguard_proxy.providers import base, fields
from spendguard_proxy.providers.base import Preflight, StreamCounter
from spendguard_proxy.providers.estimate import estimate_input
from spendguard_proxy.providers.fields import BOUNDED, FREE, Rule, both_spellings, bounded, free
from spendguard_proxy.providers.fields import refused as refused_rule
from spendguard_proxy.providers.sse import SseEvent
from spendguard_proxy.usage import Usage

_SETTINGS_KEYS = frozenset(
    {
        "model",
        "safetySettings",
        "safety_settings",
        "cachedContent",
        "cached_content",
        "labels",
        "toolConfig",
        "tool_config",
        "serviceTier",
        "service_tier",
        "store",
    }
)
_GROUNDING_TOOLS = (
    "googleSearch",
    "google_search",
    "googleSearchRetrieval",
    "google_search_retrieval",
)
# Tools that pull content into the prompt (billed as toolUsePromptTokenCount).
_FETCHING_TOOLS = (
    *_GROUNDING_TOOLS,
    "urlContext",
    "url_context",
    "fileSearch",
    "file_search",
    "googleMaps",
    "google_maps",
    "codeExecution",
    "code_execution",
)
_CODE_TOOLS = ("codeExecution", "code_execution")
# Sent upstream when the client names no tier (the documented default, made explicit).
STANDARD_TIER = "standard"
_STANDARD_TIERS = ("standard", "unspecified")

_INPUT = "counted into the input-token estimate"
_OUTPUT_CAP = "output stays under the maxOutputTokens SpendGuard clamps"
_SAMPLING = free(f"sampling control; {_OUTPUT_CAP}")
_TEXT_ONLY = "image and audio output are priced per image or audio rate the hold does not cover"

_GROUNDING = (
    "Gemini 1.x/2.x bill one fee per grounded prompt: it is in the hold (refused where the "
    "price table has no fee); Gemini 3 and later bill each search query, with no cap a "
    "request can set: refused there; results count as unseen input"
)
_VERSION = re.compile(r"^gemini-(\d+)")

_THINKING = both_spellings({
    "includeThoughts": free("returns thought summaries"),
    "thinkingBudget": bounded(f"thinking tokens are output; {_OUTPUT_CAP} (it caps both)"),
    "thinkingLevel": bounded(f"thinking tokens are output; {_OUTPUT_CAP} (it caps both)"),
})
_GENERATION_CONFIG = both_spellings({
    "temperature": _SAMPLING,
    "topP": _SAMPLING,
    "topK": _SAMPLING,
    "seed": _SAMPLING,
    "stopSequences": _SAMPLING,
    "presencePenalty": _SAMPLING,
    "frequencyPenalty": _SAMPLING,
    "responseLogprobs": free("response detail"),
    "logprobs": free("response detail"),
    "responseMimeType": free("output format"),
    "responseSchema": bounded(f"the schema is {_INPUT}"),
    "responseJsonSchema": bounded(f"the schema is {_INPUT}"),
    "candidateCount": bounded("priced per candidate: candidateCount x the output cap"),
    "maxOutputTokens": bounded("the output cap SpendGuard prices and clamps (thinking included)"),
    "enableEnhancedCivicAnswers": free(),
    "mediaResolution": bounded("images are estimated at the highest media resolution"),
    "responseModalities": bounded(f"text only: {_TEXT_ONLY}", {"TEXT": FREE, "text": FREE}),
    "thinkingConfig": bounded(f"thinking tokens are output; {_OUTPUT_CAP}", fields=_THINKING),
    "speechConfig": refused_rule(_TEXT_ONLY),
    "imageConfig": refused_rule(_TEXT_ONLY),
    "audioTranscriptionConfig": refused_rule("transcription output has no price in the price "
                                             "table"),
})
# generateContent request keys (google-genai 3.6.1, Gemini API mode).
GEMINI_FIELDS: dict[str, Rule] = both_spellings({
    "contents": bounded(_INPUT),
    "systemInstruction": bounded(_INPUT),
    "generationConfig": bounded("each key below", fields=_GENERATION_CONFIG),
    "tools": bounded(f"declarations are {_INPUT}; each tool below"),
    "toolConfig": free("tool selection only"),
    "safetySettings": free("filtering only"),
    "labels": free("billing labels"),
    "model": free("the model in the URL path is the one priced"),
    "store": free("a storage flag"),
    "cachedContent": bounded(
        "cached tokens are input SpendGuard cannot see: reserved as CAP_UNSEEN_INPUT_TOKENS"
    ),
    "serviceTier": bounded(
        "priced by the model's service_tier price variant, refused where the price table has "
        "none; absent, SpendGuard sends 'standard'",
        {tier: BOUNDED for tier in _STANDARD_TIERS},
        other=BOUNDED,  # the price table decides (400 UnpricedOption if unpriced)
    ),
    "continuationToken": refused_rule(
        "continues server-held generation state of unknown size"
    ),
})
GEMINI_TOOLS: dict[str, Rule] = both_spellings({
    "functionDeclarations": bounded(f"declarations are {_INPUT}"),
    "computerUse": bounded(
        "executed by the client: the call is output, its screenshot input of the next request"
    ),
    "googleSearch": bounded(_GROUNDING),
    "googleSearchRetrieval": bounded(_GROUNDING),
    "fileSearch": bounded("retrieved chunks are unseen input (CAP_UNSEEN_INPUT_TOKENS)"),
    "codeExecution": bounded(
        "billed per execution where the price table has a fee, refused where it has none"
    ),
    "urlContext": refused_rule("fetched pages are input with no request-side cap"),
    "googleMaps": refused_rule("Maps grounding has its own fee, not in the price table"),
    "mcpServers": refused_rule("remote MCP tool results enter the context with no size cap"),
})


def bare_model(model: str) -> str:
    return model.removeprefix("models/")


def _pick(container: Mapping[str, Any], camel: str, snake: str) -> str:
    return snake if snake in container and camel not in container else camel


@dataclass(frozen=True, eq=False)
class GeminiAdapter:
    name: str = "gemini"
    pricing_provider: str = "gemini"
    base_url_setting: str = "gemini_base_url"
    api_key_setting: str = "gemini_api_key"
    api_key_env: str = "GEMINI_API_KEY"

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
        model = bare_model(base.require_model(model))
        fields.check_one_spelling(body)
        base.list_of_objects(body, "contents", required=True)
        config_key = _pick(body, "generationConfig", "generation_config")
        config = base.optional_object(body, config_key)
        max_key = _pick(config, "maxOutputTokens", "max_output_tokens")
        requested = base.optional_positive_int(config, max_key, f"{config_key}.{max_key}")
        candidates = base.optional_positive_int(
            config, _pick(config, "candidateCount", "candidate_count"), "candidateCount"
        )
        tools = base.list_of_objects(body, "tools", required=False)
        fields.check_fields(self.name, body, GEMINI_FIELDS, forwarded, one_spelling=True)
        for tool in tools:
            fields.check_fields(self.name, tool, GEMINI_TOOLS, forwarded, "tools.",
                                one_spelling=True)
        used = {key for tool in tools for key in tool
                if not fields.is_forwarded(self.name, f"tools.{key}", None, forwarded)}
        fees = {}
        for key in used.intersection(_GROUNDING_TOOLS):
            if not grounding_per_prompt(model):
                fields.refuse(self.name, f"tools.{key}", None, forwarded,
                              f"{model} bills each search query, with no cap a request can set")
            fees["web_searches"] = 1
        if used.intersection(_CODE_TOOLS):
            fees["code_executions"] = base.DEFAULT_TOOL_CALLS_MAX
        fetching = any(key in tool for tool in tools for key in _FETCHING_TOOLS)
        cached = body.get("cachedContent") or body.get("cached_content")
        estimate = estimate_input(body, provider="gemini", model=model, skip_keys=_SETTINGS_KEYS)
        return Preflight(
            model=model,
            stream=bool(stream),
            input_tokens=estimate.tokens,
            media_tokens=estimate.media,
            requested_max_tokens=requested,
            max_tokens_field=f"{config_key}.{max_key}",
            choices=candidates or 1,
            input_unbounded=estimate.unbounded or fetching or bool(cached),
            fees=fees,
            price_context=_price_context(self.name, body, forwarded),
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
        if not model:
            raise InvalidRequest("model is required (from the URL path)")
        out = dict(body)
        config_key = _pick(out, "generationConfig", "generation_config")
        config = dict(out.get(config_key) or {})
        config[_pick(config, "maxOutputTokens", "max_output_tokens")] = max_tokens
        out[config_key] = config
        if out.get(_pick(out, "serviceTier", "service_tier")) is None:
            out["serviceTier"] = STANDARD_TIER  # the tier SpendGuard priced, made explicit
        action = "streamGenerateContent?alt=sse" if stream else "generateContent"
        url = (
            f"{base_url.rstrip('/')}/v1beta/models/{quote(bare_model(model), safe='-._~')}:{action}"
        )
        headers = {"content-type": "application/json"}
        if api_key:
            headers["x-goog-api-key"] = api_key
        return url, headers, base.dump_json(out)

    def usage_from_json(self, answer: Any, preflight: Preflight | None = None) -> Usage | None:
        if not isinstance(answer, dict) or not isinstance(answer.get("usageMetadata"), dict):
            return None
        queries = len(grounding_queries(answer))
        if preflight is not None:
            queries = billed_grounding(preflight.model, queries)
        return gemini_usage(answer["usageMetadata"], queries)

    def new_stream_counter(
        self, preflight: Preflight, client_wants_usage: bool | None = None
    ) -> GeminiStreamCounter:
        return GeminiStreamCounter(preflight, True, self.pricing_provider)

    def client_api_key(self, client_headers: Mapping[str, str]) -> str | None:
        return base.header(client_headers, "x-goog-api-key")


def grounding_per_prompt(model: str) -> bool:
    """Gemini 1.x/2.x bill grounding once per grounded prompt; later models per query."""
    version = _VERSION.match(bare_model(model))
    return version is not None and int(version.group(1)) < 3


def billed_grounding(model: str, queries: int) -> int:
    """Grounding fee units of a call that ran ``queries`` search queries."""
    return min(queries, 1) if grounding_per_prompt(model) else queries


def normal_tier(value: str) -> str:
    """'SERVICE_TIER_PRIORITY' and 'priority' name the same tier."""
    return value.lower().removeprefix("service_tier_")


def _price_context(adapter: str, body: Mapping[str, Any],
                   forwarded: frozenset[str]) -> dict[str, str]:
    key = _pick(body, "serviceTier", "service_tier")
    tier = body.get(key)
    if tier is None:
        return {}
    if not isinstance(tier, str):
        raise InvalidRequest(f"{key} must be a string")
    if normal_tier(tier) in _STANDARD_TIERS or fields.is_forwarded(adapter, key, tier, forwarded):
        return {}
    return {"service_tier": normal_tier(tier)}


def gemini_usage(meta: dict[str, Any], queries: int = 0) -> Usage:
    prompt = base.positive_or_zero(meta.get("promptTokenCount"))
    tool_prompt = base.positive_or_zero(meta.get("toolUsePromptTokenCount"))
    cached = base.positive_or_zero(meta.get("cachedContentTokenCount"))
    thoughts = base.positive_or_zero(meta.get("thoughtsTokenCount"))
    output = base.positive_or_zero(meta.get("candidatesTokenCount")) + thoughts
    total = base.positive_or_zero(meta.get("totalTokenCount"))
    given = prompt + tool_prompt
    tier = meta.get("serviceTier")
    return Usage(
        input_tokens=given,
        output_tokens=max(output, total - given),
        cached_input_tokens=min(cached, given),
        reasoning_tokens=thoughts,
        grounding_queries=queries,
        service_tier=normal_tier(tier) if isinstance(tier, str) else None,
    )


def grounding_queries(answer: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    sources = [answer.get("groundingMetadata")]
    candidates = answer.get("candidates")
    if isinstance(candidates, list):
        sources += [c.get("groundingMetadata") for c in candidates if isinstance(c, dict)]
    for meta in sources:
        queries = meta.get("webSearchQueries") if isinstance(meta, dict) else None
        if isinstance(queries, list):
            found.update(q for q in queries if isinstance(q, str))
    return found


class GeminiStreamCounter(StreamCounter):
    def __init__(self, preflight: Preflight, client_wants_usage: bool, provider: str) -> None:
        super().__init__(preflight, client_wants_usage, provider)
        self._finished = False
        self._queries: set[str] = set()
        self._meta: dict[str, Any] = {}
        self._candidates_seen: set[int] = set()
        self._crlf = False

    def _on_event(self, event: SseEvent, payload: Any) -> bool:
        self._crlf = event.raw.endswith(b"\r\n")
        if not isinstance(payload, dict):
            return True
        for key in ("modelVersion", "responseId"):
            if key in payload:
                self._meta[key] = payload[key]
        candidates = payload.get("candidates")
        for candidate in candidates if isinstance(candidates, list) else ():
            self._on_candidate(candidate)
        self._queries |= grounding_queries(payload)
        meta = payload.get("usageMetadata")
        if isinstance(meta, dict):
            reported = gemini_usage(
                meta, billed_grounding(self.preflight.model, len(self._queries))
            )
            self._tally.add_reported(reported.output_tokens)
            if self._finished:  # the chunk with finishReason carries the final figures
                self.usage = reported
                self.done = True
        return True

    def _on_candidate(self, candidate: Any) -> None:
        if not isinstance(candidate, dict):
            return
        index = candidate.get("index", 0)
        index = index if isinstance(index, int) else 0
        self._candidates_seen.add(index)
        if candidate.get("finishReason"):
            self._finished = True
        content = candidate.get("content")
        parts = content.get("parts") if isinstance(content, dict) else None
        for part in parts if isinstance(parts, list) else ():
            if not isinstance(part, dict):
                continue
            self._count(part.get("text"), (index, bool(part.get("thought"))))
            for key in ("functionCall", "function_call", "executableCode", "executable_code"):
                if isinstance(part.get(key), dict):
                    self._count(json.dumps(part[key], ensure_ascii=False), (index, key))

    def cutoff_events(self) -> bytes:
        if self.done:
            return b""
        candidates = [
            {
                "content": {"parts": [{"text": ""}], "role": "model"},
                "finishReason": "MAX_TOKENS",
                "index": index,
            }
            for index in sorted(self._candidates_seen or {0})
        ]
        given, output = self.preflight.input_tokens, self.output_tokens
        chunk = {
            "candidates": candidates,
            "usageMetadata": {
                "promptTokenCount": given,
                "candidatesTokenCount": output,
                "totalTokenCount": given + output,
            },
            "modelVersion": self._meta.get("modelVersion", self.preflight.model),
            **({"responseId": self._meta["responseId"]} if "responseId" in self._meta else {}),
        }
        end = b"\r\n\r\n" if self._crlf else b"\n\n"
        return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + end


GEMINI = GeminiAdapter()
