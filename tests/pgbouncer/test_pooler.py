"""What PgBouncer 1.18 in transaction mode does to connections, and why SpendGuard is safe there.

- It refuses ``synchronous_commit`` as a startup parameter (``ignore_startup_parameters`` would
  drop it silently), so durability cannot come from the connection.
- A database whose default is ``synchronous_commit = off`` reaches the pooled connection as
  such; every ledger write still commits with it on (``SET LOCAL`` in its own transaction).
- Migrations take a session advisory lock: through the pooler they stop, with a message that
  names the direct URL, instead of running unserialised.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from spendguard_proxy.db import pool as db
from spendguard_proxy.db.pool import create_pool
from tests.ledger.test_durability import WRITES, synchronous_commit_after
from tests.pgbouncer.conftest import PROBE_ALIAS, TWO_SERVERS_ALIAS, database_name

MIGRATION_LOCK_KEY = 0x5347_4D49  # migrations/env.py


async def test_pgbouncer_refuses_synchronous_commit_as_a_startup_parameter(pooled_dsn):
    with pytest.raises(asyncpg.ProtocolViolationError, match="unsupported startup parameter"):
        await asyncpg.connect(pooled_dsn, server_settings={"synchronous_commit": "on"})
    conn = await asyncpg.connect(pooled_dsn, statement_cache_size=0,
                                 server_settings={"application_name": "spendguard"})
    try:  # the one startup parameter the server pool sends is passed on
        assert await conn.fetchval("SHOW application_name") == "spendguard"
    finally:
        await conn.close()


async def test_the_server_pool_sends_only_what_the_pooler_accepts(pool, pooled_settings):
    """The pool fixture is create_pool on CAP_DATABASE_POOLER_URL: it connected at all, and
    without a statement cache (which the pooler would break)."""
    async with pool.acquire() as conn:
        assert conn._config.statement_cache_size == 0
        assert await conn.fetchval("SELECT $1::int + 1", 1) == 2


@pytest.fixture
async def default_off_pool(dsn, pgbouncer, pooled_settings):
    """The database's default set to ``synchronous_commit = off`` (reset afterwards), and a
    server pool on the pooler's probe entry, whose server connections start after the change."""
    admin = await asyncpg.connect(dsn)
    name = database_name(dsn)
    await admin.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    try:
        settings = pooled_settings.model_copy(
            update={"database_pooler_url": pgbouncer.url(dsn, PROBE_ALIAS)})
        pool = await create_pool(dsn, settings)
        try:
            yield pool
        finally:
            await pool.close()
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" RESET synchronous_commit')
        await admin.close()


async def test_the_database_default_reaches_pooled_connections(default_off_pool):
    assert await default_off_pool.fetchval("SHOW synchronous_commit") == "off"


@pytest.mark.parametrize("name", sorted(WRITES))
async def test_ledger_writes_commit_synchronously_through_the_pooler(default_off_pool, name):
    # "off" before: the database default (no SET LOCAL needed); "on" at the COMMIT.
    assert await synchronous_commit_after(default_off_pool, name) == ("off", "on")


async def _advisory_lock_holders(dsn: str, terminate: bool = False) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(
            "SELECT count(*) FILTER (WHERE NOT $2 OR pg_terminate_backend(pid)) FROM pg_locks"
            " WHERE locktype = 'advisory' AND objid = $1 AND database ="
            " (SELECT oid FROM pg_database WHERE datname = current_database())",
            MIGRATION_LOCK_KEY, terminate)
    finally:
        await conn.close()


async def _open_both_server_connections(url: str) -> None:
    """Two transactions at once, so the pooler entry's two server connections exist."""
    clients = [await asyncpg.connect(url, statement_cache_size=0) for _ in range(2)]
    try:
        for conn in clients:
            await conn.execute("BEGIN; SELECT 1")
        for conn in clients:
            await conn.execute("COMMIT")
    finally:
        for conn in clients:
            await conn.close()


def test_migrations_through_the_pooler_stop_and_leave_no_lock(pgbouncer, dsn):
    """The migration lock is a session lock. Through the pooler (two server connections,
    the longest-idle first) the run's transactions alternate between them: the migration
    transaction finds itself without the lock and stops instead of migrating unserialised;
    the unlock lands where the lock was taken. Migrations belong on CAP_DATABASE_URL."""
    url = pgbouncer.url(dsn, TWO_SERVERS_ALIAS)
    asyncio.run(_open_both_server_connections(url))
    try:
        with pytest.raises(RuntimeError, match="need a direct connection"):
            db.upgrade(url)
        assert asyncio.run(_advisory_lock_holders(dsn)) == 0
    finally:  # never leave later migrations of this database waiting on a lost lock
        asyncio.run(_advisory_lock_holders(dsn, terminate=True))


def test_a_pooler_url_needs_the_direct_url(monkeypatch):
    """Without CAP_DATABASE_URL migrations would have no direct connection to lock on."""
    from spendguard_proxy.settings import SettingsError, load_settings

    monkeypatch.delenv("CAP_DATABASE_URL", raising=False)
    monkeypatch.setenv("CAP_DATABASE_POOLER_URL", "postgresql://sg@pgbouncer:6432/sg")
    with pytest.raises(SettingsError, match="CAP_DATABASE_POOLER_URL: .*CAP_DATABASE_URL"):
        load_settings(_env_file=None)
    monkeypatch.setenv("CAP_DATABASE_URL", "postgresql://sg@db:5432/sg")
    assert load_settings(_env_file=None).database_pooler_url == "postgresql://sg@pgbouncer:6432/sg"
