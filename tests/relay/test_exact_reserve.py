"""A hold that does not fit by the input *bound* is retried with the provider's exact count."""

from __future__ import annotations

import aiohttp
import pytest

from tests.conftest import running_proxy
from tests.invariants import assert_ledger_invariants
from tests.relay.helpers import charges

# ~24 KB of text: the byte bound says ~24k tokens (2.4 ¢ at claude-haiku-4-5's $1/M input),
# the fake provider counts ~5k. With a 1 ¢ budget only the exact count fits.
BODY = {"model": "claude-haiku-4-5", "max_tokens": 50,
        "messages": [{"role": "user", "content": "ledger " * 3400}]}


async def _call(http, url, agent_id):
    async with http.post(f"{url}/v1/messages", json=BODY,
                         headers={"x-cynsta-agent-id": str(agent_id)}) as r:
        return r.status, await r.json()


@pytest.mark.parametrize("exact", [True, False])
async def test_tight_budget_reserves_by_the_providers_count(relay_settings, dsn, pool,
                                                            budgeted_agent, exact):
    agent_id = await budgeted_agent(limit_cents=1)
    settings = relay_settings.model_copy(update={"exact_input_count": exact})
    async with running_proxy(settings, dsn) as url, aiohttp.ClientSession() as http:
        status, answer = await _call(http, url, agent_id)
    if not exact:
        assert status == 402, answer  # the bound alone does not fit: refused, nothing held
        assert await charges(pool, agent_id) == []
        return
    assert status == 200, answer
    [row] = await charges(pool, agent_id)
    assert row["input_tokens"] == answer["usage"]["input_tokens"]
    assert row["realized_microcents"] <= row["wcec_microcents"] <= 1_000_000
    figures = await assert_ledger_invariants(pool, agent_id)
    assert figures["overrun"] == 0
