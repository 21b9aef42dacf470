"""Budget groups (DESIGN §11): one limit several agents of a tenant draw on."""

from __future__ import annotations

from aiohttp import web

from spendguard_proxy import groups
from spendguard_proxy.server.admin_routes import ADMIN
from spendguard_proxy.server.auth import requires, tenant_of
from spendguard_proxy.server.bodies import GroupCreate, GroupPatch, parse_body, parse_uuid
from spendguard_proxy.server.keys import POOL

routes = web.RouteTableDef()


def _group_id(request: web.Request):
    return parse_uuid(request.match_info["group_id"], "group_id")


@routes.post("/v1/groups")
@requires(ADMIN)
async def create_group(request: web.Request) -> web.Response:
    body = await parse_body(request, GroupCreate)
    group = await groups.create_group(
        request.app[POOL],
        tenant_of(request),
        name=body.name,
        hard_limit_cents=body.hard_limit_cents,
        topup_cents=body.topup_cents,
        period=body.period,
        alert_thresholds_pct=body.alert_thresholds_pct,
    )
    return web.json_response(group)


@routes.get("/v1/groups")
@requires(ADMIN)
async def list_groups(request: web.Request) -> web.Response:
    return web.json_response(
        {"groups": await groups.list_groups(request.app[POOL], tenant_of(request))}
    )


@routes.get("/v1/groups/{group_id}")
@requires(ADMIN)
async def get_group(request: web.Request) -> web.Response:
    group = await groups.get_group(request.app[POOL], tenant_of(request), _group_id(request))
    return web.json_response(group)


@routes.patch("/v1/groups/{group_id}")
@requires(ADMIN)
async def update_group(request: web.Request) -> web.Response:
    group_id = _group_id(request)
    body = await parse_body(request, GroupPatch)
    group = await groups.update_group(
        request.app[POOL], tenant_of(request), group_id, body.given(groups.GROUP_FIELDS)
    )
    return web.json_response(group)


@routes.delete("/v1/groups/{group_id}")
@requires(ADMIN)
async def delete_group(request: web.Request) -> web.Response:
    result = await groups.delete_group(request.app[POOL], tenant_of(request), _group_id(request))
    return web.json_response(result)
