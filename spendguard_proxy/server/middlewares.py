"""Turning every failure into an HTTP answer, in one place (DESIGN §3's error body)."""

from __future__ import annotations

import asyncio
import logging

import asyncpg
from aiohttp import web

from spendguard_proxy.errors import (
    BudgetLocked,
    DatabaseUnavailable,
    InvalidRequest,
    NotFound,
    RequestTooLarge,
    SpendGuardError,
)

log = logging.getLogger(__name__)

# Errors that mean "the database cannot answer right now", never "your input is wrong".
DATABASE_DOWN = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    # asyncpg's state machine can trip over a connection the server killed mid-operation.
    asyncpg.exceptions.InternalClientError,
    ConnectionError,
    OSError,
    asyncio.TimeoutError,
)


def error_response(exc: SpendGuardError) -> web.Response:
    response = web.json_response(exc.body(), status=exc.status)
    if isinstance(exc, BudgetLocked):
        # The official openai and anthropic SDKs retry 409 twice by default (~1.4 s); a locked
        # budget stays locked for the other run's whole call, so tell them not to (both obey
        # `x-should-retry: false`, checked before their status rules).
        response.headers["x-should-retry"] = "false"
    return response


def _from_http_exception(exc: web.HTTPException) -> SpendGuardError:
    if exc.status == 413:
        return RequestTooLarge(
            "Request body too large; the limit is set by CAP_MAX_BODY_BYTES"
        )
    if exc.status == 404:
        return NotFound("No such route")
    err = InvalidRequest(exc.reason or "Bad request")
    err.status = exc.status
    return err


@web.middleware
async def errors_middleware(request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except SpendGuardError as exc:
        return error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(_from_http_exception(exc))
    except DATABASE_DOWN as exc:
        log.warning("database unavailable on %s %s: %r", request.method, request.path, exc)
        return error_response(DatabaseUnavailable("Database unavailable; retry shortly"))
    except asyncpg.DataError as exc:
        # Values the database refuses (out of range, bad text) are input errors, not bugs.
        return error_response(InvalidRequest(f"Invalid value: {exc}"))
