"""Alembic environment (async, postgresql+asyncpg).

Every run holds a PostgreSQL advisory lock, so replicas that start together against one
database migrate one after the other instead of racing. It is a session lock, taken and
released in transactions of their own around the migration transaction, so the connection must
be a direct one (CAP_DATABASE_URL), never a transaction pooler (CAP_DATABASE_POOLER_URL): there
each transaction may run on another server connection, and a lock taken on one would not
serialise anything and would outlive the run. A run that finds itself without its lock stops.
"""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from alembic import context
from sqlalchemy.ext.asyncio import create_async_engine

from spendguard_proxy.db.schema import metadata
from spendguard_proxy.db.url import resolve_database_url, to_sqlalchemy_url
from spendguard_proxy.settings import load_settings

MIGRATION_LOCK_KEY = 0x5347_4D49  # "SGMI"
# pg_locks shows a one-bigint advisory key as classid (high 32 bits), objid (low), objsubid 1.
_LOCK_HELD = sa.text(
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
    " AND pid = pg_backend_pid() AND classid = 0 AND objid = :k AND objsubid = 1"
)

config = context.config


def _database_url() -> str:
    url = config.attributes.get("database_url")
    if url is None:
        url = resolve_database_url(load_settings())
    return to_sqlalchemy_url(url)


def _assert_lock_held(connection: sa.Connection) -> None:
    if connection.execute(_LOCK_HELD, {"k": MIGRATION_LOCK_KEY}).scalar() != 1:
        raise RuntimeError(
            "The migration lock is not held by the connection that would migrate: migrations"
            " need a direct connection to PostgreSQL (CAP_DATABASE_URL), not a transaction"
            " pooler such as PgBouncer (CAP_DATABASE_POOLER_URL)."
        )


def _run_locked(connection: sa.Connection) -> None:
    connection.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
    connection.commit()  # the migrations then run in their own transaction
    try:
        context.configure(connection=connection, target_metadata=metadata, compare_type=True)
        with context.begin_transaction():
            _assert_lock_held(connection)
            context.run_migrations()
        connection.commit()  # committed before the lock is let go: the next replica sees it
    except BaseException:
        connection.rollback()  # the session-level advisory lock survives the rollback
        raise
    finally:
        connection.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK_KEY})
        connection.commit()


async def _run_online() -> None:
    engine = create_async_engine(_database_url(), poolclass=sa.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_locked)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("Offline (--sql) migrations are not supported; run against a database.")
asyncio.run(_run_online())
