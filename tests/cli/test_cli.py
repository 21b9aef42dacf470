"""The CLI through a subprocess, on the same database as a running server."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from rich.console import Console

from spendguard_proxy import tenants
from spendguard_proxy.cli import render
from spendguard_proxy.db import pool as db
from spendguard_proxy.db.url import redact_dsn

ROOT = Path(__file__).resolve().parents[2]
REFERENCE_CLI = ROOT / ".venv" / "reference-cli"


def _cli(dsn, *args, env_extra=None, module="spendguard_proxy.cli.main", pythonpath=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAP_")}
    env.update({"CAP_DATABASE_URL": dsn, **(env_extra or {})})
    if pythonpath:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True,
                          text=True, env=env, timeout=60, cwd=ROOT)


def _json(result):
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


async def test_cli_and_http_agree_on_the_budget(dsn, http, proxy_url):
    created = _cli(dsn, "agent", "create", "--name", "a1")
    assert created.returncode == 0 and created.stdout.startswith("agent_id=")
    agent_id = created.stdout.strip().split("=", 1)[1]
    budget = _json(_cli(dsn, "budget", "set", "--agent", agent_id, "--limit", "5000",
                        "--topup", "5000", "--json"))
    async with http.get(f"{proxy_url}/v1/agents/{agent_id}/budget") as r:
        over_http = await r.json()
    assert budget["remaining_cents"] == over_http["remaining_cents"] == 5000
    assert _json(_cli(dsn, "budget", "get", "--agent", agent_id, "--json")) == over_http
    usage = _json(_cli(dsn, "usage", "--agent", agent_id, "--json"))
    assert [e["kind"] for e in usage["entries"]] == ["topup"]
    renamed = _json(_cli(dsn, "agent", "rename", "--agent", agent_id, "--name", "b", "--json"))
    assert renamed["name"] == "b"
    assert agent_id in _cli(dsn, "agent", "list").stdout
    assert _json(_cli(dsn, "agent", "delete", "--agent", agent_id, "--json"))["deleted"]


@pytest.mark.parametrize(("args", "message"), [
    (("agent", "get", "--agent", "not-a-uuid"), "is not a UUID"),
    (("agent", "get", "--agent", "00000000-0000-0000-0000-00000000abcd"), "Agent not found"),
    (("budget", "set", "--agent", "00000000-0000-0000-0000-00000000abcd", "--limit", "0"),
     "hard_limit_cents"),
])
def test_cli_errors_are_one_line_on_stderr(dsn, args, message):
    result = _cli(dsn, *args)
    assert result.returncode == 1
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_unreachable_database_is_one_line(dsn):
    result = _cli("postgresql://postgres@127.0.0.1:1/none", "agent", "list")
    assert result.returncode == 1
    assert "Cannot reach the database" in result.stderr
    assert "Traceback" not in result.stderr


def test_db_current_and_help(dsn):
    assert _cli(dsn, "db", "current").stdout.strip() == f"revision={db.head_revision()}"
    help_text = _cli(dsn, "--help").stdout
    for command in ("agent", "budget", "usage", "serve", "db", "tenant", "key", "pricing",
                    "demo"):
        assert command in help_text


def test_the_schema_head_constant_is_alembics_head():
    """The CLI checks the schema against SCHEMA_HEAD without loading Alembic: a new
    migration must bump it (spendguard_proxy/db/pool.py)."""
    assert db.SCHEMA_HEAD == db.head_revision()


async def _demo_agents(pool) -> int:
    return await pool.fetchval("SELECT count(*) FROM agents WHERE name = 'demo-agent'")


async def test_demo_runs_the_checklist_in_a_temporary_database(dsn, pool):
    before = await _demo_agents(pool)
    result = await asyncio.to_thread(_cli, dsn, "demo", env_extra={"COLUMNS": "200"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("✔") == 5 and "✘" not in result.stdout
    assert "demo database: a temporary embedded PostgreSQL, deleted at the end" in result.stdout
    # The 402 shows what is left exactly, never rounded down to "0 cents".
    assert re.search(r"last status 402: Insufficient budget: .* [0-9.]+ ¢ available",
                     result.stdout)
    assert await _demo_agents(pool) == before, "the demo wrote into the user's database"


async def test_demo_use_my_database_writes_there(dsn, pool):
    before = await _demo_agents(pool)
    result = await asyncio.to_thread(_cli, dsn, "demo", "--use-my-database",
                                     env_extra={"COLUMNS": "200"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("✔") == 5
    assert await _demo_agents(pool) == before + 1


async def test_an_empty_answer_says_which_database(dsn, pool):
    tenant = await tenants.create_tenant(pool, "empty")
    key = await tenants.create_key(pool, uuid.UUID(tenant["tenant_id"]), ["cap:admin"])
    env = {"CAP_MODE": "hosted", "CAP_API_KEY": key["api_key"]}
    result = await asyncio.to_thread(_cli, dsn, "agent", "list", env_extra=env)
    assert result.returncode == 0, result.stderr
    where = redact_dsn(dsn)
    assert result.stdout.strip() == f"(no agents in {where})"
    assert "postgres:@" not in result.stdout
    missing = await asyncio.to_thread(_cli, dsn, "agent", "get", "--agent",
                                      "00000000-0000-0000-0000-00000000abcd", env_extra=env)
    assert missing.stderr.strip() == ("error: Agent not found: "
                                      f"00000000-0000-0000-0000-00000000abcd (in {where})")


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://app:s3cret@db.example:5432/ledger?sslmode=require",
     "postgresql://db.example:5432/ledger"),
    ("postgres://app:s3cret@db.example/ledger", "postgresql://db.example/ledger"),
    ("postgresql+asyncpg://app:s3cret@[::1]:6432/ledger", "postgresql://[::1]:6432/ledger"),
    ("postgresql://postgres:@/sg?host=/tmp/x/pg", "postgresql:///sg?host=/tmp/x/pg"),
])
def test_database_names_never_show_credentials(url, shown):
    assert redact_dsn(url) == shown


@pytest.mark.skipif(not REFERENCE_CLI.exists(),
                    reason="the reference CLI is installed by `make install` (see Makefile)")
async def test_reference_cli_works_against_us_unchanged(dsn, proxy_url):
    def ref(*args):  # in a thread: the server under test runs on this event loop
        return asyncio.to_thread(_cli, dsn, *args, module="cynsta_spendguard_cli.main",
                                 pythonpath=REFERENCE_CLI, env_extra={"CAP_BASE_URL": proxy_url})

    agent_id = _json(await ref("agent", "create", "--name", "ref", "--json"))["agent_id"]
    out = await ref("budget", "set", "--agent", agent_id, "--limit", "700", "--topup", "700")
    assert out.returncode == 0 and "remaining_cents=700" in out.stdout
    got = _json(await ref("budget", "get", "--agent", agent_id, "--json"))
    assert got["remaining_cents"] == 700 and got["locked_run_id"] is None
    assert f"agent_id={agent_id}" in (await ref("agent", "list")).stdout
    missing = await ref("agent", "get", "--agent", "00000000-0000-0000-0000-000000000001")
    assert missing.returncode == 1 and "HTTP 404: Agent not found" in missing.stderr


def test_usage_table_renders_exact_cents():
    console = Console(file=io.StringIO(), width=120, color_system=None)
    render.usage(console, {"agent_id": "a", "next_before": 7, "entries": [{
        "id": 8, "kind": "charge", "delta_microcents": -18105,
        "balance_after_microcents": 2_000_000, "model": "gpt-4o", "input_tokens": 7,
        "output_tokens": 300, "overrun_microcents": 0, "termination_reason": "complete",
        "created_at": "2026-11-23T21:01:15.1Z"}]})
    text = console.file.getvalue()
    assert "-0.018105" in text and "│         2 │" in text and "21:01:15" in text
    assert "--before 7" in text
    assert render.cents(-1) == "-0.000001" and render.cents(5_000_000) == "5"


def test_empty_renderings_name_the_database():
    console = Console(file=io.StringIO(), width=40, color_system=None)
    where = "embedded PostgreSQL at /home/someone/.local/share/spendguard"
    render.rows(console, "Agents", [], ["agent_id"], where=where)
    render.usage(console, {"agent_id": "a", "entries": [], "next_before": None}, where=where)
    assert console.file.getvalue().splitlines() == [
        f"(no agents in {where})", f"(no ledger entries in {where})"]
