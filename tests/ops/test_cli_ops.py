"""The ``spendguard`` console script as an operator runs it: subprocesses, real database."""

from __future__ import annotations

import asyncio
import json
import uuid

from spendguard_proxy import ledger
from tests.ops.conftest import clean_env, run_cli

HOSTED_KEY_MESSAGE = "Hosted mode requires API key via --api-key or CAP_API_KEY"
KEY_FIELDS = {"key_id", "tenant_id", "prefix", "scopes", "created_at", "revoked_at"}


def _json(res):
    assert res.code == 0, res.err
    return json.loads(res.out)


async def test_tenant_and_key_lifecycle(dsn, hosted):
    env = clean_env(CAP_DATABASE_URL=dsn)
    tenant = _json(await run_cli("tenant", "create", "--name", "acme", "--json", env=env))
    assert set(tenant) == {"tenant_id", "name", "created_at", "monthly_ceiling_cents",
                           "month_spent_microcents"}
    assert tenant["monthly_ceiling_cents"] is None
    assert tenant["name"] == "acme"
    tenant_id = tenant["tenant_id"]

    key = _json(await run_cli("key", "create", "--tenant", tenant_id, "--scopes", "cap:use",
                              "--json", env=env))
    assert KEY_FIELDS | {"api_key"} <= set(key)
    assert key["tenant_id"] == tenant_id
    assert key["scopes"] == ["cap:use"]
    assert key["revoked_at"] is None
    assert key["api_key"].startswith(key["prefix"])
    admin = _json(await run_cli("key", "create", "--tenant", tenant_id, "--json", env=env))
    assert sorted(admin["scopes"]) == ["cap:admin", "cap:use"]

    listed = _json(await run_cli("key", "list", "--tenant", tenant_id, "--json", env=env))
    assert [k["key_id"] for k in listed] == [key["key_id"], admin["key_id"]]
    for item in listed:
        assert KEY_FIELDS <= set(item)
        assert "api_key" not in item, "a key is shown only at creation"

    # The key works against the hosted server until it is revoked.
    headers = {"x-api-key": admin["api_key"]}
    async with hosted.session.get(hosted.url("/v1/agents"), headers=headers) as resp:
        assert resp.status == 200
    revoked = _json(await run_cli("key", "revoke", admin["key_id"], "--json", env=env))
    assert revoked["key_id"] == admin["key_id"] and revoked["revoked_at"] is not None
    assert "api_key" not in revoked
    listed = _json(await run_cli("key", "list", "--tenant", tenant_id, "--json", env=env))
    assert {k["key_id"]: k["revoked_at"] is not None for k in listed} == {
        key["key_id"]: False, admin["key_id"]: True,
    }
    await asyncio.sleep(0.35)  # the hosted fixture caches key lookups for 0.3 s
    async with hosted.session.get(hosted.url("/v1/agents"), headers=headers) as resp:
        assert resp.status == 401


async def test_cli_errors_are_one_line(dsn):
    env = clean_env(CAP_DATABASE_URL=dsn)
    res = await run_cli("key", "create", "--tenant", str(uuid.uuid4()), env=env)
    assert res.code != 0
    assert res.err.startswith("error: Tenant not found") and res.err.count("\n") == 1
    res = await run_cli("key", "revoke", "not-a-uuid", env=env)
    assert res.code != 0 and res.err.count("\n") == 1


async def test_hosted_agent_commands_need_a_key(dsn, hosted):
    env = clean_env(CAP_DATABASE_URL=dsn, CAP_MODE="hosted")
    for extra in ([], ["--base-url", hosted.base_url]):
        res = await run_cli("agent", "create", "--name", "x", *extra, env=env)
        assert res.code != 0
        assert res.out == ""
        assert res.err.strip() == f"error: {HOSTED_KEY_MESSAGE}"


async def test_http_backend_gives_the_same_json_as_the_database(dsn, sidecar, pool):
    env = clean_env(CAP_DATABASE_URL=dsn)
    via_db = _json(await run_cli("agent", "create", "--name", "db", "--json", env=env))
    via_http = _json(await run_cli("agent", "create", "--name", "http", "--json",
                                   "--base-url", sidecar.base_url, env=env))
    assert set(via_db) == set(via_http) == {"agent_id"}
    for data, name in ((via_db, "db"), (via_http, "http")):
        agent = await ledger.get_agent(pool, ledger.LOCAL_TENANT_ID, uuid.UUID(data["agent_id"]))
        assert agent["name"] == name

    budget_db = _json(await run_cli("budget", "set", "--agent", via_db["agent_id"], "--limit",
                                    "70", "--topup", "30", "--json", env=env))
    budget_http = _json(await run_cli("budget", "set", "--agent", via_http["agent_id"],
                                      "--limit", "70", "--topup", "30", "--json",
                                      "--base-url", sidecar.base_url, env=env))
    for budget in (budget_db, budget_http):
        budget.pop("agent_id")
    assert budget_db == budget_http
    assert budget_db["remaining_cents"] == 30
