"""A flood of random, well-formed keys neither writes to the database nor evicts real keys."""

from __future__ import annotations

import secrets
import uuid

from spendguard_proxy import tenants
from spendguard_proxy.server import auth


def _random_key() -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return "sk_cynsta_live_" + "".join(secrets.choice(alphabet) for _ in range(32))


async def test_random_keys_cost_no_writes_and_keep_real_keys_cached(pool, monkeypatch):
    tenant = await tenants.create_tenant(pool, f"flood-{uuid.uuid4().hex[:6]}")
    key = (await tenants.create_key(pool, uuid.UUID(tenant["tenant_id"]),
                                    list(tenants.SCOPES)))["api_key"]
    monkeypatch.setattr(auth, "_CACHE_MAX_ENTRIES", 50)
    cache = auth.KeyCache(ttl_s=60)
    assert await cache.lookup(pool, key) is not None
    async with pool.acquire() as conn:
        await conn.execute("UPDATE api_keys SET last_used_at = NULL WHERE digest = $1",
                           tenants.key_digest(key))
        async with conn.transaction():  # a live key not used for a minute is marked: a write
            assert await auth.resolve_key(conn, key) is not None
            assert await conn.fetchval("SELECT txid_current_if_assigned()") is not None
        used = await conn.fetchval("SELECT last_used_at FROM api_keys WHERE digest = $1",
                                   tenants.key_digest(key))
        for _ in range(200):  # four times the cache bound
            async with conn.transaction():
                assert await auth.resolve_key(conn, _random_key()) is None
                # No transaction id was assigned: nothing written, no commit to flush.
                assert await conn.fetchval("SELECT txid_current_if_assigned()") is None
    for _ in range(200):
        assert await cache.lookup(pool, _random_key()) is None
    assert cache.holds(key)  # the misses never evicted the live key
    assert await cache.lookup(pool, key) is not None
    # Used again within the minute: no second write of last_used_at.
    await tenants.resolve_key(pool, key)
    assert await pool.fetchval("SELECT last_used_at FROM api_keys WHERE digest = $1",
                               tenants.key_digest(key)) == used
