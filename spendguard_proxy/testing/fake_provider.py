"""A fake LLM provider on loopback that speaks OpenAI, xAI, Anthropic and Gemini wire formats.

Routes: ``POST /v1/chat/completions``, ``POST /v1/responses`` (OpenAI and xAI),
``POST /v1/messages`` (Anthropic), ``POST /v1beta/models/{model}:generateContent`` and
``:streamGenerateContent?alt=sse`` (Gemini); stream and non-stream, usage figures as each
provider reports them. Prompt tokens are the o200k count of the request's text (85 per
image); the answer is ``words`` one-token words, cut at the request's max-tokens field.

Misbehaviour per request by ``x-fake-*`` headers, or as defaults for later requests by
``POST /_fake/config`` with the same names in snake case (``{"delay_ms": 5}``):

    x-fake-delay-ms, x-fake-first-byte-delay-ms, x-fake-disconnect-after (chunks),
    x-fake-status (answer that status with a provider-shaped error, bill nothing),
    x-fake-ignore-max-tokens, x-fake-omit-usage, x-fake-endless (stream until hung up),
    x-fake-words, x-fake-reasoning-tokens, x-fake-cached-tokens, x-fake-web-search-calls,
    x-fake-bill-full-on-disconnect (bill the whole planned answer when the client hangs up)

What it would bill: ``GET /_fake/billed`` (per model: requests, input/output tokens
generated -- also after a client hung up -- and web searches); ``GET /_fake/requests`` the
last requests' path, headers and body; ``POST /_fake/reset`` clears both and the defaults.

Run alone: ``python -m spendguard_proxy.testing.fake_provider --port 9999``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import itertools
import json
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from spendguard_proxy.testing import fake_wire
from spendguard_proxy.testing.fake_wire import Plan

IMAGE_TOKENS = 85
REQUESTS_KEPT = 200
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
    web_search_calls: int = 0
    bill_full_on_disconnect: bool = False

    def merged(self, values: Mapping[str, Any]) -> FakeConfig:
        known = {f.name: f for f in dataclasses.fields(self)}
        changes = {}
        for name, value in values.items():
            if name not in known:
                raise ValueError(f"unknown fake switch {name!r}; known: {sorted(known)}")
            changes[name] = _coerce(value, bool if known[name].type == "bool" else int)
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
    return int(value)


@dataclass
class Billed:
    """What the fake would bill, per model."""

    models: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, model: str, **amounts: int) -> None:
        row = self.models.setdefault(
            model, {"requests": 0, "input_tokens": 0, "output_tokens": 0, "web_search_calls": 0}
        )
        for name, amount in amounts.items():
            row[name] += amount

    def total(self, name: str) -> int:
        return sum(row[name] for row in self.models.values())

    def snapshot(self) -> dict[str, Any]:
        names = ("requests", "input_tokens", "output_tokens", "web_search_calls")
        return {
            "models": {m: dict(r) for m, r in self.models.items()},
            "total": {n: self.total(n) for n in names},
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
    from spendguard_proxy.tokens import bpe_count

    texts: list[str] = []
    media = 0
    stack = [body.get(key) for key in _CONTENT_KEYS] if isinstance(body, dict) else [body]
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
            if (
                node.get("type")
                in (
                    "image",
                    "image_url",
                    "input_image",
                    "document",
                    "input_file",
                    "file",
                    "input_audio",
                )
                or "inlineData" in node
                or "inline_data" in node
            ):
                media += 1
                continue
            stack.extend(node.values())
    return bpe_count("o200k_base", "\n".join(texts)) + IMAGE_TOKENS * media


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
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _error(route: _Route, status: int, message: str) -> web.Response:
    return web.json_response(
        fake_wire.error_body(route.error_style, status, message), status=status
    )


# ---------------------------------------------------------------- handlers


async def _handle(
    request: web.Request, route: _Route, model: str | None = None, stream: bool | None = None
) -> web.StreamResponse:
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


def _plan(
    route: _Route, body: dict[str, Any], model: str, config: FakeConfig, state: FakeState
) -> Plan:
    prompt = prompt_tokens(body)
    options = body.get("stream_options")
    n = body.get("n") if route.kind == "chat" else 1
    return Plan(
        model=model,
        prompt_tokens=prompt,
        cached_tokens=min(config.cached_tokens, prompt),
        reasoning_tokens=config.reasoning_tokens,
        web_search_calls=config.web_search_calls,
        choices=n if isinstance(n, int) and n > 0 else 1,
        omit_usage=config.omit_usage,
        include_usage=isinstance(options, dict) and options.get("include_usage") is True,
        call_id=f"fake{next(state.ids)}",
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
    answer = route.wire(plan).body(text, words, truncated)
    state.billed.add(
        plan.model,
        requests=1,
        input_tokens=plan.prompt_tokens,
        output_tokens=(words + plan.reasoning_tokens) * plan.choices,
        web_search_calls=plan.web_search_calls,
    )
    return web.json_response(answer)


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
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    # Input, hidden reasoning and searches happen before the first visible token.
    state.billed.add(
        plan.model,
        requests=1,
        input_tokens=plan.prompt_tokens,
        output_tokens=plan.reasoning_tokens * plan.choices,
        web_search_calls=plan.web_search_calls,
    )
    written = 0
    text: list[str] = []
    try:
        for event in wire.start():
            await response.write(event)
        for word in fake_wire.word_source(limit):
            state.billed.add(plan.model, output_tokens=plan.choices)
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
            state.billed.add(plan.model, output_tokens=(limit - written) * plan.choices)
        raise
    return response


async def _chat(request: web.Request) -> web.StreamResponse:
    return await _handle(request, _ROUTES["chat"])


async def _responses(request: web.Request) -> web.StreamResponse:
    return await _handle(request, _ROUTES["responses"])


async def _messages(request: web.Request) -> web.StreamResponse:
    return await _handle(request, _ROUTES["anthropic"])


async def _gemini(request: web.Request) -> web.StreamResponse:
    model, _, action = request.match_info["target"].partition(":")
    if action not in ("generateContent", "streamGenerateContent"):
        return _error(_ROUTES["gemini"], 404, f"unknown method {action!r}")
    return await _handle(
        request, _ROUTES["gemini"], model=model, stream=action == "streamGenerateContent"
    )


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
    app.router.add_post("/v1beta/models/{target}", _gemini)
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
