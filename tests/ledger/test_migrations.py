"""Migrations go up, down and up again, and the result matches db/schema.py exactly."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from spendguard_proxy.db import pool as db
from spendguard_proxy.db.schema import metadata
from spendguard_proxy.db.url import to_sqlalchemy_url
from tests.conftest import _with_database


def _diff(url: str) -> list:
    async def run() -> list:
        engine = create_async_engine(to_sqlalchemy_url(url), poolclass=sa.NullPool)
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), metadata)
            )
        await engine.dispose()
        return diff

    return asyncio.run(run())


def test_up_down_up_and_schema_matches(server_dsn):
    name = f"sg_mig_{uuid.uuid4().hex[:10]}"

    async def admin(sql):
        conn = await asyncpg.connect(server_dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    url = _with_database(server_dsn, name)
    try:
        db.upgrade(url)
        assert db.current(url) == db.head_revision()
        assert _diff(url) == []
        db.downgrade(url, "base")
        assert db.current(url) is None
        db.upgrade(url)
        assert db.current(url) == db.head_revision()
    finally:
        asyncio.run(admin(f'DROP DATABASE "{name}" WITH (FORCE)'))


def test_replicas_starting_together_migrate_once(server_dsn):
    """Five `spendguard db upgrade` processes at once on an empty database: the advisory
    lock serialises them."""
    import os
    import subprocess
    import sys

    name = f"sg_race_{uuid.uuid4().hex[:10]}"

    async def admin(sql):
        conn = await asyncpg.connect(server_dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    url = _with_database(server_dsn, name)
    try:
        env = {**os.environ, "CAP_DATABASE_URL": url}
        procs = [subprocess.Popen([sys.executable, "-m", "spendguard_proxy.cli.main", "db",
                                   "upgrade"], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(5)]
        for proc in procs:
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
            assert out.strip() == f"revision={db.head_revision()}"
        assert db.current(url) == db.head_revision()
        assert _diff(url) == []
    finally:
        asyncio.run(admin(f'DROP DATABASE "{name}" WITH (FORCE)'))
