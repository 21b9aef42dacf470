"""Liveness and readiness."""

from __future__ import annotations

import asyncio
import os

from aiohttp import web

from spendguard_proxy.server.keys import POOL, PRICING
from spendguard_proxy.server.middlewares import DATABASE_DOWN

routes = web.RouteTableDef()
READY_DB_TIMEOUT_S = 2.0
# Which process answered: with `serve --workers N` several share the port (SO_REUSEPORT).
WORKER_HEADER = "X-SpendGuard-Worker"


@routes.get("/health")
async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"}, headers={WORKER_HEADER: str(os.getpid())})


@routes.get("/ready")
async def ready(request: web.Request) -> web.Response:
    checks: dict[str, str] = {}
    try:
        await asyncio.wait_for(request.app[POOL].fetchval("SELECT 1"), READY_DB_TIMEOUT_S)
        checks["database"] = "ok"
    except DATABASE_DOWN as exc:
        checks["database"] = f"unavailable: {type(exc).__name__}"
    pricing = request.app.get(PRICING)
    checks["pricing"] = "ok" if pricing is not None and pricing.table is not None else "not loaded"
    ok = all(v == "ok" for v in checks.values())
    return web.json_response(
        {"status": "ready" if ok else "not_ready", "checks": checks}, status=200 if ok else 503
    )
