"""Real SpendGuard servers on 127.0.0.1 (port 0) for the operations tests.

The servers run in the session's event loop, so tests must never block it: subprocesses are
started with ``asyncio.create_subprocess_exec`` (see ``run_cli``), never ``subprocess.run``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from spendguard_proxy import tenants
from spendguard_proxy.server.app import build_app
from spendguard_proxy.server.runner import start_site
from spendguard_proxy.settings import Mode
from spendguard_proxy.testing.fake_provider import run_fake_provider

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
SPENDGUARD = str(VENV_BIN / "spendguard")
BOOTSTRAP = str(ROOT / "scripts" / "bootstrap_strict_budget.py")
SUBPROCESS_TIMEOUT_S = 60


@dataclass
class Server:
    app: web.Application
    base_url: str
    session: aiohttp.ClientSession

    def url(self, path: str) -> str:
        return self.base_url + path


async def _start(settings, dsn):
    app = build_app(settings, dsn)
    runner, port = await start_site(app, settings)
    session = aiohttp.ClientSession()
    return runner, Server(app, f"http://127.0.0.1:{port}", session)


@pytest.fixture(scope="session")
async def sidecar(dsn, settings):
    runner, server = await _start(settings, dsn)
    yield server
    await server.session.close()
    await runner.cleanup()


@pytest.fixture(scope="session")
async def relaying(dsn, settings):
    """A sidecar whose OpenAI upstream is the fake provider, for end-to-end metric checks."""
    async with run_fake_provider() as fake:
        relay_settings = settings.model_copy(
            update={"openai_base_url": fake.base_url_openai, "openai_api_key": "fake"}
        )
        runner, server = await _start(relay_settings, dsn)
        yield server
        await server.session.close()
        await runner.cleanup()


@pytest.fixture(scope="session")
def hosted_settings(settings):
    # A short key cache so revocation tests do not wait the default 2 s.
    return settings.model_copy(update={"mode": Mode.hosted, "key_cache_ttl_s": 0.3})


@pytest.fixture(scope="session")
async def hosted(dsn, hosted_settings):
    runner, server = await _start(hosted_settings, dsn)
    yield server
    await server.session.close()
    await runner.cleanup()


@dataclass
class Tenant:
    tenant_id: str
    api_key: str
    key_id: str


async def new_tenant(pool, scopes: list[str] | None = None) -> Tenant:
    tenant = await tenants.create_tenant(pool, f"ops-{uuid.uuid4().hex[:8]}")
    tid = uuid.UUID(tenant["tenant_id"])
    key = await tenants.create_key(pool, tid, scopes or list(tenants.SCOPES))
    return Tenant(tenant["tenant_id"], key["api_key"], key["key_id"])


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without SpendGuard settings that would leak into a child."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAP_")}
    env.update(extra)
    return env


@dataclass
class Result:
    code: int
    out: str
    err: str


async def run_cmd(*argv: str, env: dict[str, str]) -> Result:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), SUBPROCESS_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return Result(proc.returncode, out.decode(), err.decode())


async def run_bootstrap(*args: str, env: dict[str, str] | None = None) -> Result:
    return await run_cmd(sys.executable, BOOTSTRAP, *args, env=env or clean_env())


async def run_cli(*args: str, env: dict[str, str]) -> Result:
    return await run_cmd(SPENDGUARD, *args, env=env)
