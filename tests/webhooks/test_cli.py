"""spendguard webhook … through a subprocess: on the database, and over HTTP."""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from standardwebhooks import Webhook

from spendguard_proxy import tenants
from spendguard_proxy.cli.webhook_cmds import deliveries_table
from spendguard_proxy.ledger import LOCAL_TENANT_ID
from spendguard_proxy.server.app import build_app
from spendguard_proxy.server.runner import start_site
from tests.webhooks.conftest import SHORT, emit, new_tenant_id

ROOT = Path(__file__).resolve().parents[2]
SUBPROCESS_TIMEOUT_S = 60


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self):
        assert self.code == 0, self.err
        return json.loads(self.out)


async def _cli(*args: str, env: dict[str, str]) -> Result:
    """The CLI as a child process, without blocking the event loop the servers run in."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "spendguard_proxy.cli.main", *args, env=env, cwd=ROOT,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), SUBPROCESS_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return Result(proc.returncode, out.decode(), err.decode())


def _env(tmp_path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAP_")}
    env.update({"CAP_DATA_DIR": str(tmp_path), "COLUMNS": "200", **extra})
    return env


async def test_create_list_deliveries_delete_on_the_database(wh_dsn, wh_pool, tmp_path):
    key = SHORT["webhook_secret_key"].get_secret_value()
    env = _env(tmp_path, CAP_DATABASE_URL=wh_dsn, CAP_WEBHOOK_SECRET_KEY=key)
    created = (await _cli("webhook", "create", "--url", "http://127.0.0.1:9/cli",
                          "--event", "call.overrun", "--event", "call.cutoff", "--json",
                          env=env)).json()
    assert created["events"] == ["call.cutoff", "call.overrun"]
    Webhook(created["secret"])
    webhook_id = created["webhook_id"]
    try:
        listing = (await _cli("webhook", "list", "--json", env=env)).json()
        assert webhook_id in [w["webhook_id"] for w in listing["webhooks"]]
        assert created["secret"] not in json.dumps(listing)
        table = await _cli("webhook", "list", env=env)
        assert table.code == 0 and webhook_id in table.out and "secret" not in table.out

        event = await emit(wh_pool, LOCAL_TENANT_ID, "call.cutoff", {"agent_id": "a"})
        page = (await _cli("webhook", "deliveries", "--webhook", webhook_id, "--json",
                           env=env)).json()
        [d] = page["deliveries"]
        assert d["event_id"] == event and d["state"] == "pending" and d["attempts"] == []
        rendered = await _cli("webhook", "deliveries", "--webhook", webhook_id, env=env)
        assert event in rendered.out and "pending" in rendered.out
    finally:
        deleted = (await _cli("webhook", "delete", webhook_id, "--json", env=env)).json()
    assert deleted == {"webhook_id": webhook_id, "deleted": True}
    gone = await _cli("webhook", "deliveries", "--webhook", webhook_id, env=env)
    assert gone.code == 1 and gone.err.startswith(f"error: Webhook not found: {webhook_id}")
    assert gone.err.count("\n") == 1


async def test_cli_errors_are_one_line(wh_dsn, wh_pool, tmp_path):
    key = SHORT["webhook_secret_key"].get_secret_value()
    env = _env(tmp_path, CAP_DATABASE_URL=wh_dsn, CAP_WEBHOOK_SECRET_KEY=key)
    for args, message in (
        (("create", "--url", "ftp://x"), "must start with https://"),
        (("delete", "nope"), "Invalid webhook id: 'nope' is not a UUID"),
        (("deliveries", "--webhook", str(uuid.uuid4()), "--limit", "0"),
         "--limit must be between 1 and 200"),
    ):
        result = await _cli("webhook", *args, env=env)
        assert result.code == 1 and message in result.err and result.err.count("\n") == 1
    tenant = await new_tenant_id(wh_pool)
    api_key = (await tenants.create_key(wh_pool, tenant, list(tenants.SCOPES)))["api_key"]
    hosted = _env(tmp_path, CAP_DATABASE_URL=wh_dsn, CAP_MODE="hosted", CAP_API_KEY=api_key)
    result = await _cli("webhook", "create", "--url", "https://example.com/", env=hosted)
    assert result.code == 1 and "CAP_WEBHOOK_SECRET_KEY" in result.err


async def test_over_http_with_base_url(wh_settings, wh_dsn, tmp_path):
    runner, port = await start_site(build_app(wh_settings, wh_dsn), wh_settings)
    try:
        env = _env(tmp_path, CAP_BASE_URL=f"http://127.0.0.1:{port}")
        created = (await _cli("webhook", "create", "--url", "http://127.0.0.1:9/http",
                              "--json", env=env)).json()
        assert created["events"] is None and created["secret"].startswith("whsec_")
        listing = (await _cli("webhook", "list", "--json", env=env)).json()
        assert created["webhook_id"] in json.dumps(listing)
        second = (await _cli("webhook", "create", "--url", "https://example.com/h",
                             "--event", "budget.threshold", "--json", env=env)).json()
        assert second["events"] == ["budget.threshold"]
        for hook in (created, second):
            deleted = await _cli("webhook", "delete", hook["webhook_id"], env=env)
            assert deleted.out.strip() == f"deleted webhook_id={hook['webhook_id']}"
        page = await _cli("webhook", "deliveries", "--webhook", created["webhook_id"], env=env)
        assert page.code == 1 and "HTTP 404: Webhook not found" in page.err
    finally:
        await runner.cleanup()


async def test_keygen_prints_a_key_the_server_accepts(tmp_path):
    from spendguard_proxy.webhooks.secret_box import SecretBox

    result = await _cli("webhook", "keygen", "--json", env=_env(tmp_path))
    key = result.json()["key"]
    assert SecretBox(key).open(SecretBox(key).seal("whsec_a")) == "whsec_a"


def test_deliveries_table_renders_on_a_fixed_width_console():
    console = Console(file=io.StringIO(), width=160, color_system=None)
    result = {"webhook_id": "w1", "next_before": 7, "deliveries": [
        {"delivery_id": 8, "event_type": "call.overrun", "event_id": "msg_" + "a" * 32,
         "state": "failed", "attempts": [{}, {}], "last_status": 500,
         "last_error": "HTTP 500", "next_attempt_at": None, "delivered_at": None},
        {"delivery_id": 7, "event_type": "budget.threshold", "event_id": "msg_" + "b" * 32,
         "state": "delivered", "attempts": [{}], "last_status": 200, "last_error": None,
         "next_attempt_at": None, "delivered_at": "2026-11-29T10:11:12.5Z"},
    ]}
    deliveries_table(console, result)
    text = console.file.getvalue()
    assert "msg_" + "a" * 32 in text and "HTTP 500" in text
    assert "2026-11-29 10:11:12" in text and "older deliveries: --before 7" in text
    empty = Console(file=io.StringIO(), width=80, color_system=None)
    deliveries_table(empty, {"webhook_id": "w", "deliveries": []}, where="db")
    assert empty.file.getvalue().strip() == "(no deliveries in db)"
