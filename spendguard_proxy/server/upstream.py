"""One pooled client session per provider family, made once per app (never per request).

Timeouts: connect, time to first byte (headers), and idle between chunks. There is no total
timeout: a long stream is fine as long as it keeps moving.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from spendguard_proxy.server.keys import SETTINGS, UPSTREAMS

FAMILIES = ("openai", "grok", "anthropic", "gemini")


def session_for(app: web.Application, family: str) -> aiohttp.ClientSession:
    return app[UPSTREAMS][family]


async def upstream_sessions(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    timeout = aiohttp.ClientTimeout(
        total=None,
        sock_connect=settings.upstream_connect_timeout_s,
        sock_read=settings.upstream_idle_timeout_s,
    )
    sessions = {}
    for family in FAMILIES:
        connector = aiohttp.TCPConnector(
            limit=settings.upstream_max_connections, ttl_dns_cache=300, keepalive_timeout=30
        )
        sessions[family] = aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            skip_auto_headers=("User-Agent",),
        )
    app[UPSTREAMS] = sessions
    yield
    for session in sessions.values():
        await session.close()
