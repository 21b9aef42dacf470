"""Serving the app: the one place where the listening socket and its limits are set up.

`spendguard serve`, `spendguard demo` and the tests' ``running_proxy`` all start the app
through ``start_site``, so the tests exercise what production runs. On top of aiohttp's own
server it adds what aiohttp 3.14 has no setting for (DESIGN §13, "slow clients"):

- **A deadline for reading a request** (``CAP_CLIENT_BODY_TIMEOUT_S``): from a connection's
  opening, or from the first byte of its next request, the headers and the whole body must
  arrive within that many seconds, plus one second per ``CAP_CLIENT_BODY_MIN_RATE_BYTES_PER_S``
  bytes received (Apache mod_reqtimeout's ``MinRate``). A total, not a per-read idle timeout:
  one byte every 20 s resets no clock, while a big body that keeps arriving at the minimum
  rate is never cut. Time during which the server itself holds the bytes back (its read
  buffer full, the handler not reading yet) does not count. Late headers close the connection;
  a late body fails the handler's read with ``ClientBodyTimeout`` (408, then the connection
  closes). Once the body is in, the deadline is off: answering (a long stream) takes as long
  as it takes. Idle keep-alive connections close after ``CAP_CLIENT_KEEPALIVE_TIMEOUT_S``.
- **A cap on open connections** (``CAP_CLIENT_MAX_CONNECTIONS``): a connection opened at the
  cap is answered 503 at once and closed; open ones keep working.
- **Parser errors that never echo the request**: aiohttp answers a malformed request line or
  header with the parser's message, which quotes the offending line (an ``x-api-key`` header
  with a NUL byte would come back whole, and be logged in a traceback). Here the answer is a
  generic 400 and the log line names only the error's class. A body whose framing breaks half
  way (a bad chunk size), which aiohttp leaves its handler waiting on, is a 400 at once.

It leans on aiohttp 3.14's ``RequestHandler`` internals (``_messages``, ``_ErrInfo``,
``_request_in_progress``, ``_reading_paused``); tests/ops/test_slow_clients.py and
test_malformed_requests.py pin the behaviour.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from typing import Any, cast

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMethod
from aiohttp.web_protocol import RequestHandler, _ErrInfo  # _ErrInfo: a parse error

from spendguard_proxy.errors import InvalidRequest, SpendGuardError
from spendguard_proxy.server.middlewares import (
    MALFORMED_REQUEST,
    ClientBodyTimeout,
    MalformedBody,
)
from spendguard_proxy.settings import Settings

log = logging.getLogger(__name__)

__all__ = ["MALFORMED_REQUEST", "make_runner", "start_site"]

BUSY_LOG_INTERVAL_S = 10.0  # at most one "connection cap reached" warning per interval


class ServerBusy(SpendGuardError):
    status = 503
    type = "server_busy"


def _raw_response(status_line: str, err: SpendGuardError, extra: str = "") -> bytes:
    body = json.dumps(err.body()).encode()
    head = (f"HTTP/1.1 {status_line}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{extra}Connection: close\r\n\r\n")
    return head.encode() + body


_BUSY_RESPONSE = _raw_response(
    "503 Service Unavailable",
    ServerBusy("Too many open connections to this SpendGuard process; retry shortly "
               "(the cap is CAP_CLIENT_MAX_CONNECTIONS)"),
    "Retry-After: 1\r\n",
)


class _Handler(RequestHandler):
    """aiohttp's HTTP/1.1 protocol with a read deadline, the connection cap and quiet errors."""

    __slots__ = ("_sg_bytes", "_sg_payload", "_sg_started", "_sg_timer")

    def __init__(self, manager: _Server, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._sg_started: float | None = None  # when reading the current request began
        self._sg_bytes = 0  # bytes received since then
        self._sg_payload: Any = None  # the body stream of the last request parsed
        self._sg_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        server = self._manager
        assert isinstance(server, _Server)
        if server.open_connections >= server.max_connections:
            self._manager = None  # never registered: connection_lost has nothing to undo
            self._force_close = True
            server.refused(transport)
            return
        super().connection_made(transport)
        self._sg_begin()  # a new connection must send its request in time too

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._sg_timer is not None:
            self._sg_timer.cancel()
            self._sg_timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._force_close or self._close:
            return  # aiohttp ignores what arrives on a closing connection; so do we
        if data and self._sg_started is None:
            self._sg_begin()  # the first bytes of the next request
        self._sg_bytes += len(data)
        queued = len(self._messages)
        super().data_received(data)
        if len(self._messages) > queued:
            message, payload = self._messages[-1]
            reading = self._sg_payload
            if isinstance(message, _ErrInfo) and reading is not None and not reading.is_eof():
                # A body that turned malformed half way (a bad chunk size): aiohttp queues a
                # 400 behind the request but leaves its handler waiting for the rest forever.
                log.info("malformed HTTP request body from %s: %s", _peer(self.transport),
                         type(message.exc).__name__)
                self._sg_fail(reading, MalformedBody())
                return
            self._sg_payload = payload
        if self._sg_payload is not None and self._sg_payload.is_eof():
            self._sg_started = None  # headers and body are in: no deadline until the next one

    def _sg_begin(self) -> None:
        self._sg_started = self._loop.time()
        self._sg_bytes = 0
        self._sg_payload = None
        if self._sg_timer is None:
            self._sg_timer = self._loop.call_at(
                self._sg_started + self._sg_server().body_timeout_s, self._sg_check)

    def _sg_server(self) -> _Server:
        server = self._manager
        assert isinstance(server, _Server)
        return server

    def _sg_check(self) -> None:
        self._sg_timer = None
        if self._sg_started is None or self.transport is None or self._manager is None:
            return
        server = self._sg_server()
        now = self._loop.time()
        if self._reading_paused or getattr(self, "_buffer_paused", False):  # 3.14 has both
            # The server holds the bytes back (its handler is not reading yet): not the
            # client's delay. Give the client a fresh window once reading resumes.
            self._sg_started, self._sg_bytes = now, 0
        deadline = (self._sg_started + server.body_timeout_s
                    + self._sg_bytes / server.body_min_rate_bytes_per_s)
        if now < deadline:
            self._sg_timer = self._loop.call_at(deadline, self._sg_check)
            return
        what = "headers" if self._sg_payload is None else f"body ({self._sg_bytes} bytes in)"
        log.info("request %s from %s not received within CAP_CLIENT_BODY_TIMEOUT_S",
                 what, _peer(self.transport))
        self._sg_fail(self._sg_payload, ClientBodyTimeout())

    def _sg_fail(self, payload: Any, exc: Exception) -> None:
        """Stop reading this connection. A handler reading ``payload`` gets ``exc`` (which the
        errors middleware answers), then the connection closes; without one it closes now."""
        self._sg_started = None
        if payload is None or not self._request_in_progress:
            self.force_close()  # headers incomplete, or a body nobody reads (aiohttp drains it)
            return
        self.close()  # no further request on this connection, nor bytes fed to the parser
        payload.set_exception(exc)
        payload.feed_eof()  # so aiohttp does not linger reading a body that will not come

    def handle_error(
        self,
        request: Any,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status != 400:
            return super().handle_error(request, status, exc, message)
        # A request aiohttp could not parse. The parser's message quotes the offending bytes
        # (a header line with its value), so neither the answer nor the log carries it.
        # Non-HTTP bytes on a fresh connection (a TLS hello, a port scan) are routine noise.
        noise = self._request_count == 1 and isinstance(exc, BadHttpMethod)
        level = logging.DEBUG if noise else logging.INFO
        log.log(level, "malformed HTTP request from %s: %s", _peer(self.transport),
                type(exc).__name__ if exc is not None else "unknown error")
        if request.writer.output_size > 0:
            raise ConnectionError("Response already started")
        response = web.json_response(InvalidRequest(MALFORMED_REQUEST).body(), status=400)
        response.force_close()
        return response


def _peer(transport: asyncio.BaseTransport | None) -> str:
    peer = transport.get_extra_info("peername") if transport is not None else None
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return "unknown peer"


class _Server(web.Server):
    """aiohttp's Server making ``_Handler``s and counting the connections they hold."""

    def __init__(self, base: web.Server, settings: Settings) -> None:
        super().__init__(
            base.request_handler,
            request_factory=base.request_factory,
            handler_cancellation=base.handler_cancellation,
            loop=base._loop,
            **base._kwargs,
        )
        self.max_connections = settings.client_max_connections
        self.body_timeout_s = settings.client_body_timeout_s
        self.body_min_rate_bytes_per_s = settings.client_body_min_rate_bytes_per_s
        self.open_connections = 0
        self._busy_logged_at = float("-inf")

    def __call__(self) -> RequestHandler:
        return _Handler(self, loop=self._loop, **self._kwargs)

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        self.open_connections += 1
        super().connection_made(handler, transport)

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        self.open_connections -= 1
        super().connection_lost(handler, exc)

    def refused(self, transport: asyncio.BaseTransport) -> None:
        now = self._loop.time()
        if now - self._busy_logged_at >= BUSY_LOG_INTERVAL_S:
            self._busy_logged_at = now
            log.warning("connection cap reached (%d open, CAP_CLIENT_MAX_CONNECTIONS); new "
                        "connections are answered 503", self.open_connections)
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        cast(asyncio.Transport, transport).write(_BUSY_RESPONSE)
        transport.close()


class _AppRunner(web.AppRunner):
    def __init__(self, app: web.Application, settings: Settings, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._settings = settings

    async def _make_server(self) -> web.Server:
        return _Server(await super()._make_server(), self._settings)


def make_runner(app: web.Application, settings: Settings) -> web.AppRunner:
    """An AppRunner whose connections follow the client limits of ``settings``."""
    return _AppRunner(
        app,
        settings,
        access_log=None,  # one JSON line per request is the app's job, never aiohttp's
        keepalive_timeout=settings.client_keepalive_timeout_s,
        # On SIGTERM: calls and streams in flight get this long before they are cancelled
        # (and settled either way).
        shutdown_timeout=settings.shutdown_grace_seconds,
    )


LISTEN_BACKLOG = 4096


async def start_site(
    app: web.Application,
    settings: Settings,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    sock: socket.socket | None = None,
) -> tuple[web.AppRunner, int]:
    """Start the app on ``sock`` (already bound) or on host:port (0: any free port).

    Returns the runner (``await runner.cleanup()`` stops it) and the port it listens on.
    """
    runner = make_runner(app, settings)
    await runner.setup()
    try:
        site: web.BaseSite
        # The kernel's accept queue, not aiohttp's 128: a burst of new connections (thousands
        # of agents starting streams at once) is queued instead of losing SYNs; the kernel
        # caps it at net.core.somaxconn.
        if sock is not None:
            site = web.SockSite(runner, sock, backlog=LISTEN_BACKLOG)
        else:
            site = web.TCPSite(runner, host, port, backlog=LISTEN_BACKLOG)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner, runner.addresses[0][1]
