"""Provider routes (DESIGN §3): native ones keyed by headers, explicit run routes keyed by path.

Each route only works out who is calling for which agent and run and hands the body to the
relay with the adapter that speaks the provider's format.
"""

from __future__ import annotations

import hashlib
import uuid

from aiohttp import web

from spendguard_proxy.errors import InvalidRequest, NotFound
from spendguard_proxy.providers import reference as reference_shapes
from spendguard_proxy.providers.registry import get_adapter
from spendguard_proxy.server import count_routes
from spendguard_proxy.server.agents_seen import AGENTS_SEEN
from spendguard_proxy.server.auth import requires, tenant_of
from spendguard_proxy.server.bodies import parse_uuid, read_json_object, require_json
from spendguard_proxy.server.keys import POOL
from spendguard_proxy.server.relay import Call, relay

USE = "cap:use"
routes = web.RouteTableDef()


def _agent_from_headers(request: web.Request) -> tuple[uuid.UUID, uuid.UUID]:
    agent = request.headers.get("x-cynsta-agent-id")
    if not agent:
        raise InvalidRequest("Missing x-cynsta-agent-id header")
    run = request.headers.get("x-cynsta-run-id")
    return (
        parse_uuid(agent.strip(), "x-cynsta-agent-id"),
        parse_uuid(run.strip(), "x-cynsta-run-id") if run else uuid.uuid4(),
    )


def _agent_from_path(request: web.Request) -> tuple[uuid.UUID, uuid.UUID]:
    return (
        parse_uuid(request.match_info["agent_id"], "agent_id"),
        parse_uuid(request.match_info["run_id"], "run_id"),
    )


async def _call(request: web.Request, adapter_name: str, ids, **extra) -> Call:
    agent_id, run_id = ids
    require_json(request)
    # Who is calling for which agent is settled before a byte of the body is read.
    await request.app[AGENTS_SEEN].require(request.app[POOL], tenant_of(request), agent_id)
    raw = await request.read()
    body = await read_json_object(request)
    return Call(
        adapter=get_adapter(adapter_name),
        tenant_id=tenant_of(request),
        agent_id=agent_id,
        run_id=run_id,
        body=body,
        request_sha256=hashlib.sha256(raw).hexdigest(),
        **extra,
    )


def _openai_family(body_model: object, family: str) -> str:
    """xAI speaks OpenAI's format: a grok model on a native OpenAI route goes to xAI."""
    if isinstance(body_model, str) and body_model.startswith("grok"):
        return f"grok_{family}"
    return f"openai_{family}"


@routes.post("/v1/chat/completions")
@requires(USE)
async def native_chat(request: web.Request) -> web.StreamResponse:
    call = await _call(request, "openai_chat", _agent_from_headers(request))
    call.adapter = get_adapter(_openai_family(call.body.get("model"), "chat"))
    return await relay(request, call)


@routes.post("/v1/responses")
@requires(USE)
async def native_responses(request: web.Request) -> web.StreamResponse:
    call = await _call(request, "openai_responses", _agent_from_headers(request))
    call.adapter = get_adapter(_openai_family(call.body.get("model"), "responses"))
    return await relay(request, call)


@routes.post("/v1/embeddings")
@requires(USE)
async def native_embeddings(request: web.Request) -> web.StreamResponse:
    return await relay(request, await _call(request, "openai_embeddings",
                                            _agent_from_headers(request)))


@routes.post("/v1/messages/count_tokens")
@requires(USE)
async def native_count_tokens(request: web.Request) -> web.Response:
    agent_id, _ = _agent_from_headers(request)
    return await count_routes.anthropic_count_tokens(request, agent_id)


@routes.post("/v1/messages")
@requires(USE)
async def native_messages(request: web.Request) -> web.StreamResponse:
    return await relay(request, await _call(request, "anthropic_messages",
                                            _agent_from_headers(request)))


# google-genai 3.x calls /v1 by default; upstream always gets /v1beta, which accepts every
# v1 request (and the v1beta-only fields a v1beta client may send).
@routes.post("/v1/models/{model_action}")
@routes.post("/v1beta/models/{model_action}")
@requires(USE)
async def native_gemini(request: web.Request) -> web.StreamResponse:
    model, _, action = request.match_info["model_action"].rpartition(":")
    if action == "countTokens" and model:
        agent_id, _ = _agent_from_headers(request)
        return await count_routes.gemini_count_tokens(request, agent_id, model)
    if action not in ("generateContent", "streamGenerateContent") or not model:
        raise NotFound("No such route: use models/{model}:generateContent,"
                       " :streamGenerateContent or :countTokens")
    return await relay(request, await _call(
        request, "gemini", _agent_from_headers(request), model=model,
        stream=action == "streamGenerateContent",
    ))


_RUN_PREFIX = "/v1/agents/{agent_id}/runs/{run_id}"


def _explicit(path: str, adapter_name: str) -> None:
    @routes.post(_RUN_PREFIX + path)
    @requires(USE)
    async def handler(request: web.Request) -> web.StreamResponse:
        return await relay(request, await _call(request, adapter_name, _agent_from_path(request)))

    handler.__name__ = f"run_{adapter_name}"


_explicit("/openai/chat/completions", "openai_chat")
_explicit("/openai/responses", "openai_responses")
_explicit("/grok/chat/completions", "grok_chat")
_explicit("/grok/responses", "grok_responses")


@routes.post(_RUN_PREFIX + "/anthropic/messages")
@requires(USE)
async def run_anthropic_reference(request: web.Request) -> web.StreamResponse:
    call = await _call(request, "anthropic_messages", _agent_from_path(request))
    call.body = reference_shapes.anthropic_reference_to_native(call.body)
    if not call.body.get("stream"):
        call.shape_answer = reference_shapes.anthropic_native_to_reference
    return await relay(request, call)


@routes.post(_RUN_PREFIX + "/gemini/generateContent")
@requires(USE)
async def run_gemini_reference(request: web.Request) -> web.StreamResponse:
    call = await _call(request, "gemini", _agent_from_path(request))
    call.model, call.body, call.stream = reference_shapes.gemini_reference_to_native(call.body)
    if not call.stream:
        call.shape_answer = lambda answer, _breakdown: (
            reference_shapes.gemini_native_to_reference(answer)
        )
    return await relay(request, call)
