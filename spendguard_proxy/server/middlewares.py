"""Turning every failure into an HTTP answer, in one place (DESIGN §3's error body)."""

from __future__ import annotations

import asyncio
import logging
import re

import asyncpg
from aiohttp import web

from spendguard_proxy.errors import (
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


MALFORMED_REQUEST = "Malformed HTTP request"  # all a client learns of a request we cannot parse


class ClientBodyTimeout(Exception):
    """The client did not send its request body in time (server/runner.py sets it on the
    request's body stream, so the handler's read raises it)."""


class MalformedBody(Exception):
    """The request body broke HTTP framing half way, e.g. a bad chunk size (set like
    ClientBodyTimeout; the parser's own message would quote the bytes)."""


# What the client can fix, by SQLSTATE (class 22, data exceptions). The driver's own text
# quotes values and query arguments, so it goes to the log, never into an answer.
_DATA_ERROR_HINTS = {
    # asyncpg's own refusal to encode an argument ("invalid input for query argument $6: …
    # (value out of int64 range)") is a DataError with the generic class-22 SQLSTATE.
    "22000": "a number is out of range or a value has the wrong type",
    "22001": "a text is too long",
    "22003": "a number is out of range",
    "22021": "a text holds a character the database cannot store (such as a NUL byte)",
    "22P02": "a value has the wrong format",
    "22P05": "a text holds a character the database cannot store (such as a NUL byte)",
}


def _invalid_value(request: web.Request, exc: asyncpg.DataError) -> SpendGuardError:
    sqlstate = exc.sqlstate
    log.warning("database refused a value on %s %s: %s (SQLSTATE %s%s)", request.method,
                request.path, type(exc).__name__, sqlstate, _where(exc))
    hint = _DATA_ERROR_HINTS.get(sqlstate or "")
    return InvalidRequest("Invalid value in the request" + (f": {hint}" if hint else ""))


def _where(exc: asyncpg.DataError) -> str:
    """Where the refused value went, never the value: the messages quote it."""
    parts = []
    argument = re.search(r"query argument (\$\d+)", str(exc))  # asyncpg's encoder
    if argument:
        parts.append(f"argument {argument[1]}")
    if exc.__cause__ is not None:
        parts.append(type(exc.__cause__).__name__)
    for field in ("table_name", "column_name", "data_type_name", "constraint_name"):
        if value := getattr(exc, field, None):
            parts.append(f"{field}={value}")
    return "".join(f", {part}" for part in parts)


def error_response(exc: SpendGuardError) -> web.Response:
    return web.json_response(exc.body(), status=exc.status, headers=exc.headers())


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
    except (ClientBodyTimeout, MalformedBody) as exc:
        if isinstance(exc, MalformedBody):
            err = InvalidRequest(MALFORMED_REQUEST)
        else:
            err = InvalidRequest("Request body not received in time (CAP_CLIENT_BODY_TIMEOUT_S)")
            err.status = 408
        response = error_response(err)
        response.force_close()  # the rest of the body will not be read
        return response
    except asyncpg.DataError as exc:
        # Values the database refuses (out of range, bad text) are input errors, not bugs.
        return error_response(_invalid_value(request, exc))
    except DATABASE_DOWN as exc:
        log.warning("database unavailable on %s %s: %r", request.method, request.path, exc)
        return error_response(DatabaseUnavailable("Database unavailable; retry shortly"))
