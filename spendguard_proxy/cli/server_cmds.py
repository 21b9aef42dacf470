"""serve: running the proxy, in one process or as a supervised set of workers."""

from __future__ import annotations

import argparse
import os
import socket
from typing import TYPE_CHECKING

from spendguard_proxy.cli.errors import CliError

if TYPE_CHECKING:
    from spendguard_proxy.settings import Settings

MAX_WORKERS = 256


def _serve(args) -> int:
    from spendguard_proxy.cli.session import settings_or_exit, where
    from spendguard_proxy.server.serving import configure_logging

    settings = settings_or_exit()
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    if overrides:
        settings = settings.model_copy(update=overrides)
    workers = args.workers
    # The port first: a busy port fails at once, before a database is started or migrated.
    # With workers the parent keeps it bound (not listening) so the port stays the set's; each
    # worker binds it again with SO_REUSEPORT and the kernel spreads connections among them.
    sock = _bind(settings.host, settings.port, reuse_port=workers > 1)
    try:
        configure_logging()
        url = f"http://{_url_host(settings.host)}:{sock.getsockname()[1]}"
        line = f"SpendGuard ({settings.mode.value}) on {url}, database: {where(settings)}"
        if workers > 1:
            return _serve_workers(settings, sock, workers, f"{line}, {workers} workers")
        _serve_one(settings, sock, line)
    finally:
        sock.close()
    return 0


def _serve_one(settings: Settings, sock: socket.socket, line: str) -> None:
    import asyncio

    from spendguard_proxy.cli.session import resolve_dsn
    from spendguard_proxy.server.app import build_app
    from spendguard_proxy.server.serving import (
        STOP_SIGNALS,
        event_loop_factory,
        serve_until,
        stop_on_signals,
    )

    dsn = resolve_dsn(settings)
    _migrate(settings, dsn)
    app = build_app(settings, dsn)

    async def serve() -> None:
        stop = asyncio.Event()
        stop_on_signals(stop, STOP_SIGNALS)
        await serve_until(app, settings, sock, stop, lambda: print(line, flush=True))

    with asyncio.Runner(loop_factory=event_loop_factory()) as loop_runner:
        loop_runner.run(serve())


def _serve_workers(settings: Settings, sock: socket.socket, workers: int, line: str) -> int:
    """The parent of a set (server/supervisor.py): database, migrations, pool sizes and the
    shared metrics directory once, then the workers until SIGTERM/SIGINT. An embedded
    PostgreSQL this command started is stopped when the set has stopped."""
    import shutil
    import tempfile

    from spendguard_proxy.server.supervisor import Supervisor, WorkersFailed

    started: list = []
    dsn = _resolve_dsn_noting_start(settings, started)
    try:
        _migrate(settings, dsn)
        settings = _size_pools(settings, dsn, workers)
        metrics_dir = tempfile.mkdtemp(prefix="spendguard-metrics-")
        # prometheus-client reads it at import: the workers (and their forkserver) find it in their
        # environment and keep their counters in files there, which /metrics sums.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        try:
            supervisor = Supervisor(settings, dsn, sock.getsockname()[1], workers, metrics_dir)
            supervisor.run(on_ready=lambda: print(line, flush=True))
        except WorkersFailed as exc:
            raise CliError(str(exc)) from None
        finally:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    finally:
        if started:
            _stop_embedded(settings)
    return 0


def _resolve_dsn_noting_start(settings: Settings, started: list) -> str:
    """The DSN, as ``resolve_dsn``; an embedded server started here is appended to
    ``started`` (the set stops it when it stops)."""
    import sys

    from spendguard_proxy.cli.session import connect_errors, where
    from spendguard_proxy.db.url import resolve_database_url

    def on_start(status) -> None:
        started.append(status)
        print(f"note: started the embedded PostgreSQL in {status.pgdata} (pid {status.pid}); "
              "it stops when this server stops", file=sys.stderr)

    try:
        return resolve_database_url(settings, on_start=on_start)
    except connect_errors() as exc:
        raise CliError(f"Cannot start the database ({where(settings)}): {exc}") from None


def _stop_embedded(settings: Settings) -> None:
    import logging

    from spendguard_proxy.db.embedded import EmbeddedStopError, stop_embedded

    try:
        stop_embedded(settings.data_dir)
    except (EmbeddedStopError, OSError) as exc:
        logging.getLogger("spendguard.supervisor").error(
            "could not stop the embedded PostgreSQL (`spendguard db stop` stops it): %s", exc)


def _migrate(settings: Settings, dsn: str) -> None:
    from spendguard_proxy.cli.session import connect_errors, where
    from spendguard_proxy.db import pool as db

    try:
        db.upgrade(dsn)  # under an advisory lock: replicas may start together
    except connect_errors() as exc:
        raise CliError(f"Cannot reach the database ({where(settings)}): {exc}") from None


def _size_pools(settings: Settings, dsn: str, workers: int) -> Settings:
    """Each worker's pool, so that all of them fit the database (server/pool_sizing.py)."""
    import asyncio
    import logging

    from spendguard_proxy.cli.session import connect_errors, where
    from spendguard_proxy.server.pool_sizing import (
        PoolsDoNotFit,
        pool_max_per_worker,
        read_capacity,
    )

    log = logging.getLogger("spendguard.supervisor")
    if settings.database_pooler_url:
        log.info("database pools: %d workers x up to %d connections to PgBouncer (its "
                 "max_client_conn must fit them)", workers, settings.db_pool_max_size)
        return settings
    try:
        capacity = asyncio.run(read_capacity(dsn))
    except connect_errors() as exc:
        raise CliError(f"Cannot reach the database ({where(settings)}): {exc}") from None
    try:
        size = pool_max_per_worker(capacity, workers, settings.db_pool_max_size)
    except PoolsDoNotFit as exc:
        raise CliError(str(exc)) from None
    log.info("database pools: %d workers x up to %d connections (%s)", workers, size,
             capacity.describe())
    return settings.model_copy(update={"db_pool_max_size": size,
                                       "db_pool_min_size": min(settings.db_pool_min_size, size)})


def _bind(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A socket bound to host:port (listening starts with the server)."""
    from spendguard_proxy.server.serving import bind_socket

    try:
        return bind_socket(host, port, reuse_port=reuse_port)
    except OSError as exc:
        raise CliError(f"Cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _worker_count(value: str) -> int:
    """``--workers``: a number, or ``auto`` for one per CPU this process may run on."""
    if value == "auto":
        try:
            return max(1, min(MAX_WORKERS, len(os.sched_getaffinity(0))))
        except AttributeError:  # no sched_getaffinity (macOS)
            return max(1, min(MAX_WORKERS, os.cpu_count() or 1))
    try:
        count = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {value!r}") from None
    if not 1 <= count <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_WORKERS}, got {count}")
    return count


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the proxy (migrates the database first)")
    p.add_argument("--host", help="listen address (default CAP_HOST, 127.0.0.1)")
    p.add_argument("--port", type=int, help="listen port (default CAP_PORT, 8787; 0: any free)")
    p.add_argument(
        "--workers", type=_worker_count, default=1, metavar="N|auto",
        help="worker processes sharing the port (SO_REUSEPORT), supervised and restarted by "
        "this one; auto: one per CPU (default 1: a single process)",
    )
    p.set_defaults(handler=_serve)
