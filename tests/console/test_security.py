"""The console's gates over plain HTTP: Host allowlist, same-origin posts, CSRF tokens,
sessions (rotation, revocation), tenant isolation, and /v1 never taking the cookie."""

from __future__ import annotations

import uuid

import aiohttp

from spendguard_proxy import ledger
from tests.console.conftest import csrf_of, new_tenant


async def _get(client, console, path, **kw):
    async with client.get(console.url(path), allow_redirects=False, **kw) as resp:
        return resp.status, await resp.text(), resp


async def _post(client, console, path, data, origin=None, **kw):
    headers = {"Origin": origin if origin is not None else console.base_url, **kw.pop("headers", {})}
    async with client.post(console.url(path), data=data, headers=headers,
                           allow_redirects=False, **kw) as resp:
        return resp.status, await resp.text(), resp


async def test_sidecar_session_cookie_is_httponly_strict(client, sidecar_console):
    status, html, resp = await _get(client, sidecar_console, "/ui/")
    assert status == 200
    cookie = resp.cookies["sg_console"]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/"
    assert "Overview" in html
    assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
    _, html, _ = await _get(client, sidecar_console, "/ui/agents")
    assert csrf_of(html)


async def test_cross_site_post_is_refused(client, sidecar_console, pool):
    _, html, _ = await _get(client, sidecar_console, "/ui/agents")
    token = csrf_of(html)
    name = f"cross-{uuid.uuid4().hex[:6]}"
    port = sidecar_console.base_url.rsplit(":", 1)[1]
    # localhost and 127.0.0.1 are different origins: a page on one cannot post to the other.
    for origin in (f"http://localhost:{port}", "http://evil.example", "null"):
        status, body, _ = await _post(client, sidecar_console, "/ui/agents",
                                      {"name": name, "csrf_token": token}, origin=origin)
        assert status == 403 and "Cross-site form post refused" in body, origin
    # No Origin and no Referer: refused too.
    async with client.post(sidecar_console.url("/ui/agents"), allow_redirects=False,
                           data={"name": name, "csrf_token": token}) as resp:
        assert resp.status == 403
    names = [a["name"] for a in await ledger.list_agents(pool, ledger.LOCAL_TENANT_ID)]
    assert name not in names


async def test_post_without_the_sessions_csrf_token_is_refused(client, sidecar_console):
    await _get(client, sidecar_console, "/ui/agents")
    for data in ({"name": "x"}, {"name": "x", "csrf_token": "forged"}):
        status, body, _ = await _post(client, sidecar_console, "/ui/agents", data)
        assert status == 403 and "CSRF token" in body


async def test_unknown_host_name_is_refused(client, sidecar_console):
    # A DNS-rebinding page reaches 127.0.0.1 under its own name: the Host header gives it away.
    status, body, _ = await _get(client, sidecar_console, "/ui/",
                                 headers={"Host": "rebind.example:8787"})
    assert status == 403 and "CAP_CONSOLE_ALLOWED_HOSTS" in body


async def test_bad_budget_value_shows_the_api_message(client, sidecar_console, pool):
    agent = await ledger.create_agent(pool, ledger.LOCAL_TENANT_ID, "bad-input")
    path = f"/ui/agents/{agent['agent_id']}"
    _, html, _ = await _get(client, sidecar_console, path)
    status, body, _ = await _post(client, sidecar_console, path + "/budget", {
        "csrf_token": csrf_of(html), "hard_limit_cents": "0", "concurrency": "exclusive"})
    assert status == 400
    assert "hard_limit_cents: Input should be greater than or equal to 1" in body
    status, body, _ = await _post(client, sidecar_console, path + "/budget", {
        "csrf_token": csrf_of(html), "hard_limit_cents": "ten"})
    assert status == 400 and "hard_limit_cents: Input should be a valid integer" in body


async def test_bad_policy_values_show_the_api_messages(client, sidecar_console, pool):
    agent = await ledger.create_agent(pool, ledger.LOCAL_TENANT_ID, "bad-policy")
    path = f"/ui/agents/{agent['agent_id']}"
    _, html, _ = await _get(client, sidecar_console, path)
    status, body, _ = await _post(client, sidecar_console, path + "/budget", {
        "csrf_token": csrf_of(html), "hard_limit_cents": "10", "alert_thresholds_pct": "50, 200",
        "rpm_limit": "0", "allowed_models": "gpt 4"})
    assert status == 400
    for message in ("alert_thresholds_pct.1: Input should be less than or equal to 100",
                    "rpm_limit: Input should be greater than or equal to 1",
                    "allowed_models.0: String should match pattern"):
        assert message in body
    _, html, _ = await _get(client, sidecar_console, "/ui/groups")
    status, body, _ = await _post(client, sidecar_console, path + "/budget", {
        "csrf_token": csrf_of(html), "hard_limit_cents": "10",
        "group_id": str(uuid.uuid4())})
    assert status == 404 and "Group not found" in body  # the ledger's own message


async def test_hosted_sign_in_rotates_and_revocation_ends_the_session(client, hosted_console,
                                                                      pool):
    tenant = await new_tenant(pool)
    status, _, resp = await _get(client, hosted_console, "/ui/agents")
    assert status == 303 and resp.headers["Location"].startswith("/ui/login?next=")
    _, html, _ = await _get(client, hosted_console, "/ui/login")
    status, body, _ = await _post(client, hosted_console, "/ui/login", {
        "csrf_token": csrf_of(html), "api_key": "sk_cynsta_live_" + "x" * 32})
    assert status == 401 and "Invalid or revoked API key" in body
    status, _, resp = await _post(client, hosted_console, "/ui/login", {
        "csrf_token": csrf_of(body), "api_key": tenant.api_key, "next": "/ui/agents"})
    assert status == 303 and resp.headers["Location"] == "/ui/agents"
    first = resp.cookies["sg_console"].value
    status, html, _ = await _get(client, hosted_console, "/ui/agents")
    assert status == 200

    # /v1 never accepts the console cookie.
    async with client.get(hosted_console.url("/v1/agents")) as resp:
        assert resp.status == 401

    # Signed in already: the sign-in page sends us on.
    status, _, resp = await _get(client, hosted_console, "/ui/login?next=/ui/keys")
    assert status == 303 and resp.headers["Location"] == "/ui/keys"

    # Signing in again starts a new session; the old one stays ended.
    status, _, _ = await _post(client, hosted_console, "/ui/logout", {"csrf_token": csrf_of(html)})
    assert status == 303
    _, html, _ = await _get(client, hosted_console, "/ui/login")
    status, _, resp = await _post(client, hosted_console, "/ui/login", {
        "csrf_token": csrf_of(html), "api_key": tenant.api_key})
    second = resp.cookies["sg_console"].value
    assert status == 303 and second != first
    async with client.get(hosted_console.url("/ui/"), allow_redirects=False,
                          cookies={"sg_console": first}) as old:
        assert old.status == 303  # the signed-out session stays ended

    await ledger_revoke(pool, tenant)
    status, _, resp = await _get(client, hosted_console, "/ui/")
    assert status == 303 and resp.headers["Location"].startswith("/ui/login")


async def ledger_revoke(pool, tenant):
    from spendguard_proxy import tenants

    await tenants.revoke_key(pool, tenant.key_id)


async def test_use_only_key_cannot_sign_in(client, hosted_console, pool):
    tenant = await new_tenant(pool, ["cap:use"])
    _, html, _ = await _get(client, hosted_console, "/ui/login")
    status, body, _ = await _post(client, hosted_console, "/ui/login", {
        "csrf_token": csrf_of(html), "api_key": tenant.api_key})
    assert status == 403 and "lacks the cap:admin scope" in body


async def test_sign_in_form_needs_its_token(client, hosted_console, pool):
    tenant = await new_tenant(pool)
    await _get(client, hosted_console, "/ui/login")
    status, body, _ = await _post(client, hosted_console, "/ui/login", {
        "csrf_token": "guess", "api_key": tenant.api_key})
    assert status == 403 and "CSRF token" in body


async def test_tenants_see_only_their_own(client, hosted_console, pool):
    a, b = await new_tenant(pool), await new_tenant(pool)
    agent_a = await ledger.create_agent(pool, a.tenant_id, "only-a")
    _, html, _ = await _get(client, hosted_console, "/ui/login")
    await _post(client, hosted_console, "/ui/login",
                {"csrf_token": csrf_of(html), "api_key": b.api_key})
    status, html, _ = await _get(client, hosted_console, "/ui/agents")
    assert status == 200 and "only-a" not in html
    status, html, _ = await _get(client, hosted_console, f"/ui/agents/{agent_a['agent_id']}")
    assert status == 404
    _, page, _ = await _get(client, hosted_console, "/ui/agents")
    status, _, _ = await _post(client, hosted_console,
                               f"/ui/agents/{agent_a['agent_id']}/budget",
                               {"csrf_token": csrf_of(page), "hard_limit_cents": "5"})
    assert status == 404
    with_budget = await ledger.get_agent(pool, a.tenant_id, uuid.UUID(agent_a["agent_id"]))
    assert with_budget["name"] == "only-a"


async def test_live_stream_ends_when_the_key_is_revoked(client, hosted_console, pool):
    from spendguard_proxy import tenants

    tenant = await new_tenant(pool)
    agent = await ledger.create_agent(pool, tenant.tenant_id, "streamed")
    agent_id = uuid.UUID(agent["agent_id"])
    _, html, _ = await _get(client, hosted_console, "/ui/login")
    await _post(client, hosted_console, "/ui/login",
                {"csrf_token": csrf_of(html), "api_key": tenant.api_key})
    async with client.get(hosted_console.url(f"/ui/live?agent={agent_id}"),
                          timeout=aiohttp.ClientTimeout(total=20)) as stream:
        assert stream.status == 200
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        assert await stream.content.readuntil(b"\n\n") == b"retry: 3000\n\n"
        await ledger.set_budget(pool, tenant.tenant_id, agent_id, hard_limit_cents=5)
        event = await stream.content.readuntil(b"\n\n")
        assert event.startswith(b"event: ledger\n") and str(agent_id).encode() in event
        await tenants.revoke_key(pool, tenant.key_id)
        await ledger.set_budget(pool, tenant.tenant_id, agent_id, hard_limit_cents=6)
        assert await stream.content.readuntil(b"\n\n") == b"event: signed_out\ndata: {}\n\n"
        assert await stream.content.read() == b""  # and the stream ends


async def test_over_https_the_cookie_is_host_prefixed_and_secure(console_settings, dsn):
    from tests.console.conftest import _serve

    settings = console_settings.model_copy(update={"console_https": True})
    runner, console = await _serve(settings, dsn)
    try:
        async with aiohttp.ClientSession() as client, client.get(
            console.url("/ui/agents"), allow_redirects=False
        ) as resp:
            assert resp.status == 200
            set_cookie = resp.headers["Set-Cookie"]
            html = await resp.text()
        assert set_cookie.startswith("__Host-sg_console=")
        assert "Secure" in set_cookie and "HttpOnly" in set_cookie and "Path=/" in set_cookie
        assert "Domain" not in set_cookie
        # Behind TLS the page's origin is https://…: a plain-http origin is another site.
        async with aiohttp.ClientSession() as client, client.post(
            console.url("/ui/agents"), data={"csrf_token": csrf_of(html)},
            headers={"Origin": console.base_url}, allow_redirects=False,
        ) as resp:
            assert resp.status == 403
    finally:
        await runner.cleanup()
