"""Two hosted replicas sharing one budget (tests/relay/test_hosted.py), their pools on the
pooler: no overspend."""

from __future__ import annotations

import pytest

from spendguard_proxy.settings import Mode
from tests.conftest import running_proxy
from tests.relay.test_hosted import test_two_replicas_share_one_budget_without_overspend  # noqa: F401


@pytest.fixture(scope="module")
async def hosted_urls(relay_settings, dsn, pooled_dsn, pgbouncer):
    settings = relay_settings.model_copy(update={
        "mode": Mode.hosted, "database_url": dsn, "database_pooler_url": pooled_dsn})
    before = pgbouncer.logins(dsn)
    async with running_proxy(settings, dsn) as one, running_proxy(settings, dsn) as two:
        # Each replica's pool opened its connections through the pooler.
        assert pgbouncer.logins(dsn) >= before + 2 * settings.db_pool_min_size
        yield one, two
