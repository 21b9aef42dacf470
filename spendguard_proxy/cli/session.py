"""Opening the database (or the HTTP API) for one CLI command."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import asyncpg

from spendguard_proxy.cli.backends import CliError, DbBackend, HttpBackend
from spendguard_proxy.db import pool as db
from spendguard_proxy.db.url import resolve_database_url
from spendguard_proxy.settings import Settings, SettingsError, load_settings

T = TypeVar("T")
CONNECT_ERRORS = (OSError, asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError)


def settings_or_exit() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        raise CliError(str(exc)) from None


def database_url(settings: Settings) -> str:
    """The DSN, migrated to the newest schema (a no-op when it already is)."""
    try:
        dsn = resolve_database_url(settings)
        db.ensure_schema(dsn)
    except CONNECT_ERRORS as exc:
        raise CliError(f"Cannot reach the database: {exc}") from None
    return dsn


@contextlib.asynccontextmanager
async def open_pool(dsn: str, settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    try:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2, command_timeout=30)
    except CONNECT_ERRORS as exc:
        raise CliError(f"Cannot reach the database: {exc}") from None
    try:
        yield pool
    finally:
        await pool.close()


def run_on_db(settings: Settings, work: Callable[[asyncpg.Pool], Awaitable[T]]) -> T:
    dsn = database_url(settings)

    async def main() -> T:
        async with open_pool(dsn, settings) as pool:
            return await work(pool)

    return asyncio.run(main())


def run_tenant_command(args: Any, work: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``work(backend)`` against HTTP (--base-url / CAP_BASE_URL) or the database."""
    settings = settings_or_exit()
    api_key = getattr(args, "api_key", None) or settings.api_key
    base_url = getattr(args, "base_url", None) or settings.base_url
    if base_url:
        backend = HttpBackend(base_url, api_key, settings.mode)
        return asyncio.run(work(backend))

    async def on_db(pool: asyncpg.Pool) -> T:
        return await work(await DbBackend.open(pool, settings, api_key))

    if settings.mode.value == "hosted" and not api_key:
        raise CliError("Hosted mode requires API key via --api-key or CAP_API_KEY")
    return run_on_db(settings, on_db)
