"""exact_input_tokens against the fake provider's count endpoints (free, exact)."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
from aiohttp import web

from spendguard_proxy.providers.registry import get_adapter
from spendguard_proxy.server import exact_count
from spendguard_proxy.server.exact_count import exact_input_tokens
from spendguard_proxy.server.keys import SETTINGS
from spendguard_proxy.server.upstream import upstream_sessions
from spendguard_proxy.testing.fake_provider import prompt_tokens

CLAUDE_BODY = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 1000,
    "stream": True,
    "temperature": 0.2,
    "system": "You are terse.",
    "messages": [{"role": "user", "content": "Summarise the ledger design in one line. " * 50}],
}
GEMINI_BODY = {
    "contents": [{"role": "user", "parts": [{"text": "東京の人口は？ 1234567890 " * 40}]}],
    "systemInstruction": {"parts": [{"text": "Answer briefly."}]},
    "generationConfig": {"maxOutputTokens": 100},
}


@contextlib.asynccontextmanager
async def _app(settings, fake, **overrides):
    app = web.Application()
    app[SETTINGS] = settings.model_copy(
        update={
            "anthropic_base_url": fake.base_url_anthropic,
            "gemini_base_url": fake.base_url_gemini,
            "openai_base_url": fake.base_url_openai,
            **overrides,
        }
    )
    app.cleanup_ctx.append(upstream_sessions)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        yield app
    finally:
        await runner.cleanup()


async def test_anthropic_count_tokens(settings, fake) -> None:
    async with _app(settings, fake) as app:
        adapter = get_adapter("anthropic_messages")
        count = await exact_input_tokens(
            app, adapter, CLAUDE_BODY, "sk-ant-test", "claude-sonnet-4-5",
            client_headers={"anthropic-beta": "x-1", "authorization": "Bearer leak"},
        )
    sent = {k: v for k, v in CLAUDE_BODY.items() if k in ("model", "system", "messages")}
    exact = prompt_tokens(sent)
    assert count == exact + exact_count.anthropic_slack(exact)
    assert fake.billed.count_tokens_requests == 1 and not fake.billed.calls  # free
    pre = adapter.preflight(CLAUDE_BODY)
    assert count < pre.input_tokens  # the point: far below the byte bound


async def test_gemini_count_tokens(settings, fake) -> None:
    async with _app(settings, fake) as app:
        count = await exact_input_tokens(
            app, get_adapter("gemini"), GEMINI_BODY, "gem-test", "models/gemini-2.5-flash"
        )
    assert count == prompt_tokens(GEMINI_BODY)
    assert fake.billed.count_tokens_requests == 1


async def test_off_unsupported_or_keyless_is_none(settings, fake) -> None:
    async with _app(settings, fake, exact_input_count=False) as app:
        adapter = get_adapter("anthropic_messages")
        assert await exact_input_tokens(app, adapter, CLAUDE_BODY, "k", "m") is None
    async with _app(settings, fake) as app:
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
        openai = get_adapter("openai_chat")
        assert await exact_input_tokens(app, openai, body, "k", "gpt-4o") is None
        assert await exact_input_tokens(app, get_adapter("gemini"), GEMINI_BODY, None, "m") is None
    assert fake.billed.count_tokens_requests == 0


@pytest.mark.parametrize("switch", [{"status": 500}, {"status": 429}])
async def test_provider_errors_give_none(settings, fake, switch) -> None:
    fake.configure(**switch)
    async with _app(settings, fake) as app:
        for adapter, body, model in (
            ("anthropic_messages", CLAUDE_BODY, "claude-sonnet-4-5"),
            ("gemini", GEMINI_BODY, "gemini-2.5-flash"),
        ):
            assert await exact_input_tokens(app, get_adapter(adapter), body, "k", model) is None


async def test_unreachable_or_slow_provider_gives_none(settings, fake, monkeypatch) -> None:
    async with _app(settings, fake, anthropic_base_url="http://127.0.0.1:9") as app:
        adapter = get_adapter("anthropic_messages")
        assert await exact_input_tokens(app, adapter, CLAUDE_BODY, "k", "m") is None
    monkeypatch.setattr(exact_count, "EXACT_COUNT_TIMEOUT_S", 0.2)
    async with _slow_server() as origin, _app(settings, fake, gemini_base_url=origin) as app:
        started = time.perf_counter()
        assert await exact_input_tokens(app, get_adapter("gemini"), GEMINI_BODY, "k", "m") is None
        assert time.perf_counter() - started < 0.9


@contextlib.asynccontextmanager
async def _slow_server():
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(1.0)
        return web.json_response({"totalTokens": 1})

    slow_app = web.Application()
    slow_app.router.add_post("/{tail:.*}", slow)
    runner = web.AppRunner(slow_app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def test_garbage_answers_give_none(settings, fake, monkeypatch) -> None:
    async def bad_answer(*args, **kwargs):
        return {"input_tokens": "many", "totalTokens": -1}

    monkeypatch.setattr(exact_count, "_post", bad_answer)
    async with _app(settings, fake) as app:
        for adapter, body in (("anthropic_messages", CLAUDE_BODY), ("gemini", GEMINI_BODY)):
            assert await exact_input_tokens(app, get_adapter(adapter), body, "k", "m") is None


async def test_added_latency_on_loopback(settings, fake) -> None:
    """What the extra round trip costs SpendGuard itself (a real provider adds its own)."""
    async with _app(settings, fake) as app:
        adapter = get_adapter("anthropic_messages")
        await exact_input_tokens(app, adapter, CLAUDE_BODY, "k", "m")  # warm the connection
        runs = 20
        started = time.perf_counter()
        for _ in range(runs):
            assert await exact_input_tokens(app, adapter, CLAUDE_BODY, "k", "m")
        per_call_ms = (time.perf_counter() - started) / runs * 1000
    print(f"\nexact count round trip on loopback: {per_call_ms:.2f} ms")
    assert per_call_ms < 50
