"""Webhook fixtures: a database of their own, a scriptable receiver on 127.0.0.1, workers.

The delivery queue is one table for the whole database and every SpendGuard server runs a
worker, so these tests use their own migrated database: no other suite's server can claim
their deliveries, and they cannot claim anyone else's. Each test ends with no pending
delivery left behind (``_no_leftovers``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from pydantic import SecretStr

from spendguard_proxy import tenants
from spendguard_proxy.db.pool import create_pool
from spendguard_proxy.settings import Mode
from spendguard_proxy.webhooks.secret_box import generate_key
from spendguard_proxy.webhooks.worker import DeliveryWorker, delivery_session
from tests.conftest import migrated_database

SHORT = {
    "webhook_secret_key": SecretStr(generate_key()),
    "webhook_retry_base_s": 0.05,
    "webhook_retry_max_s": 0.2,
    "webhook_timeout_s": 0.5,
    "webhook_poll_interval_s": 0.05,
    "webhook_max_in_flight": 8,
}
WAIT_S = 15  # the most any test waits for deliveries to settle


@pytest.fixture(scope="session")
def wh_dsn(server_dsn):
    with migrated_database(server_dsn, "sg_webhooks") as url:
        yield url


@pytest.fixture(scope="session")
def wh_settings(settings):
    """Sidecar settings with short retries; the app's own worker off (tests run theirs)."""
    return settings.model_copy(update={**SHORT, "webhook_delivery": False})


@pytest.fixture(scope="session")
def wh_hosted_settings(wh_settings):
    return wh_settings.model_copy(update={"mode": Mode.hosted, "key_cache_ttl_s": 0.0})


@pytest.fixture(scope="session")
async def wh_pool(wh_dsn, wh_settings):
    p = await create_pool(wh_dsn, wh_settings)
    yield p
    await p.close()


@pytest.fixture(autouse=True)
async def _no_leftovers(request):
    yield
    if "wh_pool" in request.fixturenames:
        await request.getfixturevalue("wh_pool").execute(
            "UPDATE webhook_deliveries SET state = 'failed', last_error = 'test ended'"
            " WHERE state = 'pending'"
        )


async def new_tenant_id(pool) -> uuid.UUID:
    tenant = await tenants.create_tenant(pool, f"wh-{uuid.uuid4().hex[:8]}")
    return uuid.UUID(tenant["tenant_id"])


async def emit(pool, tenant_id: uuid.UUID, event_type: str, data: dict) -> str | None:
    """Write one event as the ledger does (sg_emit); its id, or None when nobody listens."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT sg_emit($1, $2, $3::jsonb, now())", tenant_id, event_type,
                           data)
        # now() is this transaction's start: only the event just written has it.
        return await conn.fetchval(
            "SELECT id FROM webhook_events WHERE tenant_id = $1 AND created_at = now()",
            tenant_id)


def threshold_data(pct: int = 80) -> dict:
    return {"agent_id": str(uuid.uuid4()), "group_id": None, "threshold_pct": pct,
            "spent_cents": pct, "hard_limit_cents": 100, "period": "none"}


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int | None  # the status the receiver meant to answer (None: it stalled)


@dataclass
class Receiver:
    """An HTTP receiver on 127.0.0.1 whose answers follow a script: each request takes the
    next behaviour (then ``after`` forever): an int status, "stall" (answer too late), or
    ("redirect", url)."""

    script: list = field(default_factory=list)
    after: object = 200
    delay_s: float = 0.0
    stall_s: float = 2.0
    requests: list[Received] = field(default_factory=list)
    in_flight: dict[tuple[str, str], int] = field(default_factory=dict)
    overlaps: list[tuple[str, str]] = field(default_factory=list)
    base_url: str = ""

    def behaviour(self):
        return self.script.pop(0) if self.script else self.after

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        todo = self.behaviour()
        key = (request.path, request.headers.get("webhook-id", ""))
        self.in_flight[key] = self.in_flight.get(key, 0) + 1
        if self.in_flight[key] > 1:
            self.overlaps.append(key)
        entry = Received(request.path, dict(request.headers), body,
                         todo if isinstance(todo, int) else None)
        self.requests.append(entry)
        try:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            if todo == "stall":
                await asyncio.sleep(self.stall_s)
                return web.Response(status=200)
            if isinstance(todo, tuple) and todo[0] == "redirect":
                entry.answered = 302
                return web.Response(status=302, headers={"Location": todo[1]})
            return web.Response(status=todo, text="ok" if todo < 300 else "no")
        finally:
            self.in_flight[key] -= 1

    def delivered_ids(self, path: str | None = None) -> list[str]:
        return [r.headers["webhook-id"] for r in self.requests
                if r.answered is not None and 200 <= r.answered < 300
                and (path is None or r.path == path)]


@contextlib.asynccontextmanager
async def running_receiver(**kwargs):
    receiver = Receiver(**kwargs)
    app = web.Application()
    app.router.add_post("/{tail:.*}", receiver.handle)
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    receiver.base_url = f"http://127.0.0.1:{port}"
    try:
        yield receiver
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def running_workers(pool, settings, count: int = 1, **kwargs):
    """``count`` delivery workers, each with its own session, running until the block ends."""
    async with contextlib.AsyncExitStack() as stack:
        workers = []
        for _ in range(count):
            session = await stack.enter_async_context(delivery_session(settings))
            workers.append(DeliveryWorker(pool, settings, session, **kwargs))
        tasks = [asyncio.create_task(w.run_forever()) for w in workers]
        try:
            yield workers
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def wait_until(check: Callable, timeout_s: float = WAIT_S, every_s: float = 0.05):
    """Poll ``await check()`` until it is truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not settled within {timeout_s} s: {result!r}")
        await asyncio.sleep(every_s)


async def pending_count(pool, webhook_ids) -> int:
    return await pool.fetchval(
        "SELECT count(*) FROM webhook_deliveries WHERE webhook_id = ANY($1::uuid[])"
        " AND state = 'pending'", list(webhook_ids))
