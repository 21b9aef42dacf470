"""Every failure path settles exactly once, and never for less than the provider may bill."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from spendguard_proxy.providers.openai_chat import ChatStreamCounter
from tests.conftest import running_proxy
from tests.invariants import assert_ledger_invariants
from tests.relay.helpers import agent_headers, charges, chat_body


async def _post(http, url, agent_id, body):
    async with http.post(f"{url}/v1/chat/completions", json=body,
                         headers=agent_headers(agent_id)) as r:
        return r.status, await r.read()


async def _full_hold_charged(pool, agent_id, reason):
    [row] = await charges(pool, agent_id)
    assert row["termination_reason"] == reason
    assert row["realized_microcents"] == row["wcec_microcents"] == -row["delta_microcents"]
    figures = await assert_ledger_invariants(pool, agent_id)
    assert figures["overrun"] == 0
    return row


async def test_upstream_disconnect_mid_stream(http, relay_url, pool, budgeted_agent, fake):
    agent_id = await budgeted_agent()
    fake.configure(disconnect_after=3, words=50)
    status, raw = await _post(http, relay_url, agent_id, chat_body(stream=True))
    assert status == 200 and raw.count(b"data:") >= 3 and b"[DONE]" not in raw
    await _full_hold_charged(pool, agent_id, "upstream_disconnect")


async def test_slow_first_byte_is_504_and_charges_the_hold(http, relay_url, pool,
                                                           budgeted_agent, fake):
    agent_id = await budgeted_agent()
    fake.configure(first_byte_delay_ms=3000)
    status, raw = await _post(http, relay_url, agent_id, chat_body())
    assert status == 504 and b"provider_timeout" in raw
    await _full_hold_charged(pool, agent_id, "upstream_timeout")


async def test_idle_stream_times_out_and_charges_the_hold(http, relay_url, pool,
                                                          budgeted_agent, fake):
    agent_id = await budgeted_agent()
    fake.configure(delay_ms=3000, words=3)
    status, raw = await _post(http, relay_url, agent_id, chat_body(stream=True))
    assert status == 200 and b"[DONE]" not in raw
    await _full_hold_charged(pool, agent_id, "upstream_idle_timeout")


async def test_upstream_5xx_is_passed_through_and_voided(http, relay_url, pool,
                                                         budgeted_agent, fake):
    agent_id = await budgeted_agent()
    fake.configure(status=503)
    status, raw = await _post(http, relay_url, agent_id, chat_body(stream=True))
    assert status == 503 and b"error" in raw
    [row] = await charges(pool, agent_id)
    assert row["delta_microcents"] == 0 and row["realized_microcents"] == 0
    await assert_ledger_invariants(pool, agent_id)


async def test_missing_usage_charges_the_full_hold(http, relay_url, pool, budgeted_agent, fake):
    agent_id = await budgeted_agent()
    fake.configure(omit_usage=True)
    status, _ = await _post(http, relay_url, agent_id, chat_body())
    assert status == 200
    await _full_hold_charged(pool, agent_id, "usage_missing")


async def test_client_disconnect_cancels_the_upstream(relay_url, pool, budgeted_agent, fake):
    agent_id = await budgeted_agent()
    fake.configure(endless=True, delay_ms=20)
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{relay_url}/v1/chat/completions", json=chat_body(stream=True),
                                headers=agent_headers(agent_id)) as r:
            await r.content.readany()
    await _full_hold_charged(pool, agent_id, "client_disconnect")
    generated = fake.billed.total("output_tokens")
    await asyncio.sleep(0.3)  # 15 more words at 20 ms each if the upstream were still open
    assert fake.billed.total("output_tokens") <= generated + 1, "upstream kept generating"


async def test_exception_inside_the_proxy_still_settles(http, relay_url, pool, budgeted_agent,
                                                       fake, monkeypatch):
    agent_id = await budgeted_agent()
    fake.configure(words=20)
    calls = {"n": 0}
    original = ChatStreamCounter.events

    def exploding_events(self, chunk):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("bug in the proxy")
        return original(self, chunk)

    monkeypatch.setattr(ChatStreamCounter, "events", exploding_events)
    with pytest.raises(aiohttp.ClientPayloadError):
        await _post(http, relay_url, agent_id, chat_body(stream=True))
    await _full_hold_charged(pool, agent_id, "upstream_disconnect")


async def test_unreachable_provider_is_502_and_charges_nothing(relay_settings, dsn, pool,
                                                               budgeted_agent):
    settings = relay_settings.model_copy(update={"openai_base_url": "http://127.0.0.1:9/v1"})
    agent_id = await budgeted_agent()
    async with running_proxy(settings, dsn) as url, aiohttp.ClientSession() as http:
        status, raw = await _post(http, url, agent_id, chat_body())
    assert status == 502 and b"provider_unavailable" in raw
    [row] = await charges(pool, agent_id)
    assert row["delta_microcents"] == 0
    await assert_ledger_invariants(pool, agent_id)
