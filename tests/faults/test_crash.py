"""kill -9 of a proxy mid-stream: its hold outlives it, expires, and is charged in full."""

from __future__ import annotations

import contextlib

import aiohttp

from tests.faults.conftest import (
    agent_headers,
    billed_microcents,
    chat_body,
    server_env,
    wait_for,
)
from tests.invariants import assert_ledger_invariants

TTL = {"CAP_LOCK_TTL_SECONDS": "3", "CAP_SWEEP_INTERVAL_SECONDS": "0.2"}


async def test_kill_9_mid_stream_charges_the_hold_in_full_on_expiry(
    dsn, fake, faults_pool, budgeted_agent, servers, tmp_path
):
    agent_id = await budgeted_agent(limit_cents=100)
    fake.configure(delay_ms=100, words=400)  # a slow 40 s stream: it will not finish
    env = server_env(dsn, fake, tmp_path / "data", **TTL)
    first = await servers.start(env, "doomed")

    async with aiohttp.ClientSession() as session:
        response = await session.post(f"{first.url}/v1/chat/completions",
                                      json=chat_body(stream=True, max_tokens=200),
                                      headers=agent_headers(agent_id))
        assert response.status == 200
        seen = b""
        while seen.count(b"data:") < 3:
            seen += await response.content.readany()
        [hold] = await faults_pool.fetch(
            "SELECT id, amount_microcents, max_output_tokens FROM holds WHERE agent_id = $1",
            agent_id)

        await first.kill9()
        with contextlib.suppress(aiohttp.ClientError):
            await response.read()  # the stream breaks off: no [DONE]
        response.close()

    # The dead proxy's hold is still there; a restarted proxy's sweeper charges it in full.
    assert await faults_pool.fetchval("SELECT count(*) FROM holds WHERE id = $1", hold["id"]) == 1
    second = await servers.start(env, "restarted")

    async def expired():
        return await faults_pool.fetchrow(
            "SELECT * FROM ledger_entries WHERE agent_id = $1 AND kind = 'hold_expired'",
            agent_id)

    row = await wait_for(expired, timeout_s=20)
    assert row is not None, f"the hold never expired:\n{second.log_tail()}"
    assert row["hold_id"] == hold["id"]
    assert row["delta_microcents"] == -hold["amount_microcents"]
    assert row["realized_microcents"] == row["wcec_microcents"] == hold["amount_microcents"]
    assert await faults_pool.fetchval("SELECT count(*) FROM holds WHERE agent_id = $1",
                                      agent_id) == 0
    figures = await assert_ledger_invariants(faults_pool, agent_id)
    assert figures["overrun"] == 0
    # What the provider generated before the crash is covered by the charge.
    assert billed_microcents(fake) <= hold["amount_microcents"]
    assert fake.billed.total("output_tokens") <= hold["max_output_tokens"]

    # The restarted proxy serves the next call normally.
    async with aiohttp.ClientSession() as session, session.post(
        f"{second.url}/v1/chat/completions", json=chat_body(max_tokens=16),
        headers=agent_headers(agent_id),
    ) as r:
        assert r.status == 200, await r.text()
    charges = await faults_pool.fetch(
        "SELECT termination_reason FROM ledger_entries WHERE agent_id = $1 AND kind = 'charge'",
        agent_id)
    assert [c["termination_reason"] for c in charges] == ["complete"]
    await assert_ledger_invariants(faults_pool, agent_id)
