"""One worker of `spendguard serve --workers N`: a whole SpendGuard server in its own process.

The supervisor (server/supervisor.py) starts it with multiprocessing's "forkserver" context:
forked from a fresh interpreter that has loaded the tokenizer tables and modules
(server/worker_preload.py) but never the parent's state (an event loop, uvloop, asyncpg), so
nothing is inherited half-initialised. The worker binds the set's port with SO_REUSEPORT and builds the app as
`serve` does — its own pool, ledger batcher, key cache, pricing refresh and hold sweeper — with
its ``worker_id`` stamped on every hold it places, so the parent can end a dead worker's holds
at once (``ledger.end_worker_holds``) instead of leaving them to expire.

It talks to the parent over one socket pair: it sends ``("ready", pid)`` once it listens, or
``("failed", message)`` when it cannot start for a reason it can name in one line (the
parent's error then quotes it), and stops gracefully when the parent sends anything or goes away (EOF), as on SIGTERM. SIGINT is
ignored: a terminal's Ctrl-C reaches the whole process group, and the parent turns it into one
orderly SIGTERM per worker.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn

from spendguard_proxy.server.serving import (
    bind_socket,
    configure_logging,
    event_loop_factory,
    serve_until,
    stop_on_signals,
)

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from aiohttp import web

    from spendguard_proxy.settings import Settings

log = logging.getLogger("spendguard.worker")

EXIT_START_FAILED = 3  # could not bind or start: restarting it at once would fail the same way


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """What a worker needs, pickled to the worker process."""

    settings: Settings  # the pool size already divided among the workers
    dsn: str
    port: int  # the port the parent bound (resolved when CAP_PORT is 0)
    slot: int  # 1..N: which of the set this is, across restarts
    worker_id: str  # unique per process: stamped on its holds
    metrics_dir: str  # PROMETHEUS_MULTIPROC_DIR, shared by the set


def run_worker(spec: WorkerSpec, parent: Connection) -> None:
    """The worker process (the target of ``multiprocessing.Process``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    configure_logging()
    settings = spec.settings
    try:
        sock = bind_socket(settings.host, spec.port, reuse_port=True)
    except OSError as exc:
        _failed(parent, f"cannot listen on {settings.host}:{spec.port}: {exc.strerror or exc}")
    try:
        from spendguard_proxy.errors import SpendGuardError
        from spendguard_proxy.server.app import build_app
        from spendguard_proxy.server.metrics import share_metrics

        app = build_app(settings, spec.dsn, worker_id=spec.worker_id)
        share_metrics(app, spec.metrics_dir)
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            runner.run(_serve(app, settings, sock, parent))
    except SpendGuardError as exc:  # e.g. the pricing table failed to load: one line, no trace
        _failed(parent, exc.message)
    finally:
        sock.close()


def _failed(parent: Connection, message: str) -> NoReturn:
    try:
        parent.send(("failed", message))
    except OSError:  # the parent is gone: say it here at least
        log.error("%s", message)
    sys.exit(EXIT_START_FAILED)


async def _serve(app: web.Application, settings: Settings, sock, parent: Connection) -> None:
    stop = asyncio.Event()
    stop_on_signals(stop, (signal.SIGTERM,))
    # Readable means the parent wrote (it never does) or went away (EOF): stop either way, so a
    # supervisor killed with SIGKILL leaves no orphaned workers serving.
    asyncio.get_running_loop().add_reader(parent.fileno(), stop.set)

    def ready() -> None:
        parent.send(("ready", os.getpid()))

    await serve_until(app, settings, sock, stop, ready)
