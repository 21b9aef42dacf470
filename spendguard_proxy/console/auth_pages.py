"""Signing in (hosted) and out.

The sign-in form is guarded before any session exists: the post must come from the console's
own origin (checked by the middleware) and echo the random token of a short-lived HttpOnly
cookie set with the form (a double-submit token). A successful sign-in always starts a new
session — a session id planted before sign-in is never promoted — and ends the old one.
"""

from __future__ import annotations

import hmac
import secrets

from aiohttp import web

from spendguard_proxy.console import sessions
from spendguard_proxy.console.app import (
    LOGIN_PATH,
    PREFIX,
    SESSION,
    cookie_name,
    delete_cookie,
    form_of,
    is_hosted,
    pool_of,
    render,
    set_cookie,
)
from spendguard_proxy.console.forms import FormErrors
from spendguard_proxy.errors import PermissionDenied
from spendguard_proxy.server.keys import SETTINGS

routes = web.RouteTableDef()
LOGIN_COOKIE = "sg_login"
LOGIN_TOKEN_TTL_S = 3600


def _next(raw: str | None) -> str:
    """Only a console path: never another site (``//evil``, ``/\\evil``) after sign-in."""
    if raw and raw.startswith(PREFIX + "/") and "//" not in raw and "\\" not in raw:
        return raw
    return PREFIX + "/"


def _login_form(request: web.Request, errors: FormErrors, status: int = 200) -> web.Response:
    token = secrets.token_urlsafe(32)
    response = render(request, "login.html", {
        "title": "Sign in",
        "login_token": token,
        "next": _next(request.query.get("next")),
        "errors": errors,
    }, status=status)
    set_cookie(response, request, LOGIN_COOKIE, token, LOGIN_TOKEN_TTL_S)
    return response


@routes.get("/login")
async def login_page(request: web.Request) -> web.Response:
    if not is_hosted(request):
        raise web.HTTPSeeOther(PREFIX + "/")  # sidecar: no sign-in on loopback
    if SESSION in request:
        raise web.HTTPSeeOther(_next(request.query.get("next")))
    return _login_form(request, FormErrors())


@routes.post("/login")
async def login(request: web.Request) -> web.Response:
    if not is_hosted(request):
        raise web.HTTPSeeOther(PREFIX + "/")
    settings = request.config_dict[SETTINGS]
    form = await form_of(request)
    expected = request.cookies.get(cookie_name(request, settings, LOGIN_COOKIE), "")
    submitted = form.get("csrf_token", "")
    if not expected or not hmac.compare_digest(submitted.encode(), expected.encode()):
        raise PermissionDenied(
            "The sign-in form's CSRF token is missing or stale; reload the page and sign in again"
        )
    pool = pool_of(request)
    try:
        tenant_id, key_id = await sessions.admin_key(pool, form.get("api_key", ""))
    except sessions.SignInRefused as exc:
        status = 403 if "scope" in str(exc) else 401
        return _login_form(request, FormErrors(str(exc), {"api_key": str(exc)}), status=status)
    if SESSION in request:
        await sessions.end(pool, request[SESSION])
    cookie, _ = await sessions.start(pool, tenant_id, key_id,
                                     ttl_s=settings.console_session_ttl_s)
    response = web.HTTPSeeOther(_next(form.get("next")))
    set_cookie(response, request, "sg_console", cookie, settings.console_session_ttl_s)
    delete_cookie(response, request, LOGIN_COOKIE)
    raise response


@routes.post("/logout")
async def logout(request: web.Request) -> web.Response:
    await sessions.end(pool_of(request), request[SESSION])
    response = web.HTTPSeeOther(LOGIN_PATH if is_hosted(request) else PREFIX + "/")
    delete_cookie(response, request, "sg_console")
    raise response
