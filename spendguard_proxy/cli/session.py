"""Opening the database (or the HTTP API) for one CLI command.

A command's cost is mostly imports, so they happen here, at call time, and only the ones the
command needs: asyncpg, the ledger, rich to render. A command on the database opens one
connection, checks the schema with one query against ``SCHEMA_HEAD`` and brings in Alembic
only when the database is behind.

Settings: the server and every command that needs more than where the data is go through
``Settings`` (``settings_or_exit``). The agent, budget, usage, tenant, key and db commands need
five values — mode, database URL, data dir, base URL, API key — and pydantic-settings costs a
third of such a command's start-up, so ``cli_settings_or_exit`` reads those five directly, but
only when the environment holds no other ``CAP_`` variable (then no other setting exists that
could be invalid) and each value is one ``Settings`` takes as it is; anything else goes through
``Settings``, so the answer — and every error — is the same either way
(tests/cli/test_startup.py compares the two).
"""

from __future__ import annotations

import contextlib
import enum
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from spendguard_proxy.cli.errors import CliError

if TYPE_CHECKING:
    import asyncpg

    from spendguard_proxy.db.embedded import EmbeddedStatus
    from spendguard_proxy.settings import Settings

T = TypeVar("T")
POOL_SIZE_MAX = 2
COMMAND_TIMEOUT_S = 30


def settings_or_exit() -> Settings:
    from spendguard_proxy.settings import SettingsError, load_settings

    try:
        return load_settings()
    except SettingsError as exc:
        raise CliError(str(exc)) from None


class CliMode(enum.Enum):
    """``settings.Mode``'s values (compare ``mode.value``: either kind of settings has one)."""

    sidecar = "sidecar"
    hosted = "hosted"


@dataclass(frozen=True, slots=True)
class CliSettings:
    """The settings of a command that only needs to know where the data is."""

    mode: CliMode
    database_url: str | None
    data_dir: Path
    base_url: str | None
    api_key: str | None


# Environment variable -> CliSettings field; the names and defaults are Settings' own.
CLI_VARIABLES = {"CAP_MODE": "mode", "CAP_DATABASE_URL": "database_url",
                 "CAP_DATA_DIR": "data_dir", "CAP_BASE_URL": "base_url",
                 "CAP_API_KEY": "api_key"}


def read_cli_settings(environ: Mapping[str, str]) -> CliSettings | None:
    """The five values, when ``Settings`` would read exactly these from ``environ`` (names
    are case-insensitive there too); None when it must decide (another CAP_ variable, a
    name given twice, a mode it might refuse)."""
    found: dict[str, str] = {}
    for key, value in environ.items():
        name = key.upper()
        if not name.startswith("CAP_"):
            continue
        if name not in CLI_VARIABLES or name in found:
            return None
        found[name] = value
    mode = found.get("CAP_MODE", CliMode.sidecar.value)
    if mode not in {m.value for m in CliMode}:
        return None
    data_dir = found.get("CAP_DATA_DIR")
    return CliSettings(
        mode=CliMode(mode),
        database_url=found.get("CAP_DATABASE_URL"),
        data_dir=Path(data_dir) if data_dir is not None else _default_data_dir(),
        base_url=found.get("CAP_BASE_URL"),
        api_key=found.get("CAP_API_KEY"),
    )


def _default_data_dir() -> Path:
    """``settings.default_data_dir()`` (a test keeps the two equal)."""
    import platformdirs

    return Path(platformdirs.user_data_dir("spendguard", appauthor=False))


def cli_settings_or_exit() -> CliSettings | Settings:
    """Settings for a command that only needs where the data is (see the module's doc)."""
    return read_cli_settings(os.environ) or settings_or_exit()


def connect_errors() -> tuple[type[BaseException], ...]:
    """What "the database cannot be reached" looks like (asyncpg imported on demand)."""
    import subprocess

    import asyncpg

    return (OSError, subprocess.SubprocessError, asyncpg.PostgresConnectionError,
            asyncpg.CannotConnectNowError)


def where(settings: CliSettings | Settings, base_url: str | None = None) -> str:
    """Which database (or SpendGuard) a command acts on, without credentials."""
    if base_url:
        return base_url.rstrip("/")
    from spendguard_proxy.db.url import describe_database

    return describe_database(settings)


def announce_started(status: EmbeddedStatus) -> None:
    """Starting a database server is never silent: it keeps running after the command."""
    print(f"note: started the embedded PostgreSQL in {status.pgdata} (pid {status.pid}); it "
          "keeps running for the next command and `spendguard serve` — `spendguard db stop` "
          "stops it", file=sys.stderr)


def resolve_dsn(settings: CliSettings | Settings) -> str:
    """The DSN: CAP_DATABASE_URL, else the embedded server (started, and said so, if down)."""
    from spendguard_proxy.db.url import resolve_database_url

    try:
        return resolve_database_url(settings, on_start=announce_started)
    except connect_errors() as exc:
        raise CliError(f"Cannot start the database ({where(settings)}): {exc}") from None


def database_url(settings: CliSettings | Settings) -> str:
    """The DSN, migrated to the newest schema (a no-op when it already is)."""
    from spendguard_proxy.db import pool as db

    dsn = resolve_dsn(settings)
    try:
        db.ensure_schema(dsn)
    except connect_errors() as exc:
        raise CliError(f"Cannot reach the database ({where(settings)}): {exc}") from None
    return dsn


@contextlib.asynccontextmanager
async def open_pool(dsn: str, place: str) -> AsyncIterator[asyncpg.Pool]:
    """A small pool on a database at the newest schema (migrated first if it is behind)."""

    import asyncpg

    from spendguard_proxy.db import pool as db

    try:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=POOL_SIZE_MAX,
                                         command_timeout=COMMAND_TIMEOUT_S,
                                         init=db.init_connection)
    except connect_errors() as exc:
        raise CliError(f"Cannot reach the database ({place}): {exc}") from None
    try:
        if await db.schema_revision(pool) != db.SCHEMA_HEAD:
            await _migrate(dsn, place)
        yield pool
    finally:
        await pool.close()


async def _migrate(dsn: str, place: str) -> None:
    import asyncio

    from alembic.util import CommandError

    from spendguard_proxy.db import pool as db

    try:
        await asyncio.to_thread(db.upgrade, dsn)  # Alembic runs its own event loop
    except CommandError as exc:  # e.g. a newer SpendGuard migrated past our head
        raise CliError(f"Cannot migrate the database ({place}): {exc}") from None


def run_on_db(
    settings: CliSettings | Settings, work: Callable[[asyncpg.Pool], Awaitable[T]]
) -> T:
    import asyncio

    dsn = resolve_dsn(settings)
    place = where(settings)

    async def main() -> T:
        async with open_pool(dsn, place) as pool:
            return await work(pool)

    return asyncio.run(main())


@dataclass(frozen=True, slots=True)
class Answer:
    data: Any
    where: str  # the database or SpendGuard that answered, for "(no agents in …)"


def run_tenant_command(args: Any, work: Callable[[Any], Awaitable[T]]) -> Answer:
    """Run ``work(backend)`` against HTTP (--base-url / CAP_BASE_URL) or the database."""
    import asyncio

    from spendguard_proxy.cli.backends import DbBackend, HttpBackend
    from spendguard_proxy.errors import NotFound

    settings = cli_settings_or_exit()
    api_key = getattr(args, "api_key", None) or settings.api_key
    base_url = getattr(args, "base_url", None) or settings.base_url
    place = where(settings, base_url)
    if base_url:
        backend = HttpBackend(base_url, api_key, settings.mode)
        return Answer(asyncio.run(work(backend)), place)

    async def on_db(pool: asyncpg.Pool) -> T:
        return await work(await DbBackend.open(pool, settings, api_key))

    if settings.mode.value == "hosted" and not api_key:
        raise CliError("Hosted mode requires API key via --api-key or CAP_API_KEY")
    try:
        return Answer(run_on_db(settings, on_db), place)
    except NotFound as exc:
        raise CliError(f"{exc.message} (in {place})") from None
