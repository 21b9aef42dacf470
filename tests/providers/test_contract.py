"""One contract over every adapter: preflight, build_upstream, the fake provider, usage.

This is the relay's path without the ledger: what the counter and usage_from_json report
must equal what the fake provider bills, and the estimate must cover its prompt count.
"""

from __future__ import annotations

import aiohttp
import pytest

from spendguard_proxy.providers.registry import ADAPTERS, get_adapter
from spendguard_proxy.testing.fake_provider import FakeProvider, prompt_tokens
from spendguard_proxy.usage import Usage

TEXT = "Explain 東京 in one line, with an emoji 🗼 and some code `x = [1, 2]`."
BODIES = {
    "openai_chat": {
        "model": "gpt-4o",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": TEXT}],
    },
    "grok_chat": {"model": "grok-4", "messages": [{"role": "user", "content": TEXT}]},
    "openai_responses": {"model": "gpt-4.1", "instructions": "Be brief.", "input": TEXT},
    "grok_responses": {"model": "grok-4", "input": [{"role": "user", "content": TEXT}]},
    "anthropic_messages": {
        "model": "claude-sonnet-4-6",
        "system": "Be brief.",
        "messages": [{"role": "user", "content": TEXT}],
    },
    "gemini": {"contents": [{"role": "user", "parts": [{"text": TEXT}]}]},
}
# Generating adapters; embeddings have no output to clamp or count (tests/relay/test_sdks.py).
GENERATING = sorted(name for name in ADAPTERS if name != "openai_embeddings")
CLIENT_HEADERS = {
    "Authorization": "Bearer client-secret",
    "x-api-key": "client-secret",
    "x-cynsta-agent-id": "agent-7",
}


def _base_url(fake: FakeProvider, name: str) -> str:
    return {
        "openai": fake.base_url_openai,
        "grok": fake.base_url_xai,
        "anthropic": fake.base_url_anthropic,
        "gemini": fake.base_url_gemini,
    }[ADAPTERS[name].pricing_provider]


async def _call(
    fake: FakeProvider, name: str, stream: bool, max_tokens: int, extra: dict[str, str]
) -> tuple[list[bytes], object, object]:
    adapter = get_adapter(name)
    model = "gemini-2.5-flash" if name == "gemini" else None
    body = {**BODIES[name], **({"stream": True} if stream and name != "gemini" else {})}
    preflight = adapter.preflight(body, model=model, stream=stream if name == "gemini" else None)
    url, headers, data = adapter.build_upstream(
        body,
        max_tokens=max_tokens,
        stream=stream,
        base_url=_base_url(fake, name),
        api_key="server-key",
        client_headers=CLIENT_HEADERS,
        model=preflight.model,
    )
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=data, headers={**headers, **extra}) as response,
    ):
        assert response.status == 200, await response.text()
        if not stream:
            return [], preflight, adapter.usage_from_json(await response.json(), preflight)
        counter = adapter.new_stream_counter(preflight)
        forwarded = []
        async for chunk in response.content.iter_any():
            forwarded += counter.feed(chunk)
            # A provider that honours the clamp never trips the relay's cutoff test.
            assert counter.output_tokens <= max_tokens
        forwarded += counter.finish()
        assert counter.done and counter.started_output
        assert counter.output_tokens >= counter.usage.output_tokens
        return forwarded, preflight, counter.usage


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("name", GENERATING)
async def test_usage_matches_what_the_provider_bills(
    fake: FakeProvider, name: str, stream: bool
) -> None:
    extra = {"x-fake-reasoning-tokens": "3", "x-fake-cached-tokens": "2"}
    forwarded, preflight, usage = await _call(fake, name, stream, 9, extra)
    assert isinstance(usage, Usage)
    billed = next(iter(fake.billed.models.values()))
    assert usage.input_tokens == billed["input_tokens"]
    assert usage.output_tokens == billed["output_tokens"] == 9  # 3 reasoning + 6 words
    assert usage.reasoning_tokens == 3
    assert usage.cached_input_tokens + usage.cache_read_tokens == 2
    assert preflight.input_tokens >= prompt_tokens(BODIES[name])
    seen = fake.requests[-1]
    assert "client-secret" not in str(seen["headers"]) and "agent-7" not in str(seen["headers"])
    if stream:
        assert forwarded


@pytest.mark.parametrize("name", GENERATING)
async def test_the_clamp_reaches_the_provider(fake: FakeProvider, name: str) -> None:
    _, _, usage = await _call(fake, name, False, 4, {"x-fake-words": "50"})
    assert usage.output_tokens == 4
    assert fake.billed.total("output_tokens") == 4


async def test_chat_usage_chunk_is_hidden_unless_asked(fake: FakeProvider) -> None:
    forwarded, _, usage = await _call(fake, "openai_chat", True, 50, {})
    assert usage.output_tokens == 20
    assert not any(b'"choices":[],"usage"' in event for event in forwarded)
    assert forwarded[-1] == b"data: [DONE]\n\n"
