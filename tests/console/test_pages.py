"""Console pages over plain HTTP: webhooks with their deliveries, groups across tenants."""

from __future__ import annotations

import uuid

from spendguard_proxy import groups
from tests.console.conftest import csrf_of, new_tenant
from tests.console.test_security import _get, _post


async def test_webhooks_page_lists_and_deletes(client, sidecar_console):
    url = f"http://127.0.0.1:9/hook-{uuid.uuid4().hex[:6]}"
    async with client.post(sidecar_console.url("/v1/webhooks"),
                           json={"url": url, "events": ["budget.exhausted"]}) as resp:
        assert resp.status == 200, await resp.text()
        webhook_id = (await resp.json())["webhook_id"]
    status, html, _ = await _get(client, sidecar_console, "/ui/webhooks")
    assert status == 200 and url in html and "budget.exhausted" in html
    assert "whsec_" not in html  # the secret is shown once, by the API, never here
    status, _, resp = await _post(client, sidecar_console, f"/ui/webhooks/{webhook_id}/delete",
                                  {"csrf_token": csrf_of(html)})
    assert status == 303
    async with client.get(sidecar_console.url("/v1/webhooks")) as resp:
        listed = [w["webhook_id"] for w in (await resp.json())["webhooks"]]
    assert webhook_id not in listed


async def test_another_tenants_group_is_not_found(client, hosted_console, pool):
    a, b = await new_tenant(pool), await new_tenant(pool)
    group = await groups.create_group(pool, a.tenant_id, name="a-team", hard_limit_cents=100)
    _, html, _ = await _get(client, hosted_console, "/ui/login")
    await _post(client, hosted_console, "/ui/login",
                {"csrf_token": csrf_of(html), "api_key": b.api_key})
    status, html, _ = await _get(client, hosted_console, "/ui/groups")
    assert status == 200 and "a-team" not in html
    status, _, _ = await _get(client, hosted_console, f"/ui/groups/{group['group_id']}")
    assert status == 404
    status, _, _ = await _post(client, hosted_console, f"/ui/groups/{group['group_id']}/delete",
                               {"csrf_token": csrf_of(html)})
    assert status == 404
    assert (await groups.get_group(pool, a.tenant_id, uuid.UUID(group["group_id"])))["name"]


async def test_keys_page_revokes_but_never_mints(client, hosted_console, pool):
    from spendguard_proxy import tenants

    tenant = await new_tenant(pool)
    other = await tenants.create_key(pool, tenant.tenant_id, ["cap:use"])
    _, html, _ = await _get(client, hosted_console, "/ui/login")
    await _post(client, hosted_console, "/ui/login",
                {"csrf_token": csrf_of(html), "api_key": tenant.api_key})
    status, html, _ = await _get(client, hosted_console, "/ui/keys")
    assert status == 200 and other["prefix"] in html and "(this session)" in html
    assert other["api_key"] not in html
    status, _, _ = await _post(client, hosted_console, "/ui/keys",
                               {"csrf_token": csrf_of(html), "scopes": "cap:admin"})
    assert status in (404, 405)  # no route makes keys
    status, _, resp = await _post(client, hosted_console, f"/ui/keys/{other['key_id']}/revoke",
                                  {"csrf_token": csrf_of(html)})
    assert status == 303
    assert await tenants.resolve_key(pool, other["api_key"]) is None
    # Revoking the session's own key signs it out.
    status, _, resp = await _post(client, hosted_console, f"/ui/keys/{tenant.key_id}/revoke",
                                  {"csrf_token": csrf_of(html)})
    assert status == 303 and resp.headers["Location"] == "/ui/login"
    status, _, resp = await _get(client, hosted_console, "/ui/keys")
    assert status == 303 and resp.headers["Location"].startswith("/ui/login")
