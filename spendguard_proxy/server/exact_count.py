"""The provider's own input-token count, for calls whose bound-based hold does not fit.

Anthropic (``POST /v1/messages/count_tokens``) and Gemini (``POST .../models/{m}:countTokens``)
count a request's input exactly and free of charge. The relay asks only when the hold computed
from the input *bound* (tokens.py: up to one token per UTF-8 byte) does not fit the available
budget -- a tight budget or a huge prompt -- and then reserves by the provider's figure rather
than refusing: strict always, exact where it matters. ``CAP_EXACT_INPUT_COUNT=false`` turns
this off.

Any failure (network, timeout, provider error, an answer we cannot read) returns None: the
caller keeps its bound and answers 402 as before. The call costs one loopback-fast round trip
to the provider (measured against the fake provider in tests/relay/test_exact_count.py; a real
provider adds its own ~0.1-0.5 s), and only to calls that would otherwise be refused.

Anthropic documents its count as an estimate that "may differ by a small amount" from the
billed input, so its figure is returned with ANTHROPIC_SLACK added; Gemini's is returned as is.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import aiohttp
from aiohttp import web

from spendguard_proxy.providers import base
from spendguard_proxy.server.keys import SETTINGS
from spendguard_proxy.server.upstream import session_for

log = logging.getLogger(__name__)

EXACT_COUNT_TIMEOUT_S = 5.0
ANTHROPIC_VERSION = "2023-06-01"
# count_tokens takes the prompt-shaping fields of a Messages request and refuses the others
# (max_tokens, stream, temperature, metadata, service_tier, ...).
_ANTHROPIC_FIELDS = (
    "model",
    "messages",
    "system",
    "tools",
    "tool_choice",
    "thinking",
    "mcp_servers",
    "context_management",
    "output_format",
    "output_config",
)
# Gemini: generateContentRequest carries everything that is input (systemInstruction, tools,
# cachedContent...); the request-level settings below are not accepted there.
_GEMINI_DROPPED = frozenset({"model", "serviceTier", "service_tier", "labels"})


def anthropic_slack(tokens: int) -> int:
    """What we add to Anthropic's count: 1% and 16 tokens."""
    return tokens // 100 + 16


async def exact_input_tokens(
    app: web.Application,
    adapter: Any,
    body: Mapping[str, Any],
    api_key: str | None,
    model: str,
    *,
    client_headers: Mapping[str, str] | None = None,
) -> int | None:
    """Input tokens ``body`` will be billed for, by the provider's own count, or None.

    ``adapter`` is the call's provider adapter (its ``pricing_provider`` picks the endpoint,
    its ``base_url_setting`` the URL); ``api_key`` the key the call itself will use;
    ``client_headers`` the client's request headers (anthropic-version and -beta are passed
    on, as for the call itself). None when the setting is off, the provider has no free
    count, or anything fails.
    """
    settings = app[SETTINGS]
    if not settings.exact_input_count or not api_key:
        return None
    provider = getattr(adapter, "pricing_provider", "")
    base_url = str(getattr(settings, adapter.base_url_setting, "")).rstrip("/")
    if provider == "anthropic":
        url, headers, payload = anthropic_count_request(base_url, body, api_key, client_headers or {})
    elif provider == "gemini":
        url, headers, payload = _gemini_request(base_url, body, api_key, model)
    else:
        return None
    try:
        answer = await asyncio.wait_for(
            _post(session_for(app, provider), url, headers, payload), EXACT_COUNT_TIMEOUT_S
        )
    except (TimeoutError, aiohttp.ClientError, OSError, ValueError, RuntimeError) as exc:
        log.warning("exact input count from %s failed: %r", provider, exc)
        return None
    if answer is None:
        return None
    key = "input_tokens" if provider == "anthropic" else "totalTokens"
    count = answer.get(key) if isinstance(answer, dict) else None
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        log.warning("exact input count from %s: unreadable answer", provider)
        return None
    return count + anthropic_slack(count) if provider == "anthropic" else count


async def _post(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], payload: bytes
) -> Any:
    async with session.post(url, headers=headers, data=payload) as response:
        text = await response.read()
        if response.status != 200:
            log.warning("exact input count: HTTP %s from %s", response.status, url.split("?")[0])
            return None
        return json.loads(text)


def anthropic_count_request(
    base_url: str, body: Mapping[str, Any], api_key: str, client_headers: Mapping[str, str]
) -> tuple[str, dict[str, str], bytes]:
    payload = {key: body[key] for key in _ANTHROPIC_FIELDS if key in body}
    headers = base.forwarded_headers(client_headers)
    headers.setdefault("anthropic-version", ANTHROPIC_VERSION)
    headers["content-type"] = "application/json"
    headers["x-api-key"] = api_key
    return f"{base_url}/v1/messages/count_tokens", headers, base.dump_json(payload)


def _gemini_request(
    base_url: str, body: Mapping[str, Any], api_key: str, model: str
) -> tuple[str, dict[str, str], bytes]:
    bare = model.removeprefix("models/")
    inner = {key: value for key, value in body.items() if key not in _GEMINI_DROPPED}
    payload = {"generateContentRequest": {"model": f"models/{bare}", **inner}}
    url = f"{base_url}/v1beta/models/{quote(bare, safe='-._~')}:countTokens"
    headers = {"content-type": "application/json", "x-goog-api-key": api_key}
    return url, headers, base.dump_json(payload)
