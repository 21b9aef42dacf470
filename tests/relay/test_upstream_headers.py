"""What crosses the proxy in headers: provider answers are filtered to an allowlist, and in
hosted mode a tenant cannot pick the operator's organisation or project."""

from __future__ import annotations

import contextlib

import openai
from aiohttp import web

from spendguard_proxy.settings import Mode
from tests.conftest import running_proxy
from tests.relay.test_hosted import _client, _tenant_with_agent

LEAKY = {
    "Set-Cookie": "__cf_bm=secret; Path=/",
    "openai-organization": "org-operator",
    "openai-project": "proj_operator",
    "anthropic-organization-id": "org-anthropic",
    "x-ratelimit-remaining-requests": "4999",
    "x-request-id": "req_123",
    "openai-processing-ms": "12",
}
ANSWER = {"id": "c1", "object": "chat.completion", "created": 0, "model": "gpt-4o-mini",
          "choices": [{"index": 0, "finish_reason": "stop",
                       "message": {"role": "assistant", "content": "hi"}}],
          "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}}


@contextlib.asynccontextmanager
async def leaky_provider():
    seen: list[dict[str, str]] = []

    async def chat(request: web.Request) -> web.Response:
        seen.append({k.lower(): v for k, v in request.headers.items()})
        return web.json_response(ANSWER, headers=LEAKY)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/v1", seen
    finally:
        await runner.cleanup()


async def test_answer_headers_are_allowlisted_and_tenants_cannot_pick_the_org(relay_settings,
                                                                               dsn, pool):
    async with leaky_provider() as (base_url, seen):
        settings = relay_settings.model_copy(update={"mode": Mode.hosted,
                                                     "openai_base_url": base_url})
        key, agent_id = await _tenant_with_agent(pool)
        async with running_proxy(settings, dsn) as url, _client(url, key, agent_id) as client:
            raw = await client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                extra_headers={"OpenAI-Organization": "org-victim",
                               "OpenAI-Project": "proj_victim"})
    headers = {k.lower() for k in raw.headers}
    assert raw.parse().choices[0].message.content == "hi"
    assert {"x-request-id", "openai-processing-ms"} <= headers
    assert not headers & {"set-cookie", "openai-organization", "openai-project",
                          "anthropic-organization-id", "x-ratelimit-remaining-requests"}
    [upstream] = seen
    assert "openai-organization" not in upstream and "openai-project" not in upstream
    assert upstream["authorization"] == "Bearer sk-test-openai"  # the operator's key


async def test_sidecar_forwards_the_callers_own_org_header(relay_settings, dsn, budgeted_agent):
    async with leaky_provider() as (base_url, seen):
        settings = relay_settings.model_copy(update={"openai_base_url": base_url})
        agent_id = await budgeted_agent()
        headers = {"x-cynsta-agent-id": str(agent_id)}
        async with (
            running_proxy(settings, dsn) as url,
            openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0,
                               organization="org-mine", default_headers=headers) as client,
        ):
            await client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert seen[0]["openai-organization"] == "org-mine"
