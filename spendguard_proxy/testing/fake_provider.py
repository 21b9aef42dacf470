"""A fake LLM provider on loopback that speaks OpenAI, xAI, Anthropic and Gemini wire formats.

Routes: ``POST /v1/chat/completions``, ``POST /v1/responses`` (OpenAI and xAI),
``POST /v1/messages`` and ``/v1/messages/count_tokens`` (Anthropic),
``POST /v1beta/models/{model}:generateContent``, ``:streamGenerateContent?alt=sse`` and
``:countTokens`` (Gemini; also under ``/v1/models/``); stream and non-stream, usage figures as
each provider reports them. Prompt tokens are the o200k count of the request's text (in
50,000-character pieces), 85 per image; the answer is ``words`` one-token words, cut at the
request's max-tokens field.

What a call runs on, as the real providers decide it from the request:
- service tier: OpenAI answers the tier asked for (``fast`` is reported as ``priority``);
  absent or ``auto`` runs on the account's default tier (switch ``account_service_tier``,
  default ``default``; xAI models ignore it). Anthropic: ``auto``/absent runs on Priority
  Tier when the account default is ``priority``, ``standard_only`` never does. Gemini serves
  ``flex``/``priority`` when asked, else ``standard``.
- built-in tools: the model wants ``web_search_calls`` searches (``file_search_calls`` file
  searches); it runs them only when the request enables the tool, and at most as many as the
  request allows: Responses ``max_tool_calls`` (across all built-in tools), Anthropic
  ``max_uses`` per web search tool. Gemini grounding has no cap (one query per search);
  chat ``web_search_options`` is one search per request.
- Anthropic prompt cache: each ``cache_control`` breakpoint writes the prompt up to it (tools,
  system, messages) that earlier breakpoints did not, at its ``ttl`` (5m unless ``"1h"``); a
  top-level one writes the whole prompt. Every call writes (no minimum length, no memory of
  earlier calls), never more than the input left after ``cached_tokens`` cache reads.

Misbehaviour per request by ``x-fake-*`` headers, or as defaults for later requests by
``POST /_fake/config`` with the same names in snake case (``{"delay_ms": 5}``):

    x-fake-delay-ms, x-fake-first-byte-delay-ms, x-fake-disconnect-after (chunks),
    x-fake-status (answer that status with a provider-shaped error, bill nothing),
    x-fake-ignore-max-tokens, x-fake-omit-usage, x-fake-endless (stream until hung up),
    x-fake-words, x-fake-reasoning-tokens, x-fake-cached-tokens, x-fake-web-search-calls,
    x-fake-file-search-calls, x-fake-account-service-tier,
    x-fake-bill-full-on-disconnect (bill the whole planned answer when the client hangs up)

What it would bill: ``GET /_fake/billed`` (per model: requests, input/output tokens
generated -- also after a client hung up --, cache reads and writes, tool calls, and the money,
priced by PyPI ``genai-prices`` -- an oracle independent of SpendGuard's billing -- exactly, in
µ¢; per call the same with its tier); ``GET /_fake/requests`` the last requests' path, headers
and body; ``POST /_fake/reset`` clears both and the defaults. Token counting endpoints are free.

Run alone: ``python -m spendguard_proxy.testing.fake_provider --port 9999``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import itertools
import json
import re
import struct
from collections import deque
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from aiohttp import web

from spendguard_proxy.testing import fake_wire
from spendguard_proxy.testing.fake_wire import Plan

IMAGE_TOKENS = 85
TEXT_PIECE_CHARS = 50_000
REQUESTS_KEPT = 200
CALLS_KEPT = 10_000
MICROCENTS_PER_USD = Decimal(10**8)
_CONTENT_KEYS = (
    "messages",
    "input",
    "instructions",
    "system",
    "contents",
    "systemInstruction",
    "system_instruction",
    "tools",
)


@dataclass(frozen=True)
class FakeConfig:
    delay_ms: int = 0
    first_byte_delay_ms: int = 0
    disconnect_after: int | None = None
    status: int | None = None
    ignore_max_tokens: bool = False
    omit_usage: bool = False
    endless: bool = False
    words: int = 20
    reasoning_tokens: int = 0
    cached_tokens: int = 0
    web_search_calls: int = 0  # searches the model wants, when the request enables search
    file_search_calls: int = 0  # file searches it wants (Responses file_search)
    account_service_tier: str = "default"  # OpenAI project default; "priority" also Anthropic
    bill_full_on_disconnect: bool = False

    def merged(self, values: Mapping[str, Any]) -> FakeConfig:
        known = {f.name: f for f in dataclasses.fields(self)}
        changes = {}
        for name, value in values.items():
            if name not in known:
                raise ValueError(f"unknown fake switch {name!r}; known: {sorted(known)}")
            kind = {"bool": bool, "str": str}.get(str(known[name].type), int)
            changes[name] = _coerce(value, kind)
        return dataclasses.replace(self, **changes)

    @staticmethod
    def header_values(headers: Mapping[str, str]) -> dict[str, str]:
        return {
            name.lower().removeprefix("x-fake-").replace("-", "_"): value
            for name, value in headers.items()
            if name.lower().startswith("x-fake-")
        }


def _coerce(value: Any, kind: type) -> Any:
    if value is None:
        return None
    if kind is bool:
        return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")
    if kind is str:
        return str(value)
    return int(value)


_COUNTS = (
    "requests",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "web_search_calls",
    "file_search_calls",
)


@dataclass
class BilledCall:
    """One call as the provider bills it. ``input_tokens`` counts every input token, cache
    reads and writes included (``cache_write_1h_tokens`` is a part of ``cache_write_tokens``);
    ``web_search_units`` is what the search fee is charged on (Gemini 2.x: one per grounded
    prompt, however many queries it ran)."""

    call_id: str
    model: str
    provider_id: str  # genai-prices' provider id
    at: datetime
    service_tier: str | None = None
    speed: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    web_search_calls: int = 0
    file_search_calls: int = 0
    web_search_units: int = 0
    done: bool = False
    cost_microcents: Decimal | None = None  # exact; None while running or when unpriced

    def price_context(self) -> dict[str, str]:
        context = {"service_tier": self.service_tier, "speed": self.speed}
        return {key: value for key, value in context.items() if value}

    def snapshot(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["at"] = self.at.isoformat()
        out["cost_microcents"] = None if self.cost_microcents is None else str(self.cost_microcents)
        return out


def price_microcents(call: BilledCall) -> Decimal | None:
    """The call's exact price in µ¢ by genai-prices (None when it is not installed or does
    not know the model)."""
    try:
        import genai_prices
    except ImportError:  # a test dependency: the demo and bench run without it
        return None
    usage = genai_prices.Usage(
        input_tokens=call.input_tokens,
        output_tokens=call.output_tokens,
        cache_read_tokens=call.cache_read_tokens,
        cache_write_tokens=call.cache_write_tokens,
        cache_write_1h_tokens=call.cache_write_1h_tokens,
        web_searches=call.web_search_units,
        storage_searches=call.file_search_calls,
    )
    try:
        price = genai_prices.calc_price(
            usage,
            call.model,
            provider_id=call.provider_id,
            genai_request_timestamp=call.at,
            price_context=call.price_context() or None,
        )
    except LookupError:
        return None
    return price.total_price * MICROCENTS_PER_USD


@dataclass
class Billed:
    """What the fake would bill: counts per model, and each call priced when it ends."""

    models: dict[str, dict[str, int]] = field(default_factory=dict)
    costs: dict[str, Decimal] = field(default_factory=dict)  # exact µ¢ per model
    calls: deque[BilledCall] = field(default_factory=lambda: deque(maxlen=CALLS_KEPT))
    count_tokens_requests: int = 0  # free

    def add(self, model: str, **amounts: int) -> None:
        row = self.models.setdefault(model, dict.fromkeys(_COUNTS, 0))
        for name, amount in amounts.items():
            row[name] += amount

    def open(self, call: BilledCall) -> BilledCall:
        """A call the provider started working on: input and tool calls are billed now."""
        self.calls.append(call)
        self.add(
            call.model,
            requests=1,
            input_tokens=call.input_tokens,
            output_tokens=call.output_tokens,
            cache_read_tokens=call.cache_read_tokens,
            cache_write_tokens=call.cache_write_tokens,
            cache_write_1h_tokens=call.cache_write_1h_tokens,
            web_search_calls=call.web_search_calls,
            file_search_calls=call.file_search_calls,
        )
        return call

    def add_output(self, call: BilledCall, tokens: int) -> None:
        call.output_tokens += tokens
        self.add(call.model, output_tokens=tokens)

    def close(self, call: BilledCall) -> None:
        """The call ended (answered, or its client or the fake hung up): price it."""
        if call.done:
            return
        call.done = True
        call.cost_microcents = price_microcents(call)
        if call.cost_microcents is not None:
            self.costs[call.model] = self.costs.get(call.model, Decimal(0)) + call.cost_microcents

    def total(self, name: str) -> int:
        return sum(row[name] for row in self.models.values())

    def cost_microcents(self, model: str | None = None) -> Decimal:
        """Exact µ¢ billed for the calls that ended (of ``model``, or all)."""
        if model is not None:
            return self.costs.get(model, Decimal(0))
        return sum(self.costs.values(), Decimal(0))

    def snapshot(self) -> dict[str, Any]:
        models = {
            m: {**r, "cost_microcents": str(self.costs.get(m, Decimal(0)))}
            for m, r in self.models.items()
        }
        return {
            "models": models,
            "total": {
                **{n: self.total(n) for n in _COUNTS},
                "cost_microcents": str(self.cost_microcents()),
            },
            "count_tokens_requests": self.count_tokens_requests,
            "calls": [c.snapshot() for c in self.calls],
        }


@dataclass
class FakeState:
    defaults: FakeConfig = field(default_factory=FakeConfig)
    billed: Billed = field(default_factory=Billed)
    requests: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=REQUESTS_KEPT))
    ids: Any = field(default_factory=lambda: itertools.count(1))

    def reset(self) -> None:
        self.defaults = FakeConfig()
        self.billed = Billed()
        self.requests.clear()


STATE = web.AppKey("fake_provider_state", FakeState)


# ---------------------------------------------------------------- request reading


def prompt_tokens(body: Any) -> int:
    """The fake's input count: o200k of every text value, 85 per image or media part."""
    if not isinstance(body, dict):
        return _count([body])
    return _count([body.get(key) for key in _CONTENT_KEYS])


def _count(nodes: list[Any]) -> int:
    from spendguard_proxy.tokens import bpe_count

    texts: list[str] = []
    media = 0
    stack = list(nodes)
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if node.startswith("data:"):
                media += 1
            else:
                texts.append(node)
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            if node.get("type") in _MEDIA_TYPES or "inlineData" in node or "inline_data" in node:
                media += 1
                continue
            stack.extend(node.values())
    text = "\n".join(texts)
    # In pieces: o200k refuses texts over 200k tokens (a piece has at most 4 bytes a
    # character, so at most 200k tokens), and the count stays exact and monotone.
    pieces = range(0, len(text), TEXT_PIECE_CHARS)
    tokens = sum(bpe_count("o200k_base", text[i : i + TEXT_PIECE_CHARS]) for i in pieces)
    return tokens + IMAGE_TOKENS * media


_MEDIA_TYPES = frozenset(
    {"image", "image_url", "input_image", "document", "input_file", "file", "input_audio"}
)


@dataclass(frozen=True)
class _Route:
    kind: str  # "chat" | "responses" | "anthropic" | "gemini"
    wire: type
    error_style: str  # "openai" | "anthropic" | "gemini"


_ROUTES = {
    "chat": _Route("chat", fake_wire.ChatWire, "openai"),
    "responses": _Route("responses", fake_wire.ResponsesWire, "openai"),
    "anthropic": _Route("anthropic", fake_wire.AnthropicWire, "anthropic"),
    "gemini": _Route("gemini", fake_wire.GeminiWire, "gemini"),
}
_GROUNDING_TOOLS = (
    "googleSearch",
    "google_search",
    "googleSearchRetrieval",
    "google_search_retrieval",
)


def _authorized(route: _Route, request: web.Request) -> bool:
    bearer = request.headers.get("Authorization", "")
    has_bearer = bearer.lower().startswith("bearer ") and bool(bearer[7:].strip())
    if route.kind == "anthropic":
        return bool(request.headers.get("x-api-key")) or has_bearer
    if route.kind == "gemini":
        return bool(request.headers.get("x-goog-api-key") or request.query.get("key"))
    return has_bearer


def _max_tokens(route: _Route, body: dict[str, Any]) -> int | None:
    if route.kind == "chat":
        value = body.get("max_completion_tokens", body.get("max_tokens"))
    elif route.kind == "responses":
        value = body.get("max_output_tokens")
    elif route.kind == "anthropic":
        value = body.get("max_tokens")
    else:
        config = body.get("generationConfig") or body.get("generation_config") or {}
        value = config.get("maxOutputTokens", config.get("max_output_tokens"))
    return _count_or_none(value)


def _count_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _served_tier(route: _Route, body: dict[str, Any], model: str, config: FakeConfig) -> str:
    """The service tier the provider runs the call on, named as it reports it."""
    if route.kind == "gemini":
        asked = body.get("serviceTier", body.get("service_tier"))
        asked = asked.lower() if isinstance(asked, str) else None
        return asked if asked in ("flex", "priority") else "standard"
    asked = body.get("service_tier")
    if route.kind == "anthropic":
        if asked == "standard_only" or config.account_service_tier != "priority":
            return "standard"
        return "priority"
    if asked is None or asked == "auto":  # xAI has no account-wide tier
        return "default" if _provider_id(route, model) == "x-ai" else config.account_service_tier
    return "priority" if asked == "fast" else str(asked)


def _tools(body: dict[str, Any]) -> list[dict[str, Any]]:
    tools = body.get("tools")
    return [t for t in tools if isinstance(t, dict)] if isinstance(tools, list) else []


def _tool_calls(route: _Route, body: dict[str, Any], config: FakeConfig) -> tuple[int, int]:
    """(web searches, file searches) the model runs: what it wants, within what the request
    enables and allows."""
    tools = _tools(body)
    if route.kind == "chat":  # search-preview models search once per request
        return (1 if body.get("web_search_options") is not None else 0), 0
    if route.kind == "gemini":  # no request-side cap on grounding queries
        grounding = any(key in tool for tool in tools for key in _GROUNDING_TOOLS)
        return (config.web_search_calls if grounding else 0), 0
    kinds = [str(tool.get("type", "")) for tool in tools]
    if route.kind == "anthropic":
        searches = [t for t, k in zip(tools, kinds, strict=True) if k.startswith("web_search_")]
        if not searches:
            return 0, 0
        uses = [_count_or_none(t.get("max_uses")) for t in searches]
        if any(u is None for u in uses):  # a tool without max_uses may search on and on
            return config.web_search_calls, 0
        return min(config.web_search_calls, sum(max(0, u or 0) for u in uses)), 0
    cap = _count_or_none(body.get("max_tool_calls"))
    web = config.web_search_calls if any(k.startswith("web_search") for k in kinds) else 0
    files = config.file_search_calls if "file_search" in kinds else 0
    if cap is not None:  # across all built-in tools; further calls are ignored
        web = min(web, max(0, cap))
        files = min(files, max(0, cap - web))
    return web, files


def _anthropic_blocks(body: dict[str, Any]) -> Iterator[Any]:
    """The prompt's blocks in Anthropic's cache order: tools, system, messages."""
    yield from _tools(body)
    for container in (body.get("system"), *_message_contents(body)):
        if isinstance(container, list):
            yield from container
        elif container is not None:
            yield container


def _message_contents(body: dict[str, Any]) -> list[Any]:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return []
    return [m.get("content") for m in messages if isinstance(m, dict)]


def _cache_writes(body: dict[str, Any], prompt: int, room: int) -> tuple[int, int]:
    """Anthropic prompt-cache writes (5m, 1h): each breakpoint writes the prompt up to it
    that earlier breakpoints did not, at its TTL; a top-level ``cache_control`` marks the
    end of the prompt. At most ``room`` tokens in all (the input not read from the cache)."""
    written = {"5m": 0, "1h": 0}
    seen: list[Any] = []
    done = 0  # tokens up to the previous breakpoint
    for block in _anthropic_blocks(body):
        seen.append(block)
        marker = block.get("cache_control") if isinstance(block, dict) else None
        if isinstance(marker, dict):
            upto = _count(seen)
            written[_ttl(marker)] += max(0, upto - done)
            done = max(done, upto)
    top = body.get("cache_control")
    if isinstance(top, dict):
        written[_ttl(top)] += max(0, prompt - done)
    one_hour = min(written["1h"], room)
    return min(written["5m"], room - one_hour), one_hour


def _ttl(marker: dict[str, Any]) -> str:
    return "1h" if marker.get("ttl") == "1h" else "5m"


def _provider_id(route: _Route, model: str) -> str:
    if route.kind == "anthropic":
        return "anthropic"
    if route.kind == "gemini":
        return "google"
    return "x-ai" if model.lower().startswith("grok") else "openai"


def _search_units(route: _Route, model: str, searches: int) -> int:
    """Gemini 1.x/2.x bill grounding per grounded prompt, Gemini 3 on per search query;
    everyone else per search."""
    if route.kind != "gemini" or not searches:
        return searches
    version = re.match(r"(?:models/)?gemini-(\d+)", model)
    return 1 if version and int(version.group(1)) < 3 else searches


def _error(route: _Route, status: int, message: str) -> web.Response:
    return web.json_response(
        fake_wire.error_body(route.error_style, status, message), status=status
    )


# ---------------------------------------------------------------- handlers


async def _accept(
    request: web.Request, route: _Route
) -> tuple[dict[str, Any], FakeConfig] | web.Response:
    """Log the request and check it as the provider would: the body and config, or the
    error answer."""
    state = request.app[STATE]
    raw = await request.read()
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        body = None
    state.requests.append(
        {
            "path": request.path_qs,
            "headers": dict(request.headers),
            "body": body if body is not None else raw.decode("utf-8", "replace"),
        }
    )
    if not isinstance(body, dict):
        return _error(route, 400, "Request body is not valid JSON")
    try:
        config = state.defaults.merged(FakeConfig.header_values(request.headers))
    except ValueError as exc:
        return _error(route, 400, str(exc))
    if not _authorized(route, request):
        return _error(route, 401, "Missing or invalid API key")
    if config.status:
        return _error(route, config.status, f"fake provider answered {config.status}")
    return body, config


async def _handle(
    request: web.Request, route: _Route, model: str | None = None, stream: bool | None = None
) -> web.StreamResponse:
    state = request.app[STATE]
    accepted = await _accept(request, route)
    if isinstance(accepted, web.Response):
        return accepted
    body, config = accepted
    model = model or body.get("model")
    if not isinstance(model, str) or not model:
        return _error(route, 400, "model is required")
    max_tokens = _max_tokens(route, body)
    if route.kind == "anthropic" and max_tokens is None:
        return _error(route, 400, "max_tokens: Field required")
    stream = bool(body.get("stream")) if stream is None else stream
    plan = _plan(route, body, model, config, state)
    if stream:
        return await _stream(request, route, plan, config, max_tokens, state)
    return await _answer(route, plan, config, max_tokens, state)


async def _count_tokens(
    request: web.Request, route: _Route, model: str | None = None
) -> web.Response:
    """Anthropic ``count_tokens`` / Gemini ``countTokens``: the input count the call would
    report, free of charge."""
    accepted = await _accept(request, route)
    if isinstance(accepted, web.Response):
        return accepted
    body, _ = accepted
    if route.kind == "gemini" and isinstance(body.get("generateContentRequest"), dict):
        body = body["generateContentRequest"]
    model = model or body.get("model")
    if not isinstance(model, str) or not model:
        return _error(route, 400, "model is required")
    request.app[STATE].billed.count_tokens_requests += 1
    return web.json_response(fake_wire.count_tokens_body(route.error_style, prompt_tokens(body)))


async def _embeddings(request: web.Request) -> web.Response:
    """OpenAI embeddings: one vector per input, billed by its cl100k tokens (token arrays:
    one token per id), like OpenAI's embedding models."""
    from spendguard_proxy.tokens import bpe_count

    route = _ROUTES["chat"]
    accepted = await _accept(request, route)
    if isinstance(accepted, web.Response):
        return accepted
    body, _ = accepted
    model, inputs = body.get("model"), body.get("input")
    if not isinstance(inputs, list) or (inputs and isinstance(inputs[0], int)):
        inputs = [inputs]
    tokens = sum(len(i) if isinstance(i, list) else bpe_count("cl100k_base", str(i))
                 for i in inputs)
    request.app[STATE].billed.add(str(model), input_tokens=tokens)
    vector: Any = [0.0, 0.5, 1.0]
    if body.get("encoding_format") == "base64":
        vector = base64.b64encode(struct.pack("<3f", *vector)).decode()
    vectors = [{"object": "embedding", "index": i, "embedding": vector}
               for i in range(len(inputs))]
    return web.json_response({"object": "list", "data": vectors, "model": model,
                              "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})


def _plan(
    route: _Route, body: dict[str, Any], model: str, config: FakeConfig, state: FakeState
) -> Plan:
    prompt = prompt_tokens(body)
    cached = min(config.cached_tokens, prompt)
    writes = (0, 0)
    if route.kind == "anthropic":
        writes = _cache_writes(body, prompt, prompt - cached)
    web_searches, file_searches = _tool_calls(route, body, config)
    options = body.get("stream_options")
    n = body.get("n") if route.kind == "chat" else 1
    asked_tier = body.get("service_tier")
    speed = body.get("speed") if route.kind == "anthropic" else None
    return Plan(
        model=model,
        prompt_tokens=prompt,
        cached_tokens=cached,
        reasoning_tokens=config.reasoning_tokens,
        web_search_calls=web_searches,
        file_search_calls=file_searches,
        cache_write_5m_tokens=writes[0],
        cache_write_1h_tokens=writes[1],
        service_tier=_served_tier(route, body, model, config),
        service_tier_requested=asked_tier if isinstance(asked_tier, str) else None,
        speed=speed if isinstance(speed, str) else None,
        choices=n if isinstance(n, int) and n > 0 else 1,
        omit_usage=config.omit_usage,
        include_usage=isinstance(options, dict) and options.get("include_usage") is True,
        call_id=f"fake{next(state.ids)}",
    )


def _bill(route: _Route, plan: Plan) -> BilledCall:
    """The call as billed before its first output token: input, hidden reasoning, tools."""
    return BilledCall(
        call_id=plan.call_id,
        model=plan.model,
        provider_id=_provider_id(route, plan.model),
        at=datetime.now(UTC),
        service_tier=plan.service_tier,
        speed=plan.speed,
        input_tokens=plan.prompt_tokens,
        output_tokens=plan.reasoning_tokens * plan.choices,
        cache_read_tokens=plan.cached_tokens,
        cache_write_tokens=plan.cache_write_5m_tokens + plan.cache_write_1h_tokens,
        cache_write_1h_tokens=plan.cache_write_1h_tokens,
        web_search_calls=plan.web_search_calls,
        file_search_calls=plan.file_search_calls,
        web_search_units=_search_units(route, plan.model, plan.web_search_calls),
    )


def _budget(plan: Plan, config: FakeConfig, max_tokens: int | None) -> tuple[int | None, bool]:
    """Visible words to generate (None: endless) and whether max tokens cut the answer."""
    if config.endless:
        return None, False
    if config.ignore_max_tokens or max_tokens is None:
        return config.words, False
    plan.reasoning_tokens = min(plan.reasoning_tokens, max_tokens)
    room = max_tokens - plan.reasoning_tokens
    return min(config.words, room), config.words + plan.reasoning_tokens > max_tokens


async def _answer(
    route: _Route, plan: Plan, config: FakeConfig, max_tokens: int | None, state: FakeState
) -> web.Response:
    await asyncio.sleep(config.first_byte_delay_ms / 1000)
    words, truncated = _budget(plan, config, max_tokens)
    words = config.words if words is None else words
    text = "".join(fake_wire.word_source(words))
    wire = route.wire(plan)
    answer = wire.body(text, words, truncated)
    call = state.billed.open(_bill(route, plan))
    state.billed.add_output(call, words * plan.choices)
    state.billed.close(call)
    return web.json_response(answer, headers=wire.headers())


async def _stream(
    request: web.Request,
    route: _Route,
    plan: Plan,
    config: FakeConfig,
    max_tokens: int | None,
    state: FakeState,
) -> web.StreamResponse:
    await asyncio.sleep(config.first_byte_delay_ms / 1000)
    limit, truncated = _budget(plan, config, max_tokens)
    wire = route.wire(plan)
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", **wire.headers()}
    )
    await response.prepare(request)
    # Input, hidden reasoning and searches happen before the first visible token.
    call = state.billed.open(_bill(route, plan))
    written = 0
    text: list[str] = []
    try:
        for event in wire.start():
            await response.write(event)
        for word in fake_wire.word_source(limit):
            state.billed.add_output(call, plan.choices)
            written += 1
            text.append(word)
            await response.write(wire.word(word))
            if config.disconnect_after is not None and written >= config.disconnect_after:
                request.transport.close()  # the provider drops the connection mid-answer
                return response
            await asyncio.sleep(config.delay_ms / 1000)
        for event in wire.finish(written, truncated, "".join(text)):
            await response.write(event)
        await response.write_eof()
    except (ConnectionError, asyncio.CancelledError):
        if config.bill_full_on_disconnect and limit is not None and limit > written:
            state.billed.add_output(call, (limit - written) * plan.choices)
        raise
    finally:
        state.billed.close(call)
    return response


async def _chat(request: web.Request) -> web.StreamResponse:
    return await _handle(request, _ROUTES["chat"])


async def _responses(request: web.Request) -> web.StreamResponse:
    return await _handle(request, _ROUTES["responses"])


async def _messages(request: web.Request) -> web.StreamResponse:
    return await _handle(request, _ROUTES["anthropic"])


async def _messages_count_tokens(request: web.Request) -> web.StreamResponse:
    return await _count_tokens(request, _ROUTES["anthropic"])


async def _gemini(request: web.Request) -> web.StreamResponse:
    model, _, action = request.match_info["target"].partition(":")
    route = _ROUTES["gemini"]
    if action == "countTokens":
        return await _count_tokens(request, route, model=model)
    if action not in ("generateContent", "streamGenerateContent"):
        return _error(route, 404, f"unknown method {action!r}")
    return await _handle(request, route, model=model, stream=action == "streamGenerateContent")


async def _config(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        state.defaults = state.defaults.merged(await request.json())
    except (ValueError, TypeError, AttributeError) as exc:
        return web.json_response({"error": str(exc)}, status=400)
    return web.json_response(dataclasses.asdict(state.defaults))


async def _reset(request: web.Request) -> web.Response:
    request.app[STATE].reset()
    return web.json_response({"reset": True})


async def _billed(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].billed.snapshot())


async def _requests(request: web.Request) -> web.Response:
    return web.json_response({"requests": list(request.app[STATE].requests)})


def make_app() -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[STATE] = FakeState()
    app.router.add_post("/v1/chat/completions", _chat)
    app.router.add_post("/v1/responses", _responses)
    app.router.add_post("/v1/messages", _messages)
    app.router.add_post("/v1/embeddings", _embeddings)
    app.router.add_post("/v1/messages/count_tokens", _messages_count_tokens)
    app.router.add_post("/v1beta/models/{target}", _gemini)
    app.router.add_post("/v1/models/{target}", _gemini)
    app.router.add_post("/_fake/config", _config)
    app.router.add_post("/_fake/reset", _reset)
    app.router.add_get("/_fake/billed", _billed)
    app.router.add_get("/_fake/requests", _requests)
    return app


# ---------------------------------------------------------------- running it


@dataclass
class FakeProvider:
    state: FakeState
    host: str
    port: int

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url_openai(self) -> str:
        return f"{self.origin}/v1"

    @property
    def base_url_xai(self) -> str:
        return f"{self.origin}/v1"

    @property
    def base_url_anthropic(self) -> str:
        return self.origin

    @property
    def base_url_gemini(self) -> str:
        return self.origin

    @property
    def billed(self) -> Billed:
        return self.state.billed

    @property
    def requests(self) -> list[dict[str, Any]]:
        return list(self.state.requests)

    def configure(self, **switches: Any) -> None:
        self.state.defaults = self.state.defaults.merged(switches)

    def reset(self) -> None:
        self.state.reset()


@asynccontextmanager
async def run_fake_provider(host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[FakeProvider]:
    app = make_app()
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        yield FakeProvider(app[STATE], host, runner.addresses[0][1])
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9999)
    args = parser.parse_args(argv)
    web.run_app(make_app(), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
