"""A locked budget answers 409 once: the official SDKs (default max_retries) do not retry it.

Both SDKs retry 409 twice by default (~1.4 s of back-off) unless the answer says
``x-should-retry: false``; a budget locked by another run stays locked for that run's whole
call, so a retry only wastes the client's time.
"""

from __future__ import annotations

import time
import uuid

import anthropic
import openai
import pytest
from aiohttp import web

from spendguard_proxy import ledger
from spendguard_proxy.server.app import build_app
from tests.ledger.helpers import request

# Far below the SDKs' first back-off (0.5 s and more) plus a second round trip.
NO_RETRY_S_MAX = 0.45


@pytest.fixture(scope="session")
async def counted_proxy(relay_settings, dsn):
    """A SpendGuard on 127.0.0.1 that counts the requests reaching it, by path."""
    seen: list[str] = []

    @web.middleware
    async def count(request: web.Request, handler):
        seen.append(request.path)
        return await handler(request)

    app = build_app(relay_settings, dsn)
    app.middlewares.insert(0, count)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", seen
    finally:
        await runner.cleanup()


async def _locked_agent(pool) -> uuid.UUID:
    """An exclusive budget held by another run's call in flight."""
    agent = await ledger.create_agent(pool, ledger.LOCAL_TENANT_ID, "locked")
    agent_id = uuid.UUID(agent["agent_id"])
    await ledger.set_budget(pool, ledger.LOCAL_TENANT_ID, agent_id, hard_limit_cents=100,
                            topup_cents=None, concurrency="exclusive")
    await ledger.reserve(pool, request(agent_id), ttl_s=300)
    return agent_id


def _headers(agent_id: uuid.UUID) -> dict[str, str]:
    return {"x-cynsta-agent-id": str(agent_id), "x-cynsta-run-id": str(uuid.uuid4())}


async def test_openai_sdk_gets_409_without_retrying(counted_proxy, pool):
    url, seen = counted_proxy
    agent_id = await _locked_agent(pool)
    client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="unused",
                                default_headers=_headers(agent_id))
    assert client.max_retries == 2  # the SDK's default
    seen.clear()
    started = time.monotonic()
    try:
        with pytest.raises(openai.ConflictError) as caught:
            await client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    finally:
        await client.close()
    assert time.monotonic() - started < NO_RETRY_S_MAX
    assert seen == ["/v1/chat/completions"]
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert caught.value.body["type"] == "budget_locked"


async def test_anthropic_sdk_gets_409_without_retrying(counted_proxy, pool):
    url, seen = counted_proxy
    agent_id = await _locked_agent(pool)
    client = anthropic.AsyncAnthropic(base_url=url, api_key="unused",
                                      default_headers=_headers(agent_id))
    assert client.max_retries == 2
    seen.clear()
    started = time.monotonic()
    try:
        with pytest.raises(anthropic.ConflictError) as caught:
            await client.messages.create(
                model="claude-haiku-4-5", max_tokens=100,
                messages=[{"role": "user", "content": "hi"}])
    finally:
        await client.close()
    assert time.monotonic() - started < NO_RETRY_S_MAX
    assert seen == ["/v1/messages"]
    assert caught.value.response.headers["x-should-retry"] == "false"


async def test_other_errors_keep_the_sdks_default(counted_proxy):
    """Only the lock says "do not retry": a 503 (database down) stays retryable."""
    from spendguard_proxy.errors import DatabaseUnavailable
    from spendguard_proxy.server.middlewares import error_response

    assert "x-should-retry" not in error_response(DatabaseUnavailable("x")).headers
