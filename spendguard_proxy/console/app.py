"""The console as an aiohttp sub-application under ``/ui`` (DESIGN §12).

One middleware, for console paths only, does what every page needs: the Host allowlist,
same-origin posts, the session (sidecar: made on first visit; hosted: sign in first), the
CSRF token of every form, and errors as HTML pages (never a 500 for bad input). ``/v1``
routes never see any of it and never read the cookie.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp_jinja2
import jinja2
from aiohttp import web

from spendguard_proxy.console import guard, sessions
from spendguard_proxy.console.formatting import FILTERS
from spendguard_proxy.console.forms import FORM_BYTES_MAX
from spendguard_proxy.console.live import LedgerFeed
from spendguard_proxy.console.sessions import ConsoleSession
from spendguard_proxy.errors import (
    AuthenticationError,
    DatabaseUnavailable,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    RequestTooLarge,
    SpendGuardError,
)
from spendguard_proxy.ledger import LOCAL_TENANT_ID
from spendguard_proxy.server.keys import POOL, SETTINGS
from spendguard_proxy.server.middlewares import DATABASE_DOWN
from spendguard_proxy.settings import Mode, Settings

PREFIX = "/ui"
SESSION = web.RequestKey("console_session", ConsoleSession)
FEED = web.AppKey("console_feed", LedgerFeed)
ALLOWED_HOSTS = web.AppKey("console_allowed_hosts", frozenset)
LOGIN_PATH = PREFIX + "/login"
STATIC_PREFIX = PREFIX + "/static/"

_SECURITY_HEADERS = {
    # Inline SVG charts need no script; the one script and stylesheet are our own files.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
        " connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def cookie_name(request: web.Request, settings: Settings, base: str = "sg_console") -> str:
    """``__Host-`` (Secure, Path=/, no Domain: the browser pins it to this origin) when the
    console is served over HTTPS; browsers refuse that prefix on plain HTTP."""
    return f"__Host-{base}" if guard.is_https(request, settings) else base


def set_cookie(response: web.StreamResponse, request: web.Request, base: str, value: str,
               max_age: int) -> None:
    settings = request.config_dict[SETTINGS]
    response.set_cookie(
        cookie_name(request, settings, base), value, max_age=max_age, path="/",
        httponly=True, samesite="Strict", secure=guard.is_https(request, settings),
    )


def delete_cookie(response: web.StreamResponse, request: web.Request, base: str) -> None:
    settings = request.config_dict[SETTINGS]
    response.del_cookie(cookie_name(request, settings, base), path="/",
                        secure=guard.is_https(request, settings), httponly=True,
                        samesite="Strict")


def session_of(request: web.Request) -> ConsoleSession:
    return request[SESSION]


def tenant_of(request: web.Request) -> uuid.UUID:
    return request[SESSION].tenant_id


def is_hosted(request: web.Request) -> bool:
    return request.config_dict[SETTINGS].mode is Mode.hosted


def pool_of(request: web.Request):
    return request.config_dict[POOL]


async def form_of(request: web.Request) -> dict[str, str]:
    """The posted form as plain strings (one value per name; files are not accepted)."""
    if request.content_length is not None and request.content_length > FORM_BYTES_MAX:
        raise RequestTooLarge(f"Form too large (over {FORM_BYTES_MAX} bytes)")
    posted = await request.post()
    return {k: v for k, v in posted.items() if isinstance(v, str)}


def render(request: web.Request, template: str, context: dict[str, Any],
           status: int = 200) -> web.Response:
    session = request.get(SESSION)
    base = {
        "hosted": is_hosted(request),
        "session": session,
        "csrf_token": session.csrf_token if session else None,
        "path": request.path,
        "prefix": PREFIX,
    }
    return aiohttp_jinja2.render_template(template, request, {**base, **context}, status=status)


@web.middleware
async def console_middleware(request: web.Request, handler) -> web.StreamResponse:
    started = time.perf_counter()
    new_cookie: str | None = None
    try:
        new_cookie = await _admit(request)
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status >= 400:
            response = _error_page(request, _as_error(exc))
        else:  # a redirect, as a plain response (returning the exception is deprecated)
            response = web.Response(status=exc.status, headers=exc.headers)
            for name, morsel in exc.cookies.items():
                response.cookies[name] = morsel
    except SpendGuardError as exc:
        response = _error_page(request, exc)
    except DATABASE_DOWN:
        response = _error_page(request, DatabaseUnavailable("Database unavailable; retry shortly"))
    if not response.prepared:
        if new_cookie is not None:
            set_cookie(response, request, "sg_console", new_cookie,
                       request.config_dict[SETTINGS].console_session_ttl_s)
        if not request.path.startswith(STATIC_PREFIX):
            response.headers.update(_SECURITY_HEADERS)
            response.headers.setdefault("Cache-Control", "no-store")
        elapsed_ms = (time.perf_counter() - started) * 1000
        response.headers["Server-Timing"] = f"app;dur={elapsed_ms:.1f}"
    return response


async def _admit(request: web.Request) -> str | None:
    """Checks every console request passes before its handler; returns a new session's
    cookie value when one was just made (sidecar, first visit)."""
    settings = request.config_dict[SETTINGS]
    guard.check_host(request, settings, request.config_dict[ALLOWED_HOSTS])
    hosted = settings.mode is Mode.hosted
    if not hosted and not guard.is_loopback_peer(request):
        raise PermissionDenied(
            "The sidecar console answers only on loopback; use hosted mode (CAP_MODE=hosted)"
            " to sign in from elsewhere"
        )
    if request.path.startswith(STATIC_PREFIX):
        return None
    guard.check_same_origin(request, settings)
    pool = pool_of(request)
    cookie = request.cookies.get(cookie_name(request, settings))
    session = await sessions.lookup(pool, cookie, hosted=hosted)
    new_cookie = None
    if session is None and not hosted:
        new_cookie, session = await sessions.start(
            pool, LOCAL_TENANT_ID, None, ttl_s=settings.console_session_ttl_s
        )
    if session is not None:
        request[SESSION] = session
    if request.path == LOGIN_PATH:
        return new_cookie  # the sign-in form guards itself (before any session exists)
    if session is None:
        if request.method in guard.SAFE_METHODS:
            target = request.path_qs if request.path_qs.startswith(PREFIX + "/") else PREFIX + "/"
            raise web.HTTPSeeOther(f"{LOGIN_PATH}?next={quote(target, safe='')}")
        raise AuthenticationError("Sign in to the console first")
    if request.method not in guard.SAFE_METHODS:
        guard.check_csrf((await form_of(request)).get("csrf_token"), session.csrf_token)
    return new_cookie


def _as_error(exc: web.HTTPException) -> SpendGuardError:
    if exc.status == 404:
        return NotFound("No such page")
    if exc.status == 413:
        return RequestTooLarge("Form too large")
    err = InvalidRequest(exc.reason or "Bad request")
    err.status = exc.status
    return err


def _error_page(request: web.Request, exc: SpendGuardError) -> web.Response:
    return render(request, "error.html", {"error": exc, "title": f"Error {exc.status}"},
                  status=exc.status)


def _static_dir() -> Path:
    return Path(str(resources.files("spendguard_proxy.console") / "static"))


def _feed(parent: web.Application, interval_s: float):
    async def ctx(console: web.Application) -> AsyncIterator[None]:
        console[FEED] = LedgerFeed(lambda: parent[POOL], interval_s)
        yield
        await console[FEED].close()

    return ctx


def setup_console(app: web.Application) -> None:
    """Mount the console on ``app`` at /ui (call before the app starts)."""
    from spendguard_proxy.console import admin_pages, auth_pages, pages

    settings = app[SETTINGS]
    console = web.Application(middlewares=[console_middleware])
    console[SETTINGS] = settings
    console[ALLOWED_HOSTS] = guard.allowed_hosts(settings)
    env = aiohttp_jinja2.setup(
        console,
        loader=jinja2.PackageLoader("spendguard_proxy.console", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        filters=FILTERS,
    )
    env.globals["static"] = lambda name: f"{STATIC_PREFIX}{name}"
    console.router.add_static("/static", _static_dir())
    console.router.add_routes(pages.routes)
    console.router.add_routes(auth_pages.routes)
    console.router.add_routes(admin_pages.routes)
    console.cleanup_ctx.append(_feed(app, settings.console_poll_interval_s))

    async def close_streams(sub: web.Application) -> None:
        if FEED in sub:
            await sub[FEED].close()

    console.on_shutdown.append(close_streams)

    async def to_console(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(PREFIX + "/")

    app.router.add_get(PREFIX, to_console)
    app.add_subapp(PREFIX, console)
