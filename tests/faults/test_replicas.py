"""Three proxy processes, 64 concurrent clients, one shared agent, until its budget runs out.

Zero overspend: what was charged never exceeds what was credited, no call overran its hold, and
the ledger agrees token for token with what the fake provider itself counted and would bill.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter

import aiohttp

from tests.faults.conftest import (
    agent_headers,
    billed_microcents,
    chat_body,
    server_env,
)
from tests.invariants import assert_ledger_invariants

PROXIES = 3
CLIENTS = 64
MODEL = "gpt-4o"  # 250 ¢ / 1M input, 1000 ¢ / 1M output: a 5 ¢ budget lasts ~120 calls
BUDGET_CENTS = 5
MAX_TOKENS = 64
DEADLINE_S = 40
REFUSALS_TO_STOP = 3  # consecutive 402s (with a pause between) before a client gives up


async def test_three_proxies_64_clients_one_shared_budget_never_overspend(
    dsn, fake, faults_pool, budgeted_agent, servers, tmp_path
):
    agent_id = await budgeted_agent(limit_cents=BUDGET_CENTS, concurrency="shared")
    fake.configure(words=40)  # under max_tokens: a call costs ~40k µ¢, its hold ~66k µ¢
    env = server_env(dsn, fake, tmp_path / "data")
    proxies = await servers.start_many(env, PROXIES)
    statuses: Counter[int] = Counter()
    deadline = time.monotonic() + DEADLINE_S

    async def client(i: int, session: aiohttp.ClientSession) -> None:
        url = f"{proxies[i % PROXIES].url}/v1/chat/completions"
        refusals = 0
        while refusals < REFUSALS_TO_STOP and time.monotonic() < deadline:
            async with session.post(url, json=chat_body(model=MODEL, max_tokens=MAX_TOKENS),
                                    headers=agent_headers(agent_id)) as response:
                await response.read()
                statuses[response.status] += 1
            if response.status == 402:
                refusals += 1
                await asyncio.sleep(0.05)  # others' holds may still free money
            else:
                refusals = 0

    connector = aiohttp.TCPConnector(limit=CLIENTS)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(client(i, session) for i in range(CLIENTS)))

    assert set(statuses) <= {200, 402}, statuses
    assert statuses[200] > 20 and statuses[402] >= CLIENTS * REFUSALS_TO_STOP
    assert time.monotonic() < deadline, "the budget did not run out in time"

    figures = await assert_ledger_invariants(faults_pool, agent_id)
    assert figures["overrun"] == 0
    assert figures["credits"] == BUDGET_CENTS * 1_000_000
    assert figures["charges"] <= figures["credits"]
    assert await faults_pool.fetchval("SELECT count(*) FROM holds WHERE agent_id = $1",
                                      agent_id) == 0

    # The fake provider's own count agrees with the ledger, token for token.
    rows = await faults_pool.fetch(
        "SELECT input_tokens, output_tokens, realized_microcents, delta_microcents,"
        " termination_reason FROM ledger_entries WHERE agent_id = $1 AND kind = 'charge'",
        agent_id)
    assert len(rows) == statuses[200] == fake.billed.total("requests")
    assert {r["termination_reason"] for r in rows} == {"complete"}
    assert sum(r["input_tokens"] for r in rows) == fake.billed.total("input_tokens")
    assert sum(r["output_tokens"] for r in rows) == fake.billed.total("output_tokens")
    assert all(r["realized_microcents"] == -r["delta_microcents"] for r in rows)
    # Billed (priced from the fake's totals) ≤ charged (each call rounded up) ≤ credited.
    provider_bill = billed_microcents(fake, MODEL)
    assert provider_bill <= figures["charges"] <= figures["credits"]
    assert figures["charges"] - provider_bill < len(rows)  # at most 1 µ¢ rounding per call
    # The budget really ran out: what is left cannot pay for one more minimal call.
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{proxies[0].url}/v1/chat/completions",
                     json=chat_body(model=MODEL, max_tokens=MAX_TOKENS),
                     headers=agent_headers(agent_id)) as response,
    ):
        assert response.status == 402


async def test_hosted_two_proxies_of_two_workers_keep_tenants_apart_and_never_overspend(
    dsn, fake, faults_pool, servers, tmp_path
):
    """Issue 11's set-up: hosted mode, two `serve --workers 2` (four processes on two ports),
    one tenant's 64 clients on a shared budget until it runs out, another tenant probing it."""
    from spendguard_proxy import ledger, tenants

    keys = {}
    for name in ("owner", "other"):
        tenant = await tenants.create_tenant(faults_pool, f"workers-{name}")
        tenant_id = uuid.UUID(tenant["tenant_id"])
        keys[name] = (tenant_id, (await tenants.create_key(
            faults_pool, tenant_id, list(tenants.SCOPES)))["api_key"])
    owner_id, owner_key = keys["owner"]
    agent_id = uuid.UUID((await ledger.create_agent(faults_pool, owner_id, "shared"))["agent_id"])
    await ledger.set_budget(faults_pool, owner_id, agent_id, hard_limit_cents=BUDGET_CENTS,
                            concurrency="shared")
    fake.configure(words=40)
    env = server_env(dsn, fake, tmp_path / "data", CAP_MODE="hosted", CAP_KEY_CACHE_TTL_S="0")
    proxies = await servers.start_many(env, 2, workers=2)
    statuses: Counter[int] = Counter()
    deadline = time.monotonic() + DEADLINE_S
    owner = {**agent_headers(agent_id), "Authorization": f"Bearer {owner_key}"}
    other = {**agent_headers(agent_id), "Authorization": f"Bearer {keys['other'][1]}"}

    async def client(i: int, session: aiohttp.ClientSession) -> None:
        url = f"{proxies[i % 2].url}/v1/chat/completions"
        refusals = 0
        while refusals < REFUSALS_TO_STOP and time.monotonic() < deadline:
            async with session.post(url, json=chat_body(model=MODEL, max_tokens=MAX_TOKENS),
                                    headers=owner) as response:
                await response.read()
                statuses[response.status] += 1
            refusals = refusals + 1 if response.status == 402 else 0
            if i % 16 == 0:  # the other tenant, on the same agent id: never found
                async with session.get(f"{proxies[i % 2].url}/v1/agents/{agent_id}/budget",
                                       headers=other) as probe:
                    assert probe.status == 404

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CLIENTS)) as session:
        await asyncio.gather(*(client(i, session) for i in range(CLIENTS)))

    assert set(statuses) <= {200, 402}, statuses
    assert statuses[200] > 20 and time.monotonic() < deadline
    figures = await assert_ledger_invariants(faults_pool, agent_id)
    assert figures["overrun"] == 0 and figures["credits"] == BUDGET_CENTS * 1_000_000
    assert billed_microcents(fake, MODEL) <= figures["charges"] <= figures["credits"]
    assert await faults_pool.fetchval("SELECT count(*) FROM holds WHERE agent_id = $1",
                                      agent_id) == 0
