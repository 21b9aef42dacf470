"""What every provider adapter offers the relay, and the pieces the adapters share.

Adapters are pure: dicts and bytes in, dicts and bytes out, no I/O, no environment.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from spendguard_proxy.errors import InvalidRequest
from spendguard_proxy.providers.sse import SseEvent, SseSplitter
from spendguard_proxy.tokens import OutputTally
from spendguard_proxy.usage import Usage

# Built-in tool calls a request may trigger when it sets no `max_tool_calls` of its own.
DEFAULT_TOOL_CALLS_MAX = 8

# Client headers that may go upstream; everything else (credentials, x-cynsta-*, cookies,
# hop-by-hop) stays here.
PASS_THROUGH_HEADERS = frozenset(
    {"anthropic-version", "anthropic-beta", "openai-beta", "openai-organization", "openai-project"}
)


class ThinkingBudgetUnaffordable(Exception):
    """Clamping max_tokens leaves Anthropic's thinking budget below its 1024 minimum."""

    def __init__(self, max_tokens: int, minimum: int) -> None:
        super().__init__(
            f"max_tokens the budget can pay for ({max_tokens}) leaves no room for the "
            f"minimum thinking budget ({minimum} tokens)"
        )
        self.max_tokens = max_tokens
        self.minimum = minimum


@dataclass(frozen=True, slots=True)
class Preflight:
    model: str
    stream: bool
    input_tokens: int  # estimate, never below what the provider will report
    requested_max_tokens: int | None  # the client's own value of the field that applies
    max_tokens_field: str  # the field build_upstream clamps (dotted for nested fields)
    choices: int = 1  # completions generated (chat `n`, Gemini `candidateCount`)
    input_unbounded: bool = False  # unseen input (file ids, stored responses): bound by context
    cache_write: str | None = None  # longest prompt-cache TTL the request writes: "5m" | "1h"
    # Parts of input_tokens by modality ("audio", "image", "video"): priced at their own rates.
    media_tokens: Mapping[str, int] = field(default_factory=dict)
    # Most billable tool uses per fee unit ("web_searches", "storage_searches",
    # "code_executions"), each enforced upstream by a cap SpendGuard sends.
    fees: Mapping[str, int] = field(default_factory=dict)
    # Price variant the call runs under, sent upstream explicitly ({"service_tier": "flex"}).
    price_context: Mapping[str, str] = field(default_factory=dict)
    thinking_budget: int | None = None  # Anthropic thinking.budget_tokens
    client_wants_usage: bool = False  # OpenAI chat stream: stream_options.include_usage


class StreamCounter(ABC):
    """Parses a provider's SSE stream as it passes: forwards events, counts output.

    Subclasses implement ``_on_event`` (return False to keep an event from the client)
    and ``cutoff_events``.
    """

    def __init__(self, preflight: Preflight, client_wants_usage: bool, provider: str) -> None:
        self.preflight = preflight
        self.client_wants_usage = client_wants_usage
        self.provider = provider  # pricing provider: picks the tokenizer margin
        self._splitter = SseSplitter()
        self._tally = OutputTally(provider, preflight.model)
        self.usage: Usage | None = None
        self.done = False
        self.started_output = False

    def feed(self, chunk: bytes) -> list[bytes]:
        """Complete events of ``chunk`` to forward, raw bytes, in order."""
        return list(self.events(chunk))

    def events(self, chunk: bytes) -> Iterator[bytes]:
        """Like ``feed``, one event at a time: each is counted just before it is yielded, so
        a caller that checks ``output_tokens`` after every event can stop at the one that
        crosses its limit, and the events after it are never parsed or forwarded."""
        for event in self._splitter.feed(chunk):
            if self._handle(event):
                yield event.raw

    def finish(self) -> list[bytes]:
        """At the upstream's end of body: a trailing event without its empty line."""
        return [event.raw for event in self._splitter.finish() if self._handle(event)]

    @property
    def output_tokens(self) -> int:
        """Output so far: exact for OpenAI models, unscaled max(o200k, cl100k) otherwise,
        or the provider's own running figure when higher. A provider honouring max_tokens
        does not push this past max_tokens: compare it to decide a cutoff."""
        return self._tally.tokens

    @property
    def output_tokens_upper(self) -> int:
        """Output so far with the provider's tokenizer margin: the most it may bill."""
        return self._tally.upper

    @abstractmethod
    def cutoff_events(self) -> bytes:
        """SSE bytes that end the client's stream the provider's way (budget cutoff)."""

    def _handle(self, event: SseEvent) -> bool:
        payload: Any = None
        if event.data is not None and event.data != "[DONE]":
            try:
                payload = json.loads(event.data)
            except ValueError:
                payload = None
        return self._on_event(event, payload)

    @abstractmethod
    def _on_event(self, event: SseEvent, payload: Any) -> bool:
        """Track one event; False keeps it from the client."""

    def _count(self, text: Any, channel: object = None) -> None:
        """Count generated text; ``channel`` separates interleaved streams (choices, blocks)."""
        if isinstance(text, str) and text:
            self._tally.add_text(text, channel)
            self.started_output = True


class Adapter(Protocol):
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
        headers: Mapping[str, str] | None = None,
    ) -> Preflight:
        """Validate and classify ``body`` and the client's ``headers`` (``anthropic-beta``);
        ``forwarded``: CAP_FORWARD_UNPRICED_FIELDS."""

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
        price_context: Mapping[str, str] | None = None,
    ) -> tuple[str, dict[str, str], bytes]:
        """The upstream request; ``price_context`` is the variant the hold was priced at,
        for adapters that must send it (an option whose provider default may cost more)."""

    def usage_from_json(self, answer: Any, preflight: Preflight | None = None) -> Usage | None: ...

    def new_stream_counter(
        self, preflight: Preflight, client_wants_usage: bool | None = None
    ) -> StreamCounter: ...

    def client_api_key(self, client_headers: Mapping[str, str]) -> str | None: ...


# ---------------------------------------------------------------- shared helpers


def forwarded_headers(client_headers: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in client_headers.items():
        lowered = name.lower()
        if lowered in PASS_THROUGH_HEADERS:
            out[lowered] = value
    return out


def openai_style_headers(client_headers: Mapping[str, str], api_key: str | None) -> dict[str, str]:
    """Upstream headers of an OpenAI-format call (OpenAI, xAI): JSON and a bearer key."""
    headers = forwarded_headers(client_headers)
    headers["content-type"] = "application/json"
    if api_key:
        headers["authorization"] = f"Bearer {api_key}"
    return headers


def bearer_token(client_headers: Mapping[str, str]) -> str | None:
    for name, value in client_headers.items():
        if name.lower() == "authorization":
            scheme, _, token = value.strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


def header(client_headers: Mapping[str, str], wanted: str) -> str | None:
    for name, value in client_headers.items():
        if name.lower() == wanted:
            return value
    return None


def dump_json(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def require_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidRequest("Request body must be a JSON object")
    return body


def require_model(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest("model is required (non-empty string)")
    return value


def optional_bool(body: Mapping[str, Any], key: str) -> bool:
    value = body.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidRequest(f"{key} must be a boolean")
    return value


def optional_positive_int(container: Mapping[str, Any], key: str, label: str = "") -> int | None:
    value = container.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRequest(f"{label or key} must be a positive integer")
    return value


def optional_object(container: Mapping[str, Any], key: str, label: str = "") -> dict[str, Any]:
    value = container.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequest(f"{label or key} must be an object")
    return value


def list_of_objects(container: Mapping[str, Any], key: str, *, required: bool) -> list[Any]:
    value = container.get(key)
    if value is None and not required:
        return []
    if not isinstance(value, list):
        raise InvalidRequest(f"{key} is required (list)" if required else f"{key} must be a list")
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise InvalidRequest(f"{key}[{index}] must be an object")
    return value


def positive_or_zero(value: Any) -> int:
    """A usage figure: ints only (bools and junk count as 0)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return 0
    return value


def tool_calls_cap(body: Mapping[str, Any], has_builtin_tools: bool) -> int:
    if not has_builtin_tools:
        return 0
    return optional_positive_int(body, "max_tool_calls") or DEFAULT_TOOL_CALLS_MAX
