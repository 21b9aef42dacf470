"""Two proxy processes, 64 concurrent clients, three agents drawing on one budget group, until
the group runs out (issue 12's "done when").

The group's 1,000 ¢ is the cap: the fake provider's own bill stays within it, both ledgers are
exact, and PostgreSQL saw no deadlock (one lock order: groups, then budgets by agent id).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter

import aiohttp

from spendguard_proxy import groups, ledger
from tests.faults.conftest import agent_headers, billed_microcents, chat_body, server_env
from tests.invariants import assert_group_invariants, assert_ledger_invariants

PROXIES = 2
CLIENTS = 64
AGENTS = 3
MODEL = "gpt-4-32k"  # 6,000 ¢ / 1M input, 12,000 ¢ / 1M output: ~0.5 ¢ a call
GROUP_CENTS = 1_000
AGENT_CENTS = 1_000_000  # the group, not the agents, is what runs out
MAX_TOKENS = 256
DEADLINE_S = 90
REFUSALS_TO_STOP = 3


async def _deadlocks(pool) -> int:
    return await pool.fetchval(
        "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
    )


async def test_two_proxies_64_clients_three_agents_one_group_never_exceed_it(
    dsn, fake, faults_pool, budgeted_agent, servers, tmp_path
):
    group = await groups.create_group(faults_pool, ledger.LOCAL_TENANT_ID, name="fleet",
                                      hard_limit_cents=GROUP_CENTS)
    group_id = uuid.UUID(group["group_id"])
    agents = []
    for _ in range(AGENTS):
        agent_id = await budgeted_agent(limit_cents=AGENT_CENTS, concurrency="shared")
        await ledger.set_budget(faults_pool, ledger.LOCAL_TENANT_ID, agent_id,
                                hard_limit_cents=AGENT_CENTS, policy={"group_id": group_id})
        agents.append(agent_id)
    fake.configure(words=120)
    deadlocks_before = await _deadlocks(faults_pool)
    proxies = await servers.start_many(server_env(dsn, fake, tmp_path / "data"), PROXIES)
    statuses: Counter[int] = Counter()
    deadline = time.monotonic() + DEADLINE_S

    async def client(i: int, session: aiohttp.ClientSession) -> None:
        url = f"{proxies[i % PROXIES].url}/v1/chat/completions"
        headers = agent_headers(agents[i % AGENTS])
        refusals = 0
        while refusals < REFUSALS_TO_STOP and time.monotonic() < deadline:
            async with session.post(url, json=chat_body(model=MODEL, max_tokens=MAX_TOKENS),
                                    headers=headers) as response:
                await response.read()
                statuses[response.status] += 1
            if response.status == 402:
                refusals += 1
                await asyncio.sleep(0.05)
            else:
                refusals = 0

    connector = aiohttp.TCPConnector(limit=CLIENTS)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(client(i, session) for i in range(CLIENTS)))

    assert set(statuses) <= {200, 402}, statuses
    assert statuses[200] > 100, statuses
    assert time.monotonic() < deadline, "the group did not run out in time"
    bill = billed_microcents(fake, MODEL)
    assert bill <= GROUP_CENTS * ledger.MICROCENTS_PER_CENT
    figures = await assert_group_invariants(faults_pool, group_id)
    assert figures["charges"] == bill  # the ledger agrees with the provider to the µ¢
    charged = 0
    for agent_id in agents:
        agent = await assert_ledger_invariants(faults_pool, agent_id)
        assert agent["overrun"] == 0
        charged += agent["charges"]
    assert charged == bill
    assert await faults_pool.fetchval("SELECT hold_count FROM budget_groups WHERE id = $1",
                                      group_id) == 0
    assert await _deadlocks(faults_pool) == deadlocks_before
