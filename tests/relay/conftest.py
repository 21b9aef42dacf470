from __future__ import annotations

import uuid

import pytest

from spendguard_proxy import ledger
from spendguard_proxy.testing.fake_provider import run_fake_provider
from tests.conftest import running_proxy


@pytest.fixture(scope="session")
async def fake():
    async with run_fake_provider() as provider:
        yield provider


@pytest.fixture(autouse=True)
def _reset_fake(request):
    yield
    if "fake" in request.fixturenames:
        request.getfixturevalue("fake").reset()


@pytest.fixture(scope="session")
def relay_settings(settings, fake):
    return settings.model_copy(update={
        "openai_api_key": "sk-test-openai", "openai_base_url": fake.base_url_openai,
        "xai_api_key": "xai-test", "xai_base_url": fake.base_url_xai,
        "anthropic_api_key": "sk-ant-test", "anthropic_base_url": fake.base_url_anthropic,
        "gemini_api_key": "gem-test", "gemini_base_url": fake.base_url_gemini,
        "upstream_first_byte_timeout_s": 2.0, "upstream_idle_timeout_s": 2.0,
    })


@pytest.fixture(scope="session")
async def relay_url(relay_settings, dsn):
    async with running_proxy(relay_settings, dsn) as url:
        yield url


@pytest.fixture
def budgeted_agent(pool):
    async def make(limit_cents: int = 100, concurrency: str = "shared") -> uuid.UUID:
        agent = await ledger.create_agent(pool, ledger.LOCAL_TENANT_ID, "relay-test")
        agent_id = uuid.UUID(agent["agent_id"])
        await ledger.set_budget(pool, ledger.LOCAL_TENANT_ID, agent_id,
                                hard_limit_cents=limit_cents, topup_cents=None,
                                concurrency=concurrency)
        return agent_id

    return make
