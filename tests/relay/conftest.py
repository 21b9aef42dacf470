from __future__ import annotations

import functools

import pytest

from tests.conftest import running_proxy
from tests.ledger.helpers import new_agent


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
    return functools.partial(new_agent, pool)
