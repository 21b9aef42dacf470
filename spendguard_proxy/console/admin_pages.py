"""Budget groups, webhooks (with their deliveries) and API keys (hosted)."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from spendguard_proxy import groups
from spendguard_proxy.console import queries
from spendguard_proxy.console.app import (
    PREFIX,
    SESSION,
    form_of,
    is_hosted,
    pool_of,
    render,
    tenant_of,
)
from spendguard_proxy.console.forms import FormErrors, check, collect
from spendguard_proxy.errors import NotFound, SpendGuardError
from spendguard_proxy.server.bodies import GroupCreate, GroupPatch, parse_uuid
from spendguard_proxy.webhooks import store as webhook_store

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


@routes.get("/webhooks")
async def webhooks(request: web.Request) -> web.Response:
    """Each webhook with its latest deliveries and their attempts (the API's own reads)."""
    pool, tenant = pool_of(request), tenant_of(request)
    hooks = (await webhook_store.list_webhooks(pool, tenant))["webhooks"]
    for hook in hooks:
        hook["deliveries"] = (await webhook_store.list_deliveries(
            pool, tenant, uuid.UUID(hook["webhook_id"]), limit=DELIVERIES_SHOWN, before=None,
        ))["deliveries"]
    return render(request, "webhooks.html", {"title": "Webhooks", "webhooks": hooks,
                                             "deleted": request.query.get("deleted")})


@routes.post("/webhooks/{webhook_id}/delete")
async def delete_webhook(request: web.Request) -> web.Response:
    webhook_id = _uuid(request, "webhook_id", "webhook")
    await webhook_store.delete_webhook(pool_of(request), tenant_of(request), webhook_id)
    raise web.HTTPSeeOther(f"{PREFIX}/webhooks?deleted={webhook_id}")


# ---------------------------------------------------------------- groups

_GROUP_FORM = {"integers": ["hard_limit_cents", "topup_cents"], "texts": ["name", "period"],
               "int_lists": ["alert_thresholds_pct"]}


@routes.get("/groups")
async def groups_page(request: web.Request) -> web.Response:
    return await _groups_page(request, {"period": "none"}, FormErrors())


async def _groups_page(request: web.Request, values: dict[str, Any], errors: FormErrors,
                       status: int = 200) -> web.Response:
    rows = await groups.list_groups(pool_of(request), tenant_of(request))
    return render(request, "groups.html", {"title": "Budget groups", "groups": rows,
                                           "values": values, "errors": errors,
                                           "deleted": request.query.get("deleted")},
                  status=status)


@routes.post("/groups")
async def create_group(request: web.Request) -> web.Response:
    form = await form_of(request)
    body, errors = check(GroupCreate, collect(form, **_GROUP_FORM))
    if body is None:
        return await _groups_page(request, form, errors, status=400)
    try:
        group = await groups.create_group(
            pool_of(request), tenant_of(request), name=body.name,
            hard_limit_cents=body.hard_limit_cents, topup_cents=body.topup_cents,
            period=body.period, alert_thresholds_pct=body.alert_thresholds_pct,
        )
    except SpendGuardError as exc:
        return await _groups_page(request, form, FormErrors(exc.message), status=exc.status)
    raise web.HTTPSeeOther(f"{PREFIX}/groups/{group['group_id']}?saved=1")


@routes.get("/groups/{group_id}")
async def group_page(request: web.Request) -> web.Response:
    return await _group_page(request, _uuid(request, "group_id", "group"), None, FormErrors())


async def _group_page(request: web.Request, group_id: uuid.UUID, values: dict[str, Any] | None,
                      errors: FormErrors, status: int = 200) -> web.Response:
    pool, tenant = pool_of(request), tenant_of(request)
    group = await groups.get_group(pool, tenant, group_id)
    members = await queries.agents_by_id(pool, tenant, group["agent_ids"])
    if values is None:
        values = {
            "name": group["name"], "hard_limit_cents": group["hard_limit_cents"],
            "period": group.get("period") or "none",
            "alert_thresholds_pct": ", ".join(str(t) for t in group.get("alert_thresholds_pct")
                                              or []),
        }
    return render(request, "group.html", {
        "title": group["name"], "group": group, "members": members, "values": values,
        "errors": errors, "saved": request.query.get("saved"),
    }, status=status)


@routes.post("/groups/{group_id}")
async def update_group(request: web.Request) -> web.Response:
    group_id = _uuid(request, "group_id", "group")
    pool, tenant = pool_of(request), tenant_of(request)
    await groups.get_group(pool, tenant, group_id)  # another tenant's group: 404 first
    form = await form_of(request)
    body, errors = check(GroupPatch, collect(form, **_GROUP_FORM))
    if body is None:
        return await _group_page(request, group_id, form, errors, status=400)
    try:
        await groups.update_group(pool, tenant, group_id, body.given(groups.GROUP_FIELDS))
    except SpendGuardError as exc:
        return await _group_page(request, group_id, form, FormErrors(exc.message),
                                 status=exc.status)
    raise web.HTTPSeeOther(f"{PREFIX}/groups/{group_id}?saved=1")


@routes.post("/groups/{group_id}/delete")
async def delete_group(request: web.Request) -> web.Response:
    group_id = _uuid(request, "group_id", "group")
    await groups.delete_group(pool_of(request), tenant_of(request), group_id)
    raise web.HTTPSeeOther(f"{PREFIX}/groups?deleted={group_id}")
