"""Free token-counting routes, passed through without a hold: Anthropic
``POST /v1/messages/count_tokens`` and Gemini ``POST …/models/{model}:countTokens``.

The provider does not bill them, so nothing is reserved; the agent header is still required
(and, in hosted mode, the tenant's key), so a count is always made on behalf of a known agent.
"""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from spendguard_proxy import ledger
from spendguard_proxy.errors import ProviderTimeout, ProviderUnavailable
from spendguard_proxy.providers import base
from spendguard_proxy.providers.registry import get_adapter
from spendguard_proxy.server.auth import tenant_of
from spendguard_proxy.server.bodies import read_json_object
from spendguard_proxy.server.exact_count import anthropic_count_request
from spendguard_proxy.server.keys import POOL, SETTINGS
from spendguard_proxy.server.relay import provider_key
from spendguard_proxy.server.upstream import session_for

# What goes back to the client from the provider's answer.
_ANSWER_HEADERS = ("content-type", "request-id", "x-request-id")


async def anthropic_count_tokens(request: web.Request, agent_id) -> web.Response:
    adapter = get_adapter("anthropic_messages")
    body = await _checked_body(request, agent_id)
    settings = request.app[SETTINGS]
    url, headers, payload = anthropic_count_request(
        settings.anthropic_base_url, body, provider_key(settings, adapter, request),
        request.headers,
    )
    return await _forward(request, "anthropic", url, headers, payload)


async def gemini_count_tokens(request: web.Request, agent_id, model: str) -> web.Response:
    adapter = get_adapter("gemini")
    body = await _checked_body(request, agent_id)
    settings = request.app[SETTINGS]
    bare = model.removeprefix("models/")
    url = f"{settings.gemini_base_url}/v1beta/models/{quote(bare, safe='-._~')}:countTokens"
    headers = {"content-type": "application/json",
               "x-goog-api-key": provider_key(settings, adapter, request) or ""}
    return await _forward(request, "gemini", url, headers, base.dump_json(body))


async def _checked_body(request: web.Request, agent_id) -> dict:
    await ledger.get_agent(request.app[POOL], tenant_of(request), agent_id)  # 404 if not ours
    return await read_json_object(request)


async def _forward(request: web.Request, provider: str, url: str, headers: dict[str, str],
                   payload: bytes) -> web.Response:
    settings = request.app[SETTINGS]
    try:
        async with session_for(request.app, provider).post(
            url, data=payload, headers=headers,
            timeout=_timeout(settings.upstream_first_byte_timeout_s),
        ) as upstream:
            answer = await upstream.read()
            kept = {k: v for k, v in upstream.headers.items() if k.lower() in _ANSWER_HEADERS}
            return web.Response(status=upstream.status, body=answer, headers=kept)
    except TimeoutError:
        raise ProviderTimeout("The provider did not answer the token count in time") from None
    except OSError as exc:
        raise ProviderUnavailable(f"Cannot reach the provider: {exc}") from None


def _timeout(seconds: float):
    import aiohttp

    return aiohttp.ClientTimeout(total=seconds)
