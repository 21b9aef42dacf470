"""The asyncpg connection pool and the migration entry points."""

from __future__ import annotations

import json
from importlib import resources
from typing import TYPE_CHECKING

import asyncpg

from spendguard_proxy.db.url import to_asyncpg_dsn

if TYPE_CHECKING:
    from spendguard_proxy.settings import Settings

# The newest migration in migrations/versions. Kept equal to Alembic's head by a test
# (tests/cli/test_cli.py) so a CLI command can tell "schema is current" from one cheap query,
# without importing Alembic and SQLAlchemy (a third of a second) on every run.
SCHEMA_HEAD = "0006"
APP_NAME = "spendguard"  # the server's connections, as pg_stat_activity shows them


async def init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pool release without asyncpg's reset round trip: no code of ours leaves session state
    (LISTEN, advisory locks, SET without LOCAL, temporary objects) on a pooled connection, and
    the saved round trip is a third of the database time of a proxied call. (asyncpg still
    rolls back a transaction left open.) Behind a transaction pooler this is also the only
    correct choice: a reset would run on whichever server connection the pooler picks."""


async def create_pool(dsn: str, settings: Settings) -> asyncpg.Pool:
    """The server's pool on ``dsn`` — or, with ``CAP_DATABASE_POOLER_URL``, on that
    transaction-pooling PgBouncer in front of the same database.

    Behind the pooler consecutive transactions of one connection may run on different server
    connections, so: no prepared-statement cache (asyncpg then sends the Parse again with each
    Bind, in the same Sync), and no startup parameters beyond ``application_name`` (PgBouncer
    1.18 refuses others). Durability never rests on the connection: every ledger write sets
    ``synchronous_commit`` with ``SET LOCAL`` inside its own transaction (ledger.py, migration
    0005). The direct pool also asks for it at connection start, which covers writes made
    outside ledger.py.
    """
    if settings.database_pooler_url:
        target = to_asyncpg_dsn(settings.database_pooler_url)
        options = {"statement_cache_size": 0, "server_settings": {"application_name": APP_NAME}}
    else:
        target = dsn
        options = {"server_settings": {"synchronous_commit": "on", "application_name": APP_NAME}}
    return await asyncpg.create_pool(
        target,
        min_size=settings.db_pool_min_size,
        max_size=settings.db_pool_max_size,
        command_timeout=settings.db_command_timeout_s,
        init=init_connection,
        reset=_keep_session,
        **options,
    )


def alembic_config(dsn: str):
    from alembic.config import Config

    cfg = Config()
    # The checkout's migrations/ directory, shipped as spendguard_proxy.migrations.
    cfg.set_main_option("script_location", str(resources.files("spendguard_proxy.migrations")))
    cfg.attributes["database_url"] = dsn
    return cfg


def upgrade(dsn: str, revision: str = "head") -> None:
    """Run migrations (under the env's session advisory lock, so ``dsn`` must be a direct
    connection, never ``CAP_DATABASE_POOLER_URL``). Must not run inside an event loop."""
    from alembic import command

    command.upgrade(alembic_config(dsn), revision)


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("")).get_current_head()


def ensure_schema(dsn: str) -> None:
    """Upgrade to head unless the database is there already (skips Alembic's start-up)."""
    if current(dsn) != SCHEMA_HEAD:
        upgrade(dsn)


async def schema_revision(db: asyncpg.Pool | asyncpg.Connection) -> str | None:
    """The database's Alembic revision (None before the first migration), in one query."""
    try:
        return await db.fetchval("SELECT version_num FROM alembic_version")
    except asyncpg.UndefinedTableError:
        return None


def downgrade(dsn: str, revision: str) -> None:
    from alembic import command

    command.downgrade(alembic_config(dsn), revision)


def current(dsn: str) -> str | None:
    import asyncio

    async def _read() -> str | None:
        conn = await asyncpg.connect(dsn)
        try:
            return await schema_revision(conn)
        finally:
            await conn.close()

    return asyncio.run(_read())
