"""Every ledger write commits with ``synchronous_commit`` on, whatever the connection's default.

A hold must be on disk before the provider is called. The setting is made inside each write's
own transaction (``SET LOCAL``: the database functions since migration 0005, the other writes in
``ledger.durable_transaction``), never by the connection: a transaction pooler refuses or drops
startup parameters. Here each write runs inside a transaction that starts with the setting off;
afterwards the transaction — whose COMMIT is what the setting governs — must see it on.
tests/pgbouncer/test_durability.py runs the same writes through PgBouncer with the database's
default set to off.
"""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from spendguard_proxy import ledger
from spendguard_proxy.ledger_batch import LedgerBatcher
from tests.ledger.helpers import T, new_agent, request

SETTLED = {"realized_microcents": 100, "input_tokens": 1, "output_tokens": 1,
           "termination_reason": "complete"}


async def _hold(db, agent_id) -> uuid.UUID:
    return (await ledger.reserve(db, request(agent_id), ttl_s=60)).hold_id


async def _two_holds(db, agent_id) -> tuple[uuid.UUID, uuid.UUID]:
    return await _hold(db, agent_id), await _hold(db, agent_id)


async def _expired_hold(db, agent_id) -> uuid.UUID:
    hold_id = await _hold(db, agent_id)
    await db.execute("UPDATE holds SET expires_at = now() - interval '1 hour' WHERE id = $1",
                     hold_id)
    return hold_id


async def _batched(conn, submit) -> None:
    batcher = LedgerBatcher(conn, ttl_s=60)
    try:
        await submit(batcher)
    finally:
        await batcher.close()


async def _no_setup(db, agent_id) -> None:
    return None


# name: (set-up committed beforehand, the write under test)
WRITES = {
    "create_agent": (_no_setup, lambda c, a, _: ledger.create_agent(c, T, "durable")),
    "rename_agent": (_no_setup, lambda c, a, _: ledger.rename_agent(c, T, a, "renamed")),
    "delete_agent": (_no_setup, lambda c, a, _: ledger.delete_agent(c, T, a)),
    "create_run": (_no_setup, lambda c, a, _: ledger.create_run(c, T, a)),
    "set_budget": (_no_setup, lambda c, a, _: ledger.set_budget(
        c, T, a, hard_limit_cents=100, topup_cents=1, concurrency=None)),
    "reserve": (_no_setup, lambda c, a, _: ledger.reserve(c, request(a), ttl_s=60)),
    "settle": (_hold, lambda c, a, hold: ledger.settle(c, a, hold, **SETTLED)),
    "heartbeat": (_hold, lambda c, a, hold: ledger.heartbeat(c, hold, ttl_s=60)),
    "sweep_expired_holds": (_expired_hold, lambda c, a, _: ledger.sweep_expired_holds(c)),
    "reserve_many": (_no_setup, lambda c, a, _: _batched(c, lambda b: asyncio.gather(
        b.reserve(request(a)), b.reserve(request(a))))),
    "settle_many": (_two_holds, lambda c, a, holds: _batched(c, lambda b: asyncio.gather(
        *(b.settle(a, hold, **SETTLED) for hold in holds)))),
}


async def synchronous_commit_after(pool, name: str) -> tuple[str, str]:
    """(the setting before, the setting after) the write ``name`` in one transaction that
    starts with the setting off (``SET LOCAL`` off unless the connection's default is off)."""
    setup, write = WRITES[name]
    agent_id = await new_agent(pool, limit_cents=100)
    prepared = await setup(pool, agent_id)
    async with pool.acquire() as conn, conn.transaction():
        if await conn.fetchval("SHOW synchronous_commit") != "off":
            await conn.execute("SET LOCAL synchronous_commit = off")
        before = await conn.fetchval("SHOW synchronous_commit")
        await write(conn, agent_id, prepared)
        return before, await conn.fetchval("SHOW synchronous_commit")


@pytest.mark.parametrize("name", sorted(WRITES))
async def test_every_ledger_write_commits_synchronously(pool, name):
    assert await synchronous_commit_after(pool, name) == ("off", "on")


async def test_set_local_in_a_function_body_reaches_the_commit_a_set_clause_does_not(dsn):
    """Why migration 0005 calls set_config(..., true) in the function bodies: a function's own
    SET clause restores the caller's value at function exit, before the COMMIT."""
    conn = await asyncpg.connect(dsn)  # temporary functions: not on a shared pool connection
    try:
        transaction = conn.transaction()
        await transaction.start()
        await conn.execute("SET LOCAL synchronous_commit = off")
        await conn.execute(
            "CREATE FUNCTION pg_temp.with_set_clause() RETURNS void LANGUAGE plpgsql"
            " SET synchronous_commit = on AS $$ BEGIN END $$")
        await conn.execute("SELECT pg_temp.with_set_clause()")
        assert await conn.fetchval("SHOW synchronous_commit") == "off"
        await conn.execute(
            "CREATE FUNCTION pg_temp.with_set_local() RETURNS void LANGUAGE plpgsql AS $$"
            " BEGIN PERFORM set_config('synchronous_commit', 'on', true); END $$")
        await conn.execute("SELECT pg_temp.with_set_local()")
        assert await conn.fetchval("SHOW synchronous_commit") == "on"
        await transaction.rollback()
    finally:
        await conn.close()


async def test_the_setting_ends_with_the_transaction(pool):
    """SET LOCAL leaves nothing on the connection (a pooler may hand it to anyone next)."""
    async with pool.acquire() as conn:
        default = await conn.fetchval("SHOW synchronous_commit")
        async with conn.transaction():
            await conn.execute("SET LOCAL synchronous_commit = off")
            agent_id = await new_agent(conn, limit_cents=10)
            await ledger.reserve(conn, request(agent_id), ttl_s=60)
        assert await conn.fetchval("SHOW synchronous_commit") == default
