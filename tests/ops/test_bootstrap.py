"""scripts/bootstrap_strict_budget.py run as a subprocess against a real server."""

from __future__ import annotations

import json
import socket
import uuid

import pytest
from aiohttp import web

from spendguard_proxy import ledger
from spendguard_proxy.server.runner import start_site
from tests.ledger.helpers import BUDGET_FIELDS
from tests.ops.conftest import clean_env, new_tenant, run_bootstrap


async def test_json_output_is_one_sorted_object(sidecar, pool):
    res = await run_bootstrap(
        "--base-url", sidecar.base_url, "--name", "boot", "--limit", "500", "--topup", "120",
        "--concurrency", "shared", "--create-run", "--json",
    )
    assert res.code == 0, res.err
    assert res.err == ""
    data = json.loads(res.out)
    # Deterministic: exactly what json.dumps(sort_keys=True) gives, keys in sorted order.
    assert res.out == json.dumps(data, indent=2, sort_keys=True) + "\n"
    assert list(data) == sorted(data)
    assert set(data) == BUDGET_FIELDS | {"run_id"}
    assert data["hard_limit_cents"] == 500
    assert data["remaining_cents"] == 120
    assert data["concurrency"] == "shared"
    uuid.UUID(data["run_id"])

    agent_id = uuid.UUID(data["agent_id"])
    agent = await ledger.get_agent(pool, ledger.LOCAL_TENANT_ID, agent_id)
    assert agent["name"] == "boot"
    budget = await ledger.get_budget(pool, ledger.LOCAL_TENANT_ID, agent_id)
    assert {k: budget[k] for k in ("hard_limit_cents", "remaining_cents")} == {
        "hard_limit_cents": 500, "remaining_cents": 120,
    }
    run = await pool.fetchval("SELECT agent_id FROM runs WHERE id = $1", uuid.UUID(data["run_id"]))
    assert run == agent_id


async def test_plain_output_and_defaults(sidecar):
    # CAP_BASE_URL is honoured; the top-up defaults to the limit; no run unless asked.
    res = await run_bootstrap("--limit", "250", env=clean_env(CAP_BASE_URL=sidecar.base_url))
    assert res.code == 0, res.err
    lines = res.out.splitlines()
    fields = dict(line.split("=", 1) for line in lines if not line.startswith("export "))
    assert set(fields) == {"agent_id", "hard_limit_cents", "remaining_cents", "available_cents",
                           "concurrency"}
    assert fields["hard_limit_cents"] == fields["remaining_cents"] == "250"
    assert fields["concurrency"] == "exclusive"
    assert lines[-1] == f"export SPENDGUARD_AGENT_ID={fields['agent_id']}"
    assert not any("run_id" in line for line in lines)
    async with sidecar.session.get(sidecar.url(f"/v1/agents/{fields['agent_id']}")) as resp:
        assert (await resp.json())["name"] == "strict-budget-agent"


async def test_plain_output_with_run(sidecar):
    res = await run_bootstrap("--base-url", sidecar.base_url + "/", "--limit", "5",
                              "--create-run", "--skip-health-check")
    assert res.code == 0, res.err
    lines = res.out.splitlines()
    run_id = next(line.split("=", 1)[1] for line in lines if line.startswith("run_id="))
    uuid.UUID(run_id)
    assert lines[-2:] == [
        f"export SPENDGUARD_AGENT_ID={lines[0].split('=', 1)[1]}",
        f"export SPENDGUARD_RUN_ID={run_id}",
    ]


async def test_hosted_with_key_creates_the_agent_in_that_tenant(hosted, pool):
    tenant = await new_tenant(pool)
    other = await new_tenant(pool)
    res = await run_bootstrap("--limit", "300", "--json",
                              env=clean_env(CAP_BASE_URL=hosted.base_url,
                                            CAP_API_KEY=tenant.api_key))
    assert res.code == 0, res.err
    data = json.loads(res.out)
    assert data["remaining_cents"] == 300
    path = hosted.url(f"/v1/agents/{data['agent_id']}/budget")
    async with hosted.session.get(path, headers={"x-api-key": tenant.api_key}) as resp:
        assert resp.status == 200
        assert (await resp.json())["remaining_cents"] == 300
    async with hosted.session.get(path, headers={"x-api-key": other.api_key}) as resp:
        assert resp.status == 404


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_unreachable_server_is_one_line_exit_1():
    url = f"http://127.0.0.1:{_free_port()}"
    res = await run_bootstrap("--base-url", url, "--limit", "100")
    assert res.code == 1
    assert res.out == ""
    assert res.err.count("\n") == 1
    assert res.err.startswith(f"error: Cannot reach SpendGuard at {url}")


async def test_bad_or_missing_key_shows_the_server_detail(hosted):
    bad = "sk_cynsta_live_" + "A" * 32
    res = await run_bootstrap("--base-url", hosted.base_url, "--api-key", bad, "--limit", "100")
    assert res.code == 1
    assert res.out == ""
    assert res.err == "error: POST /v1/agents: HTTP 401: Invalid or revoked API key\n"

    res = await run_bootstrap("--base-url", hosted.base_url, "--limit", "100")
    assert res.code == 1
    assert res.err.count("\n") == 1
    assert res.err.startswith("error: POST /v1/agents: HTTP 401: Missing API key")


async def test_plain_output_on_cap_port(sidecar):
    # Without CAP_BASE_URL the script finds `spendguard serve` where CAP_PORT puts it.
    port = sidecar.base_url.rsplit(":", 1)[1]
    res = await run_bootstrap("--limit", "3", env=clean_env(CAP_PORT=port))
    assert res.code == 0, res.err
    assert "remaining_cents=3" in res.out.splitlines()


async def _agent_count(pool) -> int:
    return await pool.fetchval("SELECT count(*) FROM agents")


@pytest.mark.parametrize(("args", "env", "message"), [
    (["--limit", "0"], {}, "argument --limit: 0 is out of range: from 1 to"),
    (["--limit", "1000000000001"], {}, "argument --limit: 1000000000001 is out of range"),
    (["--limit", "5", "--topup", "-1"], {}, "argument --topup: -1 is out of range"),
    (["--limit", "five"], {}, "argument --limit: 'five' is not a whole number of cents"),
    (["--limit", "5", "--name", "   "], {}, "argument --name: must be 1 to 200 characters"),
    (["--limit", "5", "--concurrency", "solo"], {}, "argument --concurrency: invalid choice"),
    (["--limit", "5", "--base-url", "127.0.0.1:8787"], {}, "is not an http(s) URL"),
    (["--limit", "5"], {"CAP_PORT": "http"}, "CAP_PORT: 'http' is not a port number"),
    (["--limit", "5"], {"CAP_BASE_URL": "localhost"}, "CAP_BASE_URL: 'localhost' is not"),
])
async def test_bad_arguments_create_nothing(sidecar, pool, args, env, message):
    before = await _agent_count(pool)
    env = env or {"CAP_BASE_URL": sidecar.base_url}
    res = await run_bootstrap(*args, env=clean_env(**env))
    assert res.code == 2
    assert res.out == ""
    assert res.err.startswith("error: ") and res.err.count("\n") == 1
    assert message in res.err
    assert await _agent_count(pool) == before


async def test_a_failed_budget_step_deletes_the_agent_again():
    """A server that refuses the budget (here a stub): the agent is deleted, exit 1."""
    calls: list[str] = []

    async def record(request: web.Request) -> web.Response:
        calls.append(f"{request.method} {request.path}")
        if request.path == "/health":
            return web.json_response({"status": "ok"})
        if request.path == "/v1/agents":
            return web.json_response({"agent_id": "a1"})
        if request.path.endswith("/budget"):
            return web.json_response({"detail": "database unavailable"}, status=503)
        return web.json_response({"agent_id": "a1", "deleted": True})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        res = await run_bootstrap("--base-url", url, "--limit", "5")
    finally:
        await runner.cleanup()
    assert res.code == 1
    assert res.err == ("error: POST /v1/agents/a1/budget: HTTP 503: database unavailable "
                       "(the agent was deleted again)\n")
    assert calls == ["GET /health", "POST /v1/agents", "POST /v1/agents/a1/budget",
                     "DELETE /v1/agents/a1"]


async def test_a_redirect_is_not_followed_with_the_key(settings):
    seen: list[str] = []

    async def elsewhere(request: web.Request) -> web.Response:
        seen.append(request.headers.get("x-api-key", ""))
        return web.json_response({"agent_id": "00000000-0000-0000-0000-000000000001"})

    async def redirecting(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"{other_url}{request.path}")

    other_app, redirect_app = web.Application(), web.Application()
    other_app.router.add_route("*", "/{tail:.*}", elsewhere)
    redirect_app.router.add_route("*", "/{tail:.*}", redirecting)
    other, other_port = await start_site(other_app, settings)
    other_url = f"http://127.0.0.1:{other_port}"
    here, port = await start_site(redirect_app, settings)
    try:
        env = clean_env()
        env.update({"CAP_BASE_URL": f"http://127.0.0.1:{port}",
                    "CAP_API_KEY": "sk_cynsta_live_" + "r" * 32})
        result = await run_bootstrap("--name", "probe", "--limit", "5", env=env)
    finally:
        await here.cleanup()
        await other.cleanup()
    assert result.code == 1 and "redirect" in result.err and "not followed" in result.err
    assert seen == []  # the other origin never saw the key
