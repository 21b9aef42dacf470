"""Fault tests: real ``spendguard serve`` subprocesses that we kill, starve of their database
or flood with garbage, against the session's database and an in-process fake provider.

The servers are separate processes (``.venv/bin/spendguard serve --port N``), so a kill -9 is a
real crash. The fake provider runs in the test's event loop: tests must never block it, so
subprocesses are started with ``asyncio.create_subprocess_exec``. Every server is killed in
teardown, whatever the test did.

The test's own pool uses another ``application_name`` than the servers' ``spendguard``, so
terminating "the proxy's backends" never hits the connections the test checks with.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from spendguard_proxy import billing
from spendguard_proxy.db.pool import init_connection
from spendguard_proxy.pricing.sources import load_bundled
from spendguard_proxy.testing.fake_provider import FakeProvider
from spendguard_proxy.usage import Usage
from tests.ledger.helpers import new_agent

SPENDGUARD = str(Path(sys.executable).parent / "spendguard")
START_TIMEOUT_S = 45.0
TEST_APP_NAME = "spendguard-faults-test"
MODEL = "gpt-4o-mini"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ServerProcess:
    """One ``spendguard serve`` subprocess."""

    proc: asyncio.subprocess.Process
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    async def kill9(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def stop(self) -> None:
        if self.proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), 5)
        except TimeoutError:
            await self.kill9()


def server_env(dsn: str, fake: FakeProvider, data_dir: Path, **extra: str) -> dict[str, str]:
    """A clean environment (no CAP_/provider variables leak in) pointing at the fake."""
    prefixes = ("CAP_", "OPENAI_", "XAI_", "GROK_", "ANTHROPIC_", "GEMINI_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env.update({
        "CAP_DATABASE_URL": dsn,
        "CAP_DATA_DIR": str(data_dir),
        "OPENAI_API_KEY": "sk-faults-openai",
        "OPENAI_BASE_URL": fake.base_url_openai,
        "XAI_API_KEY": "xai-faults",
        "XAI_BASE_URL": fake.base_url_xai,
        "ANTHROPIC_API_KEY": "sk-ant-faults",
        "ANTHROPIC_BASE_URL": fake.base_url_anthropic,
        "GEMINI_API_KEY": "gem-faults",
        "GEMINI_BASE_URL": fake.base_url_gemini,
        "CAP_UPSTREAM_FIRST_BYTE_TIMEOUT_S": "10",
        "CAP_UPSTREAM_IDLE_TIMEOUT_S": "10",
    })
    env.update(extra)
    return env


def _open_log(path: Path):
    return open(path, "wb")


async def start_server(env: dict[str, str], log_dir: Path, name: str,
                       workers: int = 1) -> ServerProcess:
    port = free_port()
    log_path = log_dir / f"{name}-{port}.log"
    with _open_log(log_path) as log:
        proc = await asyncio.create_subprocess_exec(
            SPENDGUARD, "serve", "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(workers),
            env=env, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=asyncio.subprocess.STDOUT,
            cwd=str(log_dir),
        )
    server = ServerProcess(proc, port, log_path)
    try:
        await _wait_healthy(server)
    except BaseException:
        await server.kill9()
        raise
    return server


async def _wait_healthy(server: ServerProcess) -> None:
    deadline = asyncio.get_running_loop().time() + START_TIMEOUT_S
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while asyncio.get_running_loop().time() < deadline:
            if server.proc.returncode is not None:
                raise RuntimeError(f"spendguard serve exited with {server.proc.returncode}:\n"
                                   f"{server.log_tail()}")
            with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                async with session.get(server.url + "/health") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.05)
    raise RuntimeError(f"spendguard serve not healthy in {START_TIMEOUT_S}s:\n"
                       f"{server.log_tail()}")


@pytest.fixture
async def servers(tmp_path) -> AsyncIterator:
    """``await servers.start(env, name)``; every server started is killed at teardown."""

    class Servers:
        def __init__(self) -> None:
            self.started: list[ServerProcess] = []

        async def start(self, env: dict[str, str], name: str = "spendguard",
                        workers: int = 1) -> ServerProcess:
            server = await start_server(env, tmp_path, name, workers)
            self.started.append(server)
            return server

        async def start_many(self, env: dict[str, str], count: int,
                             workers: int = 1) -> list[ServerProcess]:
            started = await asyncio.gather(
                *(self.start(env, f"spendguard{i}", workers) for i in range(count)),
                return_exceptions=True)  # all settle first, so teardown sees every server
            for result in started:
                if isinstance(result, BaseException):
                    raise result
            return list(started)

    registry = Servers()
    try:
        yield registry
    finally:
        for server in registry.started:
            await server.stop()


@pytest.fixture(scope="session")
async def faults_pool(dsn):
    """The test's own connections, never taken for the proxy's (another application_name)."""
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4, init=init_connection,
                                     server_settings={"application_name": TEST_APP_NAME})
    yield pool
    await pool.close()


@pytest.fixture
def budgeted_agent(faults_pool):
    return functools.partial(new_agent, faults_pool)


def chat_body(stream: bool = False, model: str = MODEL, **extra) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": "hello there"}],
            "stream": stream, **extra}


def agent_headers(agent_id) -> dict[str, str]:
    return {"x-cynsta-agent-id": str(agent_id)}


def billed_microcents(fake: FakeProvider, model: str = MODEL, provider: str = "openai") -> int:
    """What the fake provider would bill for ``model`` so far, priced like SpendGuard prices."""
    row = fake.billed.models.get(model)
    if row is None:
        return 0
    card = load_bundled().lookup(provider, model)
    usage = Usage(input_tokens=row["input_tokens"], output_tokens=row["output_tokens"])
    return billing.cost(card, usage).microcents


async def wait_for(predicate, timeout_s: float, interval_s: float = 0.1):
    """Poll an async predicate until it returns something truthy; return it (or the last)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        value = await predicate()
        if value or asyncio.get_running_loop().time() >= deadline:
            return value
        await asyncio.sleep(interval_s)
