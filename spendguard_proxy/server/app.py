"""The aiohttp application: resources in cleanup_ctx, state under AppKeys, routes registered."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from spendguard_proxy import ledger, tokens
from spendguard_proxy.console import setup_console
from spendguard_proxy.db.pool import create_pool
from spendguard_proxy.ledger_batch import LedgerBatcher
from spendguard_proxy.server import (
    admin_routes,
    group_routes,
    health,
    model_routes,
    provider_routes,
)
from spendguard_proxy.server.agents_seen import AGENTS_SEEN, AgentsSeen
from spendguard_proxy.server.auth import KEY_CACHE, KeyCache, auth_middleware
from spendguard_proxy.server.json_vetting import vetting_process
from spendguard_proxy.server.keys import LEDGER, POOL, PRICING, SETTINGS
from spendguard_proxy.server.metrics import setup_metrics
from spendguard_proxy.server.middlewares import DATABASE_DOWN, errors_middleware
from spendguard_proxy.server.public_pricing import public_pricing
from spendguard_proxy.server.telemetry import setup_telemetry
from spendguard_proxy.server.upstream import upstream_sessions
from spendguard_proxy.server.webhook_routes import routes as webhook_routes
from spendguard_proxy.settings import Settings
from spendguard_proxy.webhooks.background import webhook_delivery

log = logging.getLogger(__name__)


def build_app(
    settings: Settings, dsn: str, *, worker_id: str | None = None
) -> web.Application:
    """The app; ``worker_id`` (a worker of `serve --workers N`) is stamped on every hold it
    places, so the supervisor can end them at once if the worker dies."""
    tokens.preload()  # load the BPE tables now, not on the first request
    app = web.Application(
        middlewares=[errors_middleware, auth_middleware],
        client_max_size=settings.max_body_bytes,
    )
    app[SETTINGS] = settings
    app[KEY_CACHE] = KeyCache(settings.key_cache_ttl_s)
    app[AGENTS_SEEN] = AgentsSeen(settings.key_cache_ttl_s)
    app.cleanup_ctx.append(_database(dsn, worker_id))
    app.cleanup_ctx.append(_pricing)
    app.cleanup_ctx.append(upstream_sessions)
    app.cleanup_ctx.append(_hold_sweeper)
    app.cleanup_ctx.append(vetting_process)
    app.cleanup_ctx.append(webhook_delivery)
    app.router.add_routes(health.routes)
    app.router.add_routes(admin_routes.routes)
    app.router.add_routes(group_routes.routes)
    app.router.add_routes(provider_routes.routes)
    app.router.add_routes(model_routes.routes)
    app.router.add_routes(webhook_routes)
    app.router.add_get("/v1/public/pricing", public_pricing)
    setup_console(app)  # /ui: the operator console (its own session and CSRF checks)
    setup_metrics(app)
    setup_telemetry(app)  # outermost: logs after settlement, with the status the client got
    return app


def _database(dsn: str, worker_id: str | None):
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        pool = await create_pool(dsn, app[SETTINGS])
        app[POOL] = pool
        app[LEDGER] = LedgerBatcher(pool, app[SETTINGS].lock_ttl_seconds, worker_id=worker_id)
        yield
        await app[LEDGER].close()
        await pool.close()

    return ctx


async def _pricing(app: web.Application) -> AsyncIterator[None]:
    from spendguard_proxy.pricing.state import load_initial, refresh_forever

    settings = app[SETTINGS]
    async with aiohttp.ClientSession() as session:
        app[PRICING] = await load_initial(settings, session)
        task = asyncio.create_task(refresh_forever(app[PRICING], settings, session))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _hold_sweeper(app: web.Application) -> AsyncIterator[None]:
    """Charge the expired holds of proxies that died, even for agents nobody calls again."""

    async def sweep_forever() -> None:
        interval = app[SETTINGS].sweep_interval_seconds
        while True:
            try:
                charged = await ledger.sweep_expired_holds(app[POOL])
                if charged:
                    log.warning("charged %d expired holds in full", charged)
            except DATABASE_DOWN as exc:
                log.warning("hold sweep skipped, database unavailable: %r", exc)
            except Exception:  # the sweeper must outlive any one bad sweep
                log.exception("hold sweep failed; trying again in %s s", interval)
            await asyncio.sleep(interval)

    task = asyncio.create_task(sweep_forever())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
