"""Hosted mode on the provider routes: tenant keys from the SDKs, isolation, shared budgets."""

from __future__ import annotations

import asyncio
import uuid

import openai
import pytest

from spendguard_proxy import ledger, tenants
from spendguard_proxy.settings import Mode
from tests.conftest import running_proxy
from tests.invariants import assert_ledger_invariants
from tests.relay.helpers import charges


@pytest.fixture(scope="session")
async def hosted_urls(relay_settings, dsn):
    settings = relay_settings.model_copy(update={"mode": Mode.hosted})
    async with running_proxy(settings, dsn) as one, running_proxy(settings, dsn) as two:
        yield one, two


async def _tenant_with_agent(pool, limit_cents=100, concurrency="shared"):
    tenant = await tenants.create_tenant(pool, f"t-{uuid.uuid4().hex[:6]}")
    tenant_id = uuid.UUID(tenant["tenant_id"])
    key = (await tenants.create_key(pool, tenant_id, list(tenants.SCOPES)))["api_key"]
    agent = await ledger.create_agent(pool, tenant_id, "hosted")
    agent_id = uuid.UUID(agent["agent_id"])
    await ledger.set_budget(pool, tenant_id, agent_id, hard_limit_cents=limit_cents,
                            topup_cents=None, concurrency=concurrency)
    return key, agent_id


def _client(url, key, agent_id):
    return openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0,
                              default_headers={"x-cynsta-agent-id": str(agent_id)})


async def test_tenant_key_works_from_the_openai_sdk_and_never_goes_upstream(hosted_urls, pool,
                                                                            fake):
    key, agent_id = await _tenant_with_agent(pool)
    async with _client(hosted_urls[0], key, agent_id) as client:
        answer = await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content
    sent = fake.requests[-1]["headers"]
    assert sent["Authorization"] == "Bearer sk-test-openai"  # the deployment's key
    assert key not in str(fake.requests[-1])
    await charges(pool, agent_id)
    await assert_ledger_invariants(pool, agent_id)


async def test_other_tenants_agent_is_not_found_on_provider_routes(hosted_urls, pool, fake):
    key_a, _ = await _tenant_with_agent(pool)
    _, agent_b = await _tenant_with_agent(pool)
    bodies = []
    for target in (agent_b, uuid.uuid4()):
        async with _client(hosted_urls[0], key_a, target) as client:
            with pytest.raises(openai.NotFoundError) as info:
                await client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        bodies.append(info.value.body["message"].replace(str(target), "<id>"))
    assert bodies[0] == bodies[1]
    assert fake.requests == []
    no_key = openai.AsyncOpenAI(base_url=f"{hosted_urls[0]}/v1", api_key="wrong",
                                max_retries=0, default_headers={"x-cynsta-agent-id": str(agent_b)})
    async with no_key:
        with pytest.raises(openai.AuthenticationError):
            await no_key.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])


async def test_two_replicas_share_one_budget_without_overspend(hosted_urls, pool, fake):
    key, agent_id = await _tenant_with_agent(pool, limit_cents=3)
    fake.configure(words=200)
    statuses = []

    async def worker(url):
        async with _client(url, key, agent_id) as client:
            for _ in range(15):
                try:
                    await client.chat.completions.create(
                        model="gpt-4o", max_tokens=300,
                        messages=[{"role": "user", "content": "spend"}])
                    statuses.append(200)
                except openai.APIStatusError as exc:
                    statuses.append(exc.status_code)

    await asyncio.gather(*(worker(url) for url in hosted_urls for _ in range(4)))
    assert 402 in statuses and statuses.count(200) >= 5
    assert set(statuses) <= {200, 402}
    figures = await assert_ledger_invariants(pool, agent_id)
    assert figures["overrun"] == 0 and figures["charges"] <= 3_000_000
    billed = fake.billed.total("output_tokens")
    assert billed * 1000 <= figures["charges"]  # gpt-4o output: 1000 µ¢ per token
