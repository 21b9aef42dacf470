"""Input SpendGuard cannot see (a stored conversation) is held at the model's whole context
window: a fixed allowance under-reserved gpt-4.1's 1M-token context eightfold."""

from __future__ import annotations

import openai
import pytest

from spendguard_proxy.pricing.sources import load_bundled
from tests.invariants import assert_ledger_invariants
from tests.relay.helpers import charges


def _client(url, agent_id):
    return openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0,
                              default_headers={"x-cynsta-agent-id": str(agent_id)})


async def test_stored_context_is_held_at_the_context_window(relay_url, pool, budgeted_agent):
    card = load_bundled().lookup("openai", "gpt-4.1")
    window_cost = card.context_window * card.resolve()["input_mtok"]  # µ¢
    agent_id = await budgeted_agent(limit_cents=1000)
    async with _client(relay_url, agent_id) as client:
        answer = await client.responses.create(model="gpt-4.1", input="and then?",
                                               previous_response_id="resp_earlier",
                                               max_output_tokens=16)
    assert answer.output_text
    [row] = await charges(pool, agent_id)
    assert row["wcec_microcents"] >= window_cost
    assert row["realized_microcents"] < row["wcec_microcents"]  # settled at the real usage
    await assert_ledger_invariants(pool, agent_id)


async def test_a_budget_below_the_window_is_refused_not_risked(relay_url, pool, budgeted_agent):
    agent_id = await budgeted_agent(limit_cents=50)  # gpt-4.1's 1M-token window costs 200 ¢
    async with _client(relay_url, agent_id) as client:
        with pytest.raises(openai.APIStatusError) as err:
            await client.responses.create(model="gpt-4.1", input="and then?",
                                          previous_response_id="resp_earlier")
    assert err.value.status_code == 402
    assert await charges(pool, agent_id) == []
