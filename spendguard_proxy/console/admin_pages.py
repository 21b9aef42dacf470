"""Groups, webhooks (with their deliveries) and API keys (hosted)."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
from aiohttp import web

from spendguard_proxy.console import queries
from spendguard_proxy.console.app import (
    PREFIX,
    SESSION,
    is_hosted,
    pool_of,
    render,
    tenant_of,
)
from spendguard_proxy.errors import NotFound, SpendGuardError
from spendguard_proxy.server.bodies import parse_uuid

routes = web.RouteTableDef()
DELIVERIES_SHOWN = 20


def _uuid(request: web.Request, name: str, what: str) -> uuid.UUID:
    try:
        return parse_uuid(request.match_info[name], name)
    except SpendGuardError:
        raise NotFound(f"No such {what}") from None


# ---------------------------------------------------------------- keys


@routes.get("/keys")
async def keys(request: web.Request) -> web.Response:
    rows = await queries.tenant_keys(pool_of(request), tenant_of(request)) \
        if is_hosted(request) else []
    return render(request, "keys.html", {"title": "API keys", "keys": rows,
                                         "revoked": request.query.get("revoked")})


@routes.post("/keys/{key_id}/revoke")
async def revoke_key(request: web.Request) -> web.Response:
    """Revoking stays possible from the console; minting keys does not (a stolen console
    session must not turn into a long-lived API key)."""
    if not is_hosted(request):
        raise NotFound("No API keys in sidecar mode")
    key_id = _uuid(request, "key_id", "API key")
    if not await queries.revoke_tenant_key(pool_of(request), tenant_of(request), key_id):
        raise NotFound(f"API key not found: {key_id}")
    if request[SESSION].key_id == key_id:
        raise web.HTTPSeeOther(PREFIX + "/login")  # that was this session's key: it ended
    raise web.HTTPSeeOther(f"{PREFIX}/keys?revoked={key_id}")


# ---------------------------------------------------------------- webhooks

_WEBHOOKS_SQL = """
SELECT id, url, events, created_at FROM webhooks
 WHERE tenant_id = $1 AND deleted_at IS NULL ORDER BY created_at, id
"""

_DELIVERIES_SQL = """
SELECT d.id, d.webhook_id, e.id AS event_id, e.type, d.state, d.attempts, d.last_status,
       d.last_error, d.next_attempt_at, d.delivered_at, d.created_at
  FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id
 WHERE d.webhook_id = $1 AND e.tenant_id = $2
 ORDER BY d.id DESC LIMIT $3
"""


async def _webhooks(pool, tenant: uuid.UUID) -> list[dict[str, Any]] | None:
    """The tenant's webhooks, each with its latest deliveries; None before the webhook
    tables exist (an older schema)."""
    try:
        hooks = [dict(r) for r in await pool.fetch(_WEBHOOKS_SQL, tenant)]
        for hook in hooks:
            hook["deliveries"] = [
                dict(r) for r in await pool.fetch(_DELIVERIES_SQL, hook["id"], tenant,
                                                  DELIVERIES_SHOWN)
            ]
    except asyncpg.UndefinedTableError:
        return None
    return hooks


@routes.get("/webhooks")
async def webhooks(request: web.Request) -> web.Response:
    hooks = await _webhooks(pool_of(request), tenant_of(request))
    return render(request, "webhooks.html", {"title": "Webhooks", "webhooks": hooks})


# ---------------------------------------------------------------- groups


def _groups_module():
    try:
        from spendguard_proxy import groups
    except ImportError:
        return None
    return groups


@routes.get("/groups")
async def groups_page(request: web.Request) -> web.Response:
    module = _groups_module()
    rows = await module.list_groups(pool_of(request), tenant_of(request)) if module else None
    return render(request, "groups.html", {"title": "Budget groups", "groups": rows})
