"""Budget policies as clients meet them through the proxy (DESIGN §11): the official SDK sees
429 with Retry-After, 403 for a model outside the allowlist, 402 naming the group — and
nothing is held or charged for a refused call."""

from __future__ import annotations

import uuid

import openai
import pytest

from spendguard_proxy import groups, ledger
from tests.invariants import assert_ledger_invariants
from tests.relay.helpers import agent_headers, chat_body

T = ledger.LOCAL_TENANT_ID


def _client(url: str, agent_id) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0,
                              default_headers=agent_headers(agent_id))


async def _with_policy(pool, agent_id, limit_cents=100, **policy):
    await ledger.set_budget(pool, T, agent_id, hard_limit_cents=limit_cents, policy=policy)


async def test_rpm_limit_is_a_429_with_retry_after_for_the_sdk(relay_url, pool, budgeted_agent):
    agent_id = await budgeted_agent(limit_cents=100)
    await _with_policy(pool, agent_id, rpm_limit=1)
    async with _client(relay_url, agent_id) as client:
        await client.chat.completions.create(**chat_body(max_tokens=16))
        with pytest.raises(openai.RateLimitError) as refused:
            await client.chat.completions.create(**chat_body(max_tokens=16))
    response = refused.value.response
    assert 1 <= int(response.headers["retry-after"]) <= 60
    assert refused.value.body["type"] == "rate_limited"
    assert "rpm_limit" in refused.value.body["message"]
    figures = await assert_ledger_invariants(pool, agent_id)
    assert figures["entries"] == 2  # the top-up and the one call: the refusal left no trace


async def test_a_model_outside_the_allowlist_is_a_403_before_any_hold(
    relay_url, pool, budgeted_agent
):
    agent_id = await budgeted_agent(limit_cents=100)
    await _with_policy(pool, agent_id, allowed_models=["gpt-4o-mini*"])
    async with _client(relay_url, agent_id) as client:
        await client.chat.completions.create(**chat_body(max_tokens=16, model="gpt-4o-mini"))
        with pytest.raises(openai.PermissionDeniedError) as refused:
            await client.chat.completions.create(**chat_body(max_tokens=16, model="gpt-4o"))
    assert refused.value.body["type"] == "model_not_allowed"
    figures = await assert_ledger_invariants(pool, agent_id)
    assert figures["entries"] == 2


async def test_tpm_limit_clamps_max_tokens_sent_upstream(relay_url, pool, budgeted_agent, fake):
    agent_id = await budgeted_agent(limit_cents=100)
    await _with_policy(pool, agent_id, tpm_limit=200)
    async with _client(relay_url, agent_id) as client:
        await client.chat.completions.create(**chat_body(max_tokens=4000))
    # 200 tokens a minute, less the input estimate: what the provider was asked for.
    assert 0 < fake.requests[-1]["body"]["max_tokens"] < 200
    await assert_ledger_invariants(pool, agent_id)


async def test_an_exhausted_group_is_a_402_that_names_it(relay_url, pool, budgeted_agent):
    group = await groups.create_group(pool, T, name="tiny", hard_limit_cents=1)
    agent_id = await budgeted_agent(limit_cents=100)
    await _with_policy(pool, agent_id, group_id=uuid.UUID(group["group_id"]))
    async with _client(relay_url, agent_id) as client:
        with pytest.raises(openai.APIStatusError) as refused:
            await client.chat.completions.create(**chat_body(max_tokens=16, model="gpt-4-32k",
                                                             messages=[{"role": "user",
                                                                        "content": "x " * 3000}]))
    assert refused.value.status_code == 402
    assert "budget group" in refused.value.body["message"]
