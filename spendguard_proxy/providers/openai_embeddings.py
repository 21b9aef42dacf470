"""OpenAI embeddings (``POST /v1/embeddings``): input tokens only, counted exactly.

An embedding call bills its input tokens and nothing else, so the hold is its exact input
cost (``cl100k`` for every OpenAI embedding model); there is no output to clamp or stream.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from spendguard_proxy.errors import InvalidRequest
from spendguard_proxy.providers import base, fields
from spendguard_proxy.providers.base import Preflight, StreamCounter
from spendguard_proxy.providers.fields import bounded, free
from spendguard_proxy.tokens import count_text
from spendguard_proxy.usage import Usage

# OpenAI's own limit: at most 2048 inputs per request.
MAX_INPUTS = 2048

EMBEDDINGS_FIELDS: dict[str, fields.Rule] = {
    "model": free("selects the price"),
    "input": bounded("counted exactly into the hold"),
    "encoding_format": free("float or base64: the same vectors"),
    "dimensions": free("a shorter vector costs the same"),
    "user": free("an end-user id"),
}


@dataclass(frozen=True)
class EmbeddingsAdapter:
    name: str = "openai_embeddings"
    pricing_provider: str = "openai"
    base_url_setting: str = "openai_base_url"
    api_key_setting: str = "openai_api_key"
    api_key_env: str = "OPENAI_API_KEY"

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
        fields.check_fields(self.name, body, EMBEDDINGS_FIELDS, forwarded)
        model = base.require_model(body.get("model"))
        return Preflight(
            model=model,
            stream=False,
            input_tokens=_input_tokens(body.get("input"), model),
            requested_max_tokens=None,
            max_tokens_field="",
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
        headers = base.openai_style_headers(client_headers, api_key)
        return f"{base_url.rstrip('/')}/embeddings", headers, base.dump_json(body)

    def usage_from_json(self, answer: Any, preflight: Preflight | None = None) -> Usage | None:
        usage = answer.get("usage") if isinstance(answer, dict) else None
        if not isinstance(usage, dict) or "prompt_tokens" not in usage:
            return None
        return Usage(input_tokens=base.positive_or_zero(usage.get("prompt_tokens")))

    def new_stream_counter(
        self, preflight: Preflight, client_wants_usage: bool | None = None
    ) -> StreamCounter:
        raise InvalidRequest("embeddings do not stream")

    def client_api_key(self, client_headers: Mapping[str, str]) -> str | None:
        return base.bearer_token(client_headers)


def _input_tokens(value: Any, model: str) -> int:
    """Exact tokens of ``input``: a string, a list of strings, a token array or a list of
    token arrays (each token of an array is one billed token)."""
    items = value if isinstance(value, list) and value and not _is_tokens(value) else [value]
    if not items or len(items) > MAX_INPUTS:
        raise InvalidRequest(f"input must be a non-empty string or list of at most {MAX_INPUTS}"
                             " items")
    total = 0
    for item in items:
        if isinstance(item, str) and item:
            total += count_text(item, "openai", model)
        elif isinstance(item, list) and item and _is_tokens(item):
            total += len(item)
        else:
            raise InvalidRequest("input items must be non-empty strings or arrays of token ids")
    return total


def _is_tokens(value: list[Any]) -> bool:
    return all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in value)


OPENAI_EMBEDDINGS = EmbeddingsAdapter()
