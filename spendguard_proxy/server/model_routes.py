"""``GET /v1/models`` and ``/v1/models/{id}``: the models this SpendGuard can price.

Clients call these to check a connection or pick a model. OpenAI's SDKs and google-genai use
the same paths, so the answer takes Gemini's shape when the request is Gemini-style (an
``x-goog-api-key`` header, a ``pageSize``/``pageToken`` parameter, or the ``/v1beta`` prefix)
and OpenAI's otherwise. Only priced models are listed: anything else would be refused anyway.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from spendguard_proxy.errors import InvalidRequest, NotFound, UnknownModel
from spendguard_proxy.pricing.ratecard import RateCard
from spendguard_proxy.server.auth import requires
from spendguard_proxy.server.keys import PRICING

USE = "cap:use"
GEMINI_PAGE_SIZE_MAX = 1000
routes = web.RouteTableDef()


def _gemini_style(request: web.Request) -> bool:
    return (
        request.path.startswith("/v1beta/")
        or "x-goog-api-key" in request.headers
        or "pageSize" in request.query
        or "pageToken" in request.query
    )


@routes.get("/v1/models")
@routes.get("/v1beta/models")
@requires(USE)
async def list_models(request: web.Request) -> web.Response:
    table = request.app[PRICING].table
    if not _gemini_style(request):
        cards = list(table.entries())
        return web.json_response({"object": "list", "data": [_openai_model(c) for c in cards]})
    cards = [c for c in table.entries() if c.provider == "gemini"]
    size = _page_size(request.query.get("pageSize"))
    start = _page_start(request.query.get("pageToken"), len(cards))
    page = {"models": [_gemini_model(c) for c in cards[start:start + size]]}
    if start + size < len(cards):
        page["nextPageToken"] = str(start + size)
    return web.json_response(page)


@routes.get("/v1/models/{model}")
@routes.get("/v1beta/models/{model}")
@requires(USE)
async def get_model(request: web.Request) -> web.Response:
    table = request.app[PRICING].table
    name = request.match_info["model"].removeprefix("models/")
    providers = ("gemini",) if _gemini_style(request) else ("openai", "grok", "anthropic",
                                                              "gemini")
    for provider in providers:
        try:
            card = table.lookup(provider, name)
        except UnknownModel:
            continue
        if _gemini_style(request):
            return web.json_response(_gemini_model(card, name))
        return web.json_response(_openai_model(card, name))
    raise NotFound(f"Model {name!r} is not priced by this SpendGuard")


def _openai_model(card: RateCard, name: str | None = None) -> dict[str, Any]:
    return {"id": name or card.model, "object": "model", "created": 0,
            "owned_by": card.provider}


def _gemini_model(card: RateCard, name: str | None = None) -> dict[str, Any]:
    model: dict[str, Any] = {
        "name": f"models/{name or card.model}",
        "baseModelId": card.model,
        "displayName": card.model,
        "supportedGenerationMethods": ["generateContent", "streamGenerateContent",
                                       "countTokens"],
    }
    if card.context_window:
        model["inputTokenLimit"] = card.context_window
    if card.max_output_tokens:
        model["outputTokenLimit"] = card.max_output_tokens
    return model


def _page_size(raw: str | None) -> int:
    if raw is None:
        return 50
    if not raw.isdigit() or not 1 <= int(raw) <= GEMINI_PAGE_SIZE_MAX:
        raise InvalidRequest(f"pageSize must be an integer from 1 to {GEMINI_PAGE_SIZE_MAX}")
    return int(raw)


def _page_start(raw: str | None, total: int) -> int:
    if raw is None or raw == "":
        return 0
    if not raw.isdigit() or int(raw) > total:
        raise InvalidRequest("pageToken is not one this server issued; start without it")
    return int(raw)
