"""Hosted mode at the admin level: tenants never see each other, keys are checked strictly."""

from __future__ import annotations

import asyncio
import secrets
import string
import uuid

from spendguard_proxy import tenants
from spendguard_proxy.server.keys import SETTINGS
from tests.ops.conftest import new_tenant

ALNUM = string.ascii_letters + string.digits


def _admin_routes(agent_id: str) -> list[tuple[str, str, dict | None]]:
    base = f"/v1/agents/{agent_id}"
    return [
        ("GET", base, None),
        ("PATCH", base, {"name": "stolen"}),
        ("DELETE", base, None),
        ("GET", base + "/budget", None),
        ("POST", base + "/budget", {"hard_limit_cents": 1, "topup_cents": 0}),
        ("POST", base + "/runs", {}),
        ("GET", base + "/usage", None),
    ]


async def _call(server, method, path, key, body=None):
    headers = {"x-api-key": key} if key is not None else {}
    async with server.session.request(method, server.url(path), json=body,
                                      headers=headers) as resp:
        return resp.status, await resp.json()


async def _own_agent(server, key: str) -> str:
    status, body = await _call(server, "POST", "/v1/agents", key, {"name": "mine"})
    assert status == 200
    agent_id = body["agent_id"]
    status, _ = await _call(server, "POST", f"/v1/agents/{agent_id}/budget", key,
                            {"hard_limit_cents": 1000})
    assert status == 200
    return agent_id


async def test_other_tenants_agent_is_indistinguishable_from_a_random_id(hosted, pool):
    a, b = await new_tenant(pool), await new_tenant(pool)
    agent_a = await _own_agent(hosted, a.api_key)
    random_id = str(uuid.uuid4())
    for (method, path, body), (_, rpath, _) in zip(
        _admin_routes(agent_a), _admin_routes(random_id), strict=True
    ):
        status, answer = await _call(hosted, method, path, b.api_key, body)
        rstatus, ranswer = await _call(hosted, method, rpath, b.api_key, body)
        assert status == rstatus == 404, (method, path, answer)
        # The only difference allowed is the id the caller itself sent.
        assert answer == _swap(ranswer, random_id, agent_a), (method, path)
        assert answer["error"]["type"] == "not_found"

    # Tenant B's attempts changed nothing for tenant A.
    status, agent = await _call(hosted, "GET", f"/v1/agents/{agent_a}", a.api_key)
    assert status == 200 and agent["name"] == "mine"
    status, budget = await _call(hosted, "GET", f"/v1/agents/{agent_a}/budget", a.api_key)
    assert status == 200 and budget["hard_limit_cents"] == budget["remaining_cents"] == 1000
    status, listing = await _call(hosted, "GET", "/v1/agents", b.api_key)
    assert status == 200 and listing == {"agents": []}


def _swap(obj, old: str, new: str):
    if isinstance(obj, dict):
        return {k: _swap(v, old, new) for k, v in obj.items()}
    if isinstance(obj, str):
        return obj.replace(old, new)
    return obj


async def test_missing_malformed_unknown_and_revoked_keys_are_401(hosted, pool):
    owner = await new_tenant(pool)
    agent = await _own_agent(hosted, owner.api_key)
    revoked = await new_tenant(pool)
    status, _ = await _call(hosted, "GET", "/v1/agents", revoked.api_key)
    assert status == 200
    await tenants.revoke_key(pool, uuid.UUID(revoked.key_id))
    # Each replica caches key lookups briefly; after that TTL the revocation is in force.
    await asyncio.sleep(hosted.app[SETTINGS].key_cache_ttl_s + 0.1)

    bad_keys = {
        "missing": None,
        "empty": "",
        "malformed": "not-a-key",
        "wrong prefix": "sk_other_live_" + "a" * 32,
        "unknown": "sk_cynsta_live_" + "".join(secrets.choice(ALNUM) for _ in range(32)),
        "revoked": revoked.api_key,
    }
    routes = [("GET", "/v1/agents", None), ("POST", "/v1/agents", {})] + _admin_routes(agent)
    for label, key in bad_keys.items():
        for method, path, body in routes:
            status, answer = await _call(hosted, method, path, key, body)
            assert status == 401, (label, method, path, answer)
            assert answer["error"]["type"] == "authentication_error"
            assert answer["detail"] == answer["error"]["message"]
    # Bearer is accepted too, and a bad bearer is just as much a 401.
    async with hosted.session.get(hosted.url("/v1/agents"),
                                  headers={"Authorization": "Bearer nope"}) as resp:
        assert resp.status == 401
    async with hosted.session.get(hosted.url("/v1/agents"),
                                  headers={"Authorization": f"Bearer {owner.api_key}"}) as resp:
        assert resp.status == 200


async def test_use_only_key_cannot_administer(hosted, pool):
    admin = await new_tenant(pool)
    agent = await _own_agent(hosted, admin.api_key)
    key = await tenants.create_key(pool, uuid.UUID(admin.tenant_id), ["cap:use"])
    routes = [("GET", "/v1/agents", None), ("POST", "/v1/agents", {})] + _admin_routes(agent)
    for method, path, body in routes:
        status, answer = await _call(hosted, method, path, key["api_key"], body)
        assert status == 403, (method, path, answer)
        assert answer["error"]["type"] == "permission_denied"
        assert "cap:admin" in answer["detail"]
    status, agent_obj = await _call(hosted, "GET", f"/v1/agents/{agent}", admin.api_key)
    assert status == 200 and agent_obj["name"] == "mine"


async def test_burst_of_invalid_keys_is_all_401_and_server_stays_healthy(hosted):
    def key(i: int) -> str:
        if i % 2:  # well-formed: reaches the database lookup
            return "sk_cynsta_live_" + "".join(secrets.choice(ALNUM) for _ in range(32))
        return f"garbage-{i}"

    async def one(i: int) -> int:
        async with hosted.session.get(hosted.url("/v1/agents"),
                                      headers={"x-api-key": key(i)}) as resp:
            await resp.read()
            return resp.status

    statuses = await asyncio.gather(*(one(i) for i in range(200)))
    assert statuses == [401] * 200
    async with hosted.session.get(hosted.url("/health")) as resp:
        assert resp.status == 200 and await resp.json() == {"status": "ok"}
    async with hosted.session.get(hosted.url("/ready")) as resp:
        assert resp.status == 200
