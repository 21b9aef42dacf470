"""`spendguard serve --workers N`: real process sets on one port, real PostgreSQL, the fake
provider. The set runs in its own session (process group) so teardown can kill it whole."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from spendguard_proxy.db.embedded import embedded_status, start_embedded, stop_embedded
from spendguard_proxy.server.health import WORKER_HEADER
from spendguard_proxy.server.keys import SETTINGS
from spendguard_proxy.server.pool_sizing import (
    HEADROOM_CONNECTIONS,
    Capacity,
    PoolsDoNotFit,
    pool_max_per_worker,
)
from tests.faults.conftest import agent_headers, chat_body, server_env, wait_for
from tests.invariants import assert_ledger_invariants
from tests.ledger.helpers import new_agent
from tests.ops import test_hosted_isolation as isolation
from tests.ops.conftest import run_cli

SPENDGUARD = str(Path(sys.executable).parent / "spendguard")
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
READY = re.compile(r"worker (\d+) ready: pid (\d+), id (\S+)")
LISTENING = re.compile(r"SpendGuard \(\w+\) on (http://127\.0\.0\.1:\d+)")
POOL_SIZE = re.compile(r"(\d+) workers x up to (\d+) connections")


@dataclass
class WorkerSet:
    proc: asyncio.subprocess.Process
    log_path: Path
    url: str = ""

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def pids(self) -> dict[int, int]:
        """slot -> pid of its newest worker, from the supervisor's "ready" lines."""
        return {int(slot): int(pid) for slot, pid, _ in READY.findall(self.log())}

    def worker_ids(self) -> dict[str, int]:
        """worker id -> pid, every generation."""
        return {wid: int(pid) for _, pid, wid in READY.findall(self.log())}

    async def wait_exit(self, timeout_s: float) -> int:
        return await asyncio.wait_for(self.proc.wait(), timeout_s)

    def kill_all(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)


class _Server:
    """The shape of tests/ops/conftest.py's ``Server`` that the isolation checks use."""

    def __init__(self, workers: WorkerSet, session: aiohttp.ClientSession, settings) -> None:
        self.session = session
        self.base_url = workers.url
        self.app = {SETTINGS: settings}

    def url(self, path: str) -> str:
        return self.base_url + path


@pytest.fixture
async def worker_sets(tmp_path):
    """``await worker_sets(env, workers=2)`` starts a set and waits until it listens; every set
    is stopped (SIGTERM, then SIGKILL of its whole process group) at teardown."""
    started: list[WorkerSet] = []

    async def start(env: dict[str, str], workers: int = 2) -> WorkerSet:
        log_path = tmp_path / f"serve-{len(started)}.log"
        with _open_log(log_path) as log:
            proc = await asyncio.create_subprocess_exec(
                SPENDGUARD, "serve", "--workers", str(workers), "--host", "127.0.0.1",
                "--port", "0", env=env, stdin=asyncio.subprocess.DEVNULL, stdout=log,
                stderr=asyncio.subprocess.STDOUT, cwd=str(tmp_path), start_new_session=True,
            )
        workers_set = WorkerSet(proc, log_path)
        started.append(workers_set)
        found = await wait_for(lambda: _listening(workers_set), timeout_s=START_TIMEOUT_S)
        assert found, f"the set never listened:\n{workers_set.log()[-3000:]}"
        workers_set.url = found
        return workers_set

    try:
        yield start
    finally:
        for workers_set in started:
            if workers_set.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    workers_set.proc.send_signal(signal.SIGTERM)
                try:
                    await workers_set.wait_exit(STOP_TIMEOUT_S)
                except TimeoutError:
                    pass
            workers_set.kill_all()  # anything left in its process group


def _open_log(path: Path):
    return open(path, "wb")  # a local file, opened once: not worth a thread


async def _listening(workers_set: WorkerSet) -> str | None:
    if workers_set.proc.returncode is not None:
        raise AssertionError(f"serve exited with {workers_set.proc.returncode}:\n"
                             f"{workers_set.log()[-3000:]}")
    match = LISTENING.search(workers_set.log())
    return match.group(1) if match else None


def _fresh_connections() -> aiohttp.ClientSession:
    """A session that opens a new connection per request: the kernel then spreads them
    across the workers (SO_REUSEPORT hashes each connection)."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))


async def _health_pids(url: str, count: int) -> list[int]:
    async with _fresh_connections() as session:
        pids = []
        for _ in range(count):
            async with session.get(url + "/health") as resp:
                assert resp.status == 200 and await resp.json() == {"status": "ok"}
                pids.append(int(resp.headers[WORKER_HEADER]))
        return pids


async def _scrape(url: str) -> dict[tuple[str, tuple], float]:
    async with _fresh_connections() as session, session.get(url + "/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _env(dsn, fake, tmp_path, **extra: str) -> dict[str, str]:
    return server_env(dsn, fake, tmp_path / "data", **extra)


@pytest.mark.timeout(120)
async def test_two_workers_answer_on_one_port_and_metrics_sum_them(dsn, fake, tmp_path,
                                                                   worker_sets):
    workers = await worker_sets(_env(dsn, fake, tmp_path))
    pids = workers.pids()
    assert sorted(pids) == [1, 2] and len(set(pids.values())) == 2

    health = "spendguard_http_requests_total", (("method", "GET"), ("route", "/health"),
                                                ("status", "200"))
    before = await _scrape(workers.url)
    answered = await _health_pids(workers.url, 40)
    after = await _scrape(workers.url)

    # Both workers answered (the chance that 40 fresh connections all hash to one is 2^-39),
    # and whichever worker answered the scrape counted all 40.
    assert set(answered) == set(pids.values())
    assert after[health] - before.get(health, 0.0) == 40
    [(count, size)] = POOL_SIZE.findall(workers.log())
    pool_max = "spendguard_db_pool_connections", (("state", "max"),)
    assert int(count) == 2 and after[pool_max] == 2 * int(size)
    assert after["spendguard_http_requests_in_progress", ()] >= 1  # the scrape itself


@pytest.mark.timeout(120)
async def test_a_killed_worker_is_restarted_and_its_hold_charged_at_once(dsn, fake, pool,
                                                                         tmp_path, worker_sets):
    # Holds live 300 s and the sweeper waits an hour: only the supervisor can end this one.
    workers = await worker_sets(_env(dsn, fake, tmp_path, CAP_LOCK_TTL_SECONDS="300",
                                     CAP_SWEEP_INTERVAL_SECONDS="3600"))
    agent_id = await new_agent(pool, limit_cents=100)
    fake.configure(delay_ms=100, words=400)  # a 40 s stream: it will not finish

    async with aiohttp.ClientSession() as session:
        response = await session.post(workers.url + "/v1/chat/completions",
                                      json=chat_body(stream=True, max_tokens=200),
                                      headers=agent_headers(agent_id))
        assert response.status == 200
        seen = b""
        while seen.count(b"data:") < 3:
            seen += await response.content.readany()
        [hold] = await pool.fetch(
            "SELECT id, amount_microcents, worker_id FROM holds WHERE agent_id = $1", agent_id)
        victim = workers.worker_ids()[hold["worker_id"]]
        slot = int(hold["worker_id"].split(":")[2])

        os.kill(victim, signal.SIGKILL)
        with contextlib.suppress(aiohttp.ClientError):
            await response.read()
        response.close()

    async def expired():
        return await pool.fetchrow(
            "SELECT * FROM ledger_entries WHERE agent_id = $1 AND kind = 'hold_expired'",
            agent_id)

    row = await wait_for(expired, timeout_s=10)
    assert row is not None, f"the dead worker's hold was not ended:\n{workers.log()[-3000:]}"
    assert row["hold_id"] == hold["id"]
    assert row["delta_microcents"] == -hold["amount_microcents"]
    assert await pool.fetchval("SELECT count(*) FROM holds WHERE agent_id = $1", agent_id) == 0
    await assert_ledger_invariants(pool, agent_id)

    async def restarted():
        return workers.pids().get(slot) not in (None, victim)

    assert await wait_for(restarted, timeout_s=30), workers.log()[-3000:]
    assert "died (killed by SIGKILL)" in workers.log()
    assert set(await _health_pids(workers.url, 40)) == set(workers.pids().values())

    # The agent is not locked: its next call goes through at once.
    fake.reset()
    async with aiohttp.ClientSession() as session, session.post(
        workers.url + "/v1/chat/completions", json=chat_body(max_tokens=16),
        headers=agent_headers(agent_id),
    ) as resp:
        assert resp.status == 200, await resp.text()
    await assert_ledger_invariants(pool, agent_id)


@pytest.fixture
def embedded_data_dir():
    """Outside pytest's tmp_path: the embedded server runs as another user (as root), which
    must traverse every parent, and other pytest sessions reset pytest-of-<user> to 0700."""
    path = Path(tempfile.mkdtemp(prefix="spendguard-workers-"))
    yield path
    if embedded_status(path / "data").running:  # the test failed before the set stopped it
        stop_embedded(path / "data")
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.timeout(180)
async def test_sigterm_lets_a_stream_finish_then_the_set_and_its_database_stop(
    fake, embedded_data_dir, worker_sets
):
    data_dir = embedded_data_dir / "data"
    env = server_env("unused", fake, data_dir, CAP_SHUTDOWN_GRACE_SECONDS="20")
    del env["CAP_DATABASE_URL"]  # the parent starts the embedded PostgreSQL
    workers = await worker_sets(env)
    assert embedded_status(data_dir).running
    async with aiohttp.ClientSession() as session:
        async with session.post(workers.url + "/v1/agents", json={"name": "drain"}) as resp:
            assert resp.status == 200
            agent_id = (await resp.json())["agent_id"]
        async with session.post(workers.url + f"/v1/agents/{agent_id}/budget",
                                json={"hard_limit_cents": 100}) as resp:
            assert resp.status == 200

        fake.configure(delay_ms=60, words=50)  # about 3 s of stream
        async with session.post(workers.url + "/v1/chat/completions",
                                json=chat_body(stream=True, max_tokens=100),
                                headers=agent_headers(agent_id)) as resp:
            assert resp.status == 200
            body = await resp.content.readany()
            workers.proc.send_signal(signal.SIGTERM)
            body += await resp.read()  # the rest of the stream, in full
    assert body.rstrip().endswith(b"data: [DONE]")
    assert body.count(b"data:") > 50

    assert await workers.wait_exit(STOP_TIMEOUT_S) == 0, workers.log()[-3000:]
    assert not embedded_status(data_dir).running, "the embedded PostgreSQL was left running"
    with pytest.raises(aiohttp.ClientConnectionError):
        async with aiohttp.ClientSession() as session, session.get(workers.url + "/health"):
            pass

    # The call was settled before the set stopped: a charge, no hold left.
    status = await asyncio.to_thread(start_embedded, data_dir)
    try:
        db = await asyncpg.connect(status.url)
        try:
            charges = await db.fetch(
                "SELECT termination_reason FROM ledger_entries WHERE agent_id = $1"
                " AND kind = 'charge'", uuid.UUID(agent_id))
            assert [c["termination_reason"] for c in charges] == ["complete"]
            await assert_ledger_invariants(db, uuid.UUID(agent_id))
        finally:
            await db.close()
    finally:
        await asyncio.to_thread(stop_embedded, data_dir)


@pytest.mark.timeout(120)
async def test_hosted_isolation_holds_across_two_workers(dsn, fake, pool, hosted_settings,
                                                         tmp_path, worker_sets):
    workers = await worker_sets(_env(
        dsn, fake, tmp_path, CAP_MODE="hosted",
        CAP_KEY_CACHE_TTL_S=str(hosted_settings.key_cache_ttl_s)))
    async with _fresh_connections() as session:  # each request may meet either worker
        server = _Server(workers, session, hosted_settings)
        await isolation.test_other_tenants_agent_is_indistinguishable_from_a_random_id(
            server, pool)
        await isolation.test_missing_malformed_unknown_and_revoked_keys_are_401(server, pool)
        await isolation.test_use_only_key_cannot_administer(server, pool)
        await isolation.test_burst_of_invalid_keys_is_all_401_and_server_stays_healthy(server)


@pytest.mark.timeout(60)
async def test_workers_that_cannot_start_stop_the_set_with_their_error(dsn, fake, tmp_path):
    env = _env(dsn, fake, tmp_path, CAP_PRICING_SOURCE="file",
               CAP_PRICING_FILE=str(tmp_path / "no-such-table.json"))
    result = await run_cli("serve", "--workers", "2", "--port", "0", env=env)
    assert result.code == 1
    # One line says which worker, how it ended and why, in the worker's own words.
    [line] = [ln for ln in result.err.splitlines() if ln.startswith("error: ")]
    assert re.fullmatch(r"error: worker [12] exited \(exit code 3\) before the set was ready: "
                        r"Cannot read CAP_PRICING_FILE .*no-such-table\.json: .*", line), line
    assert "SpendGuard (" not in result.out


@pytest.mark.timeout(60)
async def test_more_workers_than_the_database_can_serve_is_refused(dsn, fake, tmp_path):
    result = await run_cli("serve", "--workers", "200", "--port", "0",
                           env=_env(dsn, fake, tmp_path))
    assert result.code == 1
    assert "200 workers need at least 2 database connections each" in result.err
    assert "CAP_DATABASE_POOLER_URL" in result.err


def test_pools_share_what_the_database_has_left():
    capacity = Capacity(max_connections=100, reserved=3, open_now=10)
    assert capacity.available == 100 - 3 - 10 - HEADROOM_CONNECTIONS
    assert pool_max_per_worker(capacity, 2, configured_max=20) == 20  # configured cap kept
    assert pool_max_per_worker(capacity, 8, configured_max=20) == capacity.available // 8
    assert pool_max_per_worker(capacity, 42, configured_max=20) == 2
    with pytest.raises(PoolsDoNotFit, match="43 workers need at least 2"):
        pool_max_per_worker(capacity, 43, configured_max=20)
