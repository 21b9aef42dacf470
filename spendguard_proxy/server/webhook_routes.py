"""Webhooks of the calling tenant (DESIGN §11): create (the secret is shown here only), list,
delete, and a webhook's deliveries with their attempts. Scope ``cap:admin``."""

from __future__ import annotations

import uuid

from aiohttp import web

from spendguard_proxy.server.auth import requires, tenant_of
from spendguard_proxy.server.bodies import parse_uuid, query_int, read_json_object
from spendguard_proxy.server.keys import POOL, SETTINGS
from spendguard_proxy.webhooks import store
from spendguard_proxy.webhooks.secret_box import box_for
from spendguard_proxy.webhooks.validation import parse_create

ADMIN = "cap:admin"
MAX_DELIVERIES_PAGE = 200
routes = web.RouteTableDef()


def _webhook_id(request: web.Request) -> uuid.UUID:
    return parse_uuid(request.match_info["webhook_id"], "webhook_id")


@routes.post("/v1/webhooks")
@requires(ADMIN)
async def create_webhook(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    body = parse_create(await read_json_object(request), settings)
    box = box_for(settings)  # hosted without CAP_WEBHOOK_SECRET_KEY: a 400 saying to set it
    webhook = await store.create_webhook(
        request.app[POOL], tenant_of(request), body.url, body.events, box,
        settings.webhook_max_per_tenant,
    )
    return web.json_response(webhook, headers={"Cache-Control": "no-store"})


@routes.get("/v1/webhooks")
@requires(ADMIN)
async def list_webhooks(request: web.Request) -> web.Response:
    return web.json_response(await store.list_webhooks(request.app[POOL], tenant_of(request)))


@routes.delete("/v1/webhooks/{webhook_id}")
@requires(ADMIN)
async def delete_webhook(request: web.Request) -> web.Response:
    result = await store.delete_webhook(
        request.app[POOL], tenant_of(request), _webhook_id(request)
    )
    return web.json_response(result)


@routes.get("/v1/webhooks/{webhook_id}/deliveries")
@requires(ADMIN)
async def list_deliveries(request: web.Request) -> web.Response:
    webhook_id = _webhook_id(request)
    limit = query_int(request, "limit", 50, 1, MAX_DELIVERIES_PAGE)
    before = query_int(request, "before", None, 1, 2**63 - 1)
    result = await store.list_deliveries(
        request.app[POOL], tenant_of(request), webhook_id, limit=limit, before=before
    )
    return web.json_response(result)
