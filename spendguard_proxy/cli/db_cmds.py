"""db: the schema (Alembic) and the embedded PostgreSQL server.

``status`` says which database the CLI and the server use and whether it runs (exit 3 when
it does not, like ``pg_ctl status``); ``start`` and ``stop`` manage the embedded server of the
data dir (``CAP_DATA_DIR``). A server given by ``CAP_DATABASE_URL`` is not SpendGuard's to
start or stop.
"""

from __future__ import annotations

import argparse
import json

from spendguard_proxy.cli.errors import CliError
from spendguard_proxy.cli.session import (
    cli_settings_or_exit,
    connect_errors,
    resolve_dsn,
    where,
)

NOT_RUNNING_EXIT = 3
PROBE_TIMEOUT_S = 5
# The server's pool names its sessions so (spendguard_proxy/db/pool.py).
SERVER_APPLICATION_NAME = "spendguard"


def _migrate(args) -> int:
    from spendguard_proxy.db import pool as db

    settings = cli_settings_or_exit()
    dsn = resolve_dsn(settings)
    try:
        if args.db_command == "upgrade":
            db.upgrade(dsn, args.revision)
        elif args.db_command == "downgrade":
            db.downgrade(dsn, args.revision)
        print(f"revision={db.current(dsn)}")
    except connect_errors() as exc:
        raise CliError(f"Cannot reach the database ({where(settings)}): {exc}") from None
    return 0


def _print(args, fields: dict) -> None:
    if args.json:
        print(json.dumps(fields, indent=2, sort_keys=True))
        return
    for key, value in fields.items():
        if value is not None:
            print(f"{key}={'yes' if value is True else 'no' if value is False else value}")


def _embedded_fields(settings, status) -> dict:
    socket = (f"{status.socket_dir}/.s.PGSQL.{status.port}"
              if status.running and status.socket_dir else None)
    return {"database": where(settings), "managed": True, "pgdata": str(status.pgdata),
            "running": status.running, "pid": status.pid, "port": status.port,
            "socket": socket}


def _status(args) -> int:
    settings = cli_settings_or_exit()
    if settings.database_url:
        running = _answers(resolve_dsn(settings))
        _print(args, {"database": where(settings), "managed": False, "running": running})
        return 0 if running else NOT_RUNNING_EXIT
    from spendguard_proxy.db.embedded import embedded_status

    status = embedded_status(settings.data_dir)
    _print(args, _embedded_fields(settings, status))
    return 0 if status.running else NOT_RUNNING_EXIT


def _embedded_only(settings, verb: str) -> None:
    if settings.database_url:
        raise CliError(
            f"CAP_DATABASE_URL is set ({where(settings)}): SpendGuard does not {verb} that "
            f"server; unset CAP_DATABASE_URL to {verb} the embedded PostgreSQL at "
            f"{settings.data_dir}")


def _start(args) -> int:
    from spendguard_proxy.db.embedded import embedded_status, start_embedded

    settings = cli_settings_or_exit()
    _embedded_only(settings, "start")
    if embedded_status(settings.data_dir).running:
        status = embedded_status(settings.data_dir)
        action = "already running"
    else:
        try:
            status = start_embedded(settings.data_dir)
        except connect_errors() as exc:
            raise CliError(f"Cannot start the embedded PostgreSQL: {exc}") from None
        action = "started"
    fields = _embedded_fields(settings, status)
    if not args.json:
        print(f"{action}: embedded PostgreSQL (pid {status.pid}) in {status.pgdata}")
    _print(args, fields)
    return 0


def _stop(args) -> int:
    from spendguard_proxy.db.embedded import EmbeddedStopError, embedded_status, stop_embedded

    settings = cli_settings_or_exit()
    _embedded_only(settings, "stop")
    status = embedded_status(settings.data_dir)
    if not status.running:
        print(f"not running: embedded PostgreSQL in {status.pgdata}")
        return 0
    sessions = _server_sessions(status.url)
    if sessions and not args.force:
        raise CliError(
            f"a running `spendguard serve` is connected to this database ({sessions} "
            "sessions); stop it first, or pass --force (its calls then fail with 503)")
    try:
        stop_embedded(settings.data_dir)
    except EmbeddedStopError as exc:
        raise CliError(str(exc)) from None
    print(f"stopped: embedded PostgreSQL (pid {status.pid}) in {status.pgdata}")
    return 0


def _answers(dsn: str) -> bool:
    return _probe(dsn, "SELECT 1") is not None


def _server_sessions(dsn: str) -> int:
    count = _probe(dsn, "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                   SERVER_APPLICATION_NAME)
    return count or 0


def _probe(dsn: str, sql: str, *params):
    """One value from one short-lived connection, or None when the server does not answer."""
    import asyncio

    import asyncpg

    async def probe():
        conn = await asyncpg.connect(dsn, timeout=PROBE_TIMEOUT_S)
        try:
            return await conn.fetchval(sql, *params)
        finally:
            await conn.close()

    try:
        return asyncio.run(probe())
    except (*connect_errors(), asyncpg.PostgresError, TimeoutError):
        return None


def register(sub: argparse._SubParsersAction) -> None:
    dbp = sub.add_parser("db", help="schema migrations (Alembic) and the embedded PostgreSQL")
    dsub = dbp.add_subparsers(dest="db_command", required=True)
    p = dsub.add_parser("upgrade", help="migrate up (default: to head)")
    p.add_argument("revision", nargs="?", default="head")
    p.set_defaults(handler=_migrate)
    p = dsub.add_parser("downgrade", help="migrate down (e.g. -1 or base)")
    p.add_argument("revision")
    p.set_defaults(handler=_migrate)
    p = dsub.add_parser("current", help="show the database's revision")
    p.set_defaults(handler=_migrate)
    p = dsub.add_parser("status", help="which database is used; is it running (exit 3: no)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_status)
    p = dsub.add_parser("start", help="start the embedded PostgreSQL of the data dir")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_start)
    p = dsub.add_parser("stop", help="stop the embedded PostgreSQL of the data dir")
    p.add_argument("--force", action="store_true",
                   help="stop it even while a `spendguard serve` is connected")
    p.set_defaults(handler=_stop)
