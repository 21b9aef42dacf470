"""litellm as a client (its SDK, not its proxy), unchanged but for ``api_base``, ``api_key``
and one extra header, on its OpenAI, Anthropic and Gemini providers, plain and streamed.

litellm runs in a child process (tests/clients/isolated.py): importing it changes
process-wide state. The child uses the async API; the sync one is the example in
references/routing-patterns.md, run by test_reference_snippets.py.
"""

from __future__ import annotations

import json

import pytest

from tests.clients.isolated import run_python
from tests.clients.ledger_check import assert_charged_as_billed, route_hits

# (litellm model, api_base after the proxy's URL, SpendGuard route the calls must arrive on)
ROUTES = [
    pytest.param("openai/gpt-4o-mini", "/v1", "/v1/chat/completions", id="openai"),
    pytest.param("anthropic/claude-haiku-4-5", "", "/v1/messages", id="anthropic"),
    # litellm's gemini provider appends models/{model}:… to api_base with no version segment.
    pytest.param("gemini/gemini-2.5-flash", "/v1beta", "/v1beta/models/{model_action}",
                 id="gemini"),
]

_CLIENT = """
import asyncio, json, sys
import litellm

async def main(options):
    answer = await litellm.acompletion(
        messages=[{"role": "user", "content": "Say hello"}], **options)
    stream = await litellm.acompletion(
        messages=[{"role": "user", "content": "Count to five"}], stream=True, **options)
    chunks = [chunk async for chunk in stream]
    print(json.dumps({
        "text": answer.choices[0].message.content,
        "output_tokens": answer.usage.completion_tokens,
        "chunks": len(chunks),
        "streamed": "".join(c.choices[0].delta.content or "" for c in chunks if c.choices),
    }))

asyncio.run(main(json.loads(sys.argv[1])))
"""


@pytest.mark.parametrize(("model", "base_path", "route"), ROUTES)
async def test_completion_and_stream(relay_url, pool, budgeted_agent, fake, http,
                                     model, base_path, route):
    agent_id = await budgeted_agent()
    options = {"model": model, "api_base": relay_url + base_path, "api_key": "unused",
               "extra_headers": {"x-cynsta-agent-id": str(agent_id)}, "max_tokens": 64,
               "num_retries": 0}
    hits = await route_hits(http, relay_url, route)
    # litellm's lazily imported modules make pydantic warn: not an error of the calls.
    out = json.loads(await run_python(_CLIENT, {}, json.dumps(options),
                                      warnings_as_errors=False))
    assert out["text"] and out["output_tokens"] > 0
    assert out["chunks"] > 2 and out["streamed"].strip()
    rows = await assert_charged_as_billed(pool, agent_id, fake, calls=2)
    assert rows[0]["output_tokens"] == out["output_tokens"]
    assert await route_hits(http, relay_url, route, at_least=hits + 2) == hits + 2
