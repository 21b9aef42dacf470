"""The reference SpendGuard's own request/answer shapes for its Anthropic and Gemini routes.

``POST /v1/agents/{id}/runs/{run}/anthropic/messages`` takes
``{model, messages, system?, temperature?, max_tokens?}`` and answers
``{completion, raw, usage: {tokens_in, tokens_out}, billing_breakdown}``;
``…/gemini/generateContent`` takes ``{model, prompt, temperature?, max_tokens?}`` and answers
``{completion, usage: {tokens_in, tokens_out}}``. As in the reference, ``tokens_in`` and
``tokens_out`` are the provider's own top-level figures (Anthropic ``input_tokens``, which
excludes cache tokens; Gemini ``promptTokenCount`` and ``candidatesTokenCount``), the
completion is the text blocks joined with newlines, and other body keys are not sent.
Unlike the reference, content-block lists are accepted and ``stream: true`` is honoured.

Field classification (DESIGN §10): the tables below name what each route keeps; any other
key is dropped here (free: it never reaches the provider). What is kept becomes a native
body that the native adapter's own table then classifies (cache_control TTLs, content), and
its build_upstream pins the standard service tier.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from spendguard_proxy.errors import InvalidRequest
from spendguard_proxy.providers import base
from spendguard_proxy.providers.fields import Rule, bounded, free
from spendguard_proxy.providers.gemini import bare_model

_NATIVE = "kept, then classified by the native adapter's table"
ANTHROPIC_REFERENCE_FIELDS: dict[str, Rule] = {
    "model": bounded(f"selects the price row; {_NATIVE}"),
    "messages": bounded(f"counted into the input-token estimate; {_NATIVE}"),
    "system": bounded(f"counted into the input-token estimate; {_NATIVE}"),
    "temperature": free("sampling control; output stays under the clamped max_tokens"),
    "max_tokens": bounded("the output cap SpendGuard prices and clamps"),
    "stream": free("same tokens"),
}
GEMINI_REFERENCE_FIELDS: dict[str, Rule] = {
    "model": bounded("selects the price row"),
    "prompt": bounded("counted into the input-token estimate"),
    "temperature": free("sampling control; output stays under the clamped maxOutputTokens"),
    "max_tokens": bounded("sent as maxOutputTokens: the output cap SpendGuard prices and clamps"),
    "stream": free("same tokens"),
}


class GeminiReference(NamedTuple):
    model: str
    body: dict[str, Any]
    stream: bool


def _temperature(body: dict[str, Any]) -> float | int | None:
    value = body.get("temperature")
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise InvalidRequest("temperature must be a number")
    return value


def anthropic_reference_to_native(body: Any) -> dict[str, Any]:
    body = base.require_object(body)
    native: dict[str, Any] = {"model": base.require_model(body.get("model"))}
    native["messages"] = base.list_of_objects(body, "messages", required=True)
    system = body.get("system")
    if system is not None:
        if not isinstance(system, (str, list)):
            raise InvalidRequest("system must be a string")
        native["system"] = system
    temperature = _temperature(body)
    if temperature is not None:
        native["temperature"] = temperature
    max_tokens = base.optional_positive_int(body, "max_tokens")
    if max_tokens is not None:
        native["max_tokens"] = max_tokens
    if base.optional_bool(body, "stream"):
        native["stream"] = True
    return native


def anthropic_native_to_reference(answer: Any, breakdown: Any) -> dict[str, Any]:
    answer = answer if isinstance(answer, dict) else {}
    texts = [
        block["text"]
        for block in answer.get("content") or []
        if isinstance(block, dict)
        and block.get("type") == "text"
        and isinstance(block.get("text"), str)
        and block["text"]
    ]
    usage = answer.get("usage") if isinstance(answer.get("usage"), dict) else {}
    return {
        "completion": "\n".join(texts) if texts else None,
        "raw": answer,
        "usage": {"tokens_in": usage.get("input_tokens"), "tokens_out": usage.get("output_tokens")},
        "billing_breakdown": breakdown,
    }


def gemini_reference_to_native(body: Any) -> GeminiReference:
    body = base.require_object(body)
    model = bare_model(base.require_model(body.get("model")))
    prompt = body.get("prompt")
    if not isinstance(prompt, str):
        raise InvalidRequest("prompt is required (string)")
    config: dict[str, Any] = {}
    max_tokens = base.optional_positive_int(body, "max_tokens")
    if max_tokens is not None:
        config["maxOutputTokens"] = max_tokens
    temperature = _temperature(body)
    if temperature is not None:
        config["temperature"] = temperature
    native: dict[str, Any] = {"contents": [{"role": "user", "parts": [{"text": prompt}]}]}
    if config:
        native["generationConfig"] = config
    return GeminiReference(model, native, base.optional_bool(body, "stream"))


def gemini_native_to_reference(answer: Any) -> dict[str, Any]:
    answer = answer if isinstance(answer, dict) else {}
    candidates = answer.get("candidates")
    first = candidates[0] if isinstance(candidates, list) and candidates else {}
    content = first.get("content") if isinstance(first, dict) else None
    parts = content.get("parts") if isinstance(content, dict) else None
    parts = parts if isinstance(parts, list) else []
    texts = [
        part["text"]
        for part in parts
        if isinstance(part, dict) and isinstance(part.get("text"), str) and not part.get("thought")
    ]
    usage = answer.get("usageMetadata") if isinstance(answer.get("usageMetadata"), dict) else {}
    return {
        "completion": "\n".join(texts) if texts else None,
        "usage": {
            "tokens_in": usage.get("promptTokenCount"),
            "tokens_out": usage.get("candidatesTokenCount"),
        },
    }
