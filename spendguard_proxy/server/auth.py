"""Who is calling: the built-in local tenant in sidecar mode, a tenant API key in hosted mode.

Handlers declare the scope they need with ``@requires(scope)``; routes without one are
public (/health, /ready, /metrics, /v1/public/pricing).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from aiohttp import web

from spendguard_proxy.errors import AuthenticationError, PermissionDenied
from spendguard_proxy.ledger import LOCAL_TENANT_ID
from spendguard_proxy.server.keys import POOL, SETTINGS
from spendguard_proxy.settings import Mode
from spendguard_proxy.tenants import looks_like_key, resolve_key

TENANT = web.RequestKey("tenant_id", uuid.UUID)
_SCOPE_ATTR = "__spendguard_scope__"
_CACHE_MAX_ENTRIES = 10_000


def requires(scope: str) -> Callable:
    def mark(handler: Callable) -> Callable:
        setattr(handler, _SCOPE_ATTR, scope)
        return handler

    return mark


def tenant_of(request: web.Request) -> uuid.UUID:
    return request[TENANT]


class KeyCache:
    """Key digest lookups cached for ``ttl_s`` per replica. A revoked key stops working within
    ``ttl_s`` everywhere. Misses are cached apart from live keys, so a flood of random keys
    fills (and clears) only the miss cache and never evicts the keys real tenants use."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._live: dict[str, tuple[float, tuple[uuid.UUID, frozenset[str]]]] = {}
        self._misses: dict[str, float] = {}

    async def lookup(self, pool, key: str) -> tuple[uuid.UUID, frozenset[str]] | None:
        now = time.monotonic()
        live = self._live.get(key)
        if live is not None and live[0] > now:
            return live[1]
        if self._misses.get(key, 0.0) > now:
            return None
        found = await resolve_key(pool, key)
        entries = self._live if found is not None else self._misses
        if len(entries) >= _CACHE_MAX_ENTRIES:
            entries.clear()
        if found is None:
            self._live.pop(key, None)
            self._misses[key] = now + self.ttl_s
        else:
            self._live[key] = (now + self.ttl_s, found)
        return found

    def holds(self, key: str) -> bool:
        """Whether ``key`` is cached as live (for tests and metrics)."""
        return key in self._live


KEY_CACHE = web.AppKey("key_cache", KeyCache)


def presented_key(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return request.headers.get("x-api-key") or request.headers.get("x-goog-api-key")


@web.middleware
async def auth_middleware(request: web.Request, handler) -> web.StreamResponse:
    scope = getattr(request.match_info.handler, _SCOPE_ATTR, None)
    if scope is None:
        return await handler(request)
    if request.app[SETTINGS].mode is Mode.sidecar:
        request[TENANT] = LOCAL_TENANT_ID
        return await handler(request)
    key = presented_key(request)
    if not key:
        raise AuthenticationError(
            "Missing API key: send it as 'Authorization: Bearer <key>' or 'x-api-key: <key>'"
        )
    if not looks_like_key(key):
        raise AuthenticationError("Malformed API key: expected sk_cynsta_live_ + 32 characters")
    found = await request.app[KEY_CACHE].lookup(request.app[POOL], key)
    if found is None:
        raise AuthenticationError("Invalid or revoked API key")
    tenant_id, scopes = found
    if scope not in scopes:
        raise PermissionDenied(f"This API key lacks the {scope} scope")
    request[TENANT] = tenant_id
    return await handler(request)
