"""The fault suite's multi-process tests with every `spendguard serve` on the pooler
(``CAP_DATABASE_POOLER_URL``; migrations stay on ``CAP_DATABASE_URL``, the direct connection):
three proxies and 64 clients on one shared budget, two hosted `--workers 2` sets, a kill -9
mid-stream, database connections killed mid-request (server connections behind the pooler)."""

from __future__ import annotations

import pytest

from tests.faults import test_crash, test_database_loss, test_replicas
from tests.faults.test_crash import (  # noqa: F401
    test_kill_9_mid_stream_charges_the_hold_in_full_on_expiry,
)
from tests.faults.test_database_loss import (  # noqa: F401
    test_killed_database_connections_give_503_not_500_and_lose_no_money,
)
from tests.faults.test_replicas import (  # noqa: F401
    test_hosted_two_proxies_of_two_workers_keep_tenants_apart_and_never_overspend,
    test_three_proxies_64_clients_one_shared_budget_never_overspend,
)


@pytest.fixture(autouse=True)
def _servers_on_the_pooler(monkeypatch, pgbouncer, pooled_dsn, dsn):
    """Every server the imported tests start gets CAP_DATABASE_POOLER_URL; afterwards the
    pooler must have seen their connections."""
    for module in (test_crash, test_database_loss, test_replicas):
        server_env = module.server_env

        def pooled_env(*args, _server_env=server_env, **kwargs):
            return {**_server_env(*args, **kwargs), "CAP_DATABASE_POOLER_URL": pooled_dsn}

        monkeypatch.setattr(module, "server_env", pooled_env)
    before = pgbouncer.logins(dsn)
    yield
    assert pgbouncer.logins(dsn) > before, "the servers did not use the pooler"
