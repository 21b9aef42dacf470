"""Tenants and their API keys (hosted mode).

A key is ``sk_cynsta_live_`` + 32 base62 characters from the OS CSPRNG. Only its SHA-256
digest and a short display prefix are stored; the key itself is shown once, at creation.
"""

from __future__ import annotations

import hashlib
import secrets
import string
import uuid
from datetime import datetime
from typing import Any

import asyncpg

from spendguard_proxy.errors import InvalidRequest, NotFound
from spendguard_proxy.ledger import durable_transaction

KEY_PREFIX = "sk_cynsta_live_"
KEY_BODY_LENGTH = 32
SCOPES = ("cap:admin", "cap:use")
_BASE62 = string.digits + string.ascii_letters

Db = asyncpg.Pool | asyncpg.Connection


def iso_time(ts: datetime | None) -> str | None:
    return ts.isoformat().replace("+00:00", "Z") if ts is not None else None


def generate_key() -> str:
    return KEY_PREFIX + "".join(secrets.choice(_BASE62) for _ in range(KEY_BODY_LENGTH))


def key_digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def looks_like_key(key: str) -> bool:
    body = key[len(KEY_PREFIX) :]
    return (
        key.startswith(KEY_PREFIX)
        and len(body) == KEY_BODY_LENGTH
        and all(c in _BASE62 for c in body)
    )


def parse_scopes(raw: str | None) -> list[str]:
    if raw is None:
        return list(SCOPES)
    scopes = sorted({s.strip() for s in raw.replace(" ", ",").split(",") if s.strip()})
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise InvalidRequest(f"Unknown scopes {unknown}; choose from {', '.join(SCOPES)}")
    return scopes


_TENANT_COLUMNS = (
    "id, name, created_at, monthly_ceiling_microcents, month_spent_microcents,"
    " month_held_microcents"
)


def _tenant_json(row: asyncpg.Record) -> dict[str, Any]:
    ceiling = row["monthly_ceiling_microcents"]
    return {
        "tenant_id": str(row["id"]),
        "name": row["name"],
        "created_at": iso_time(row["created_at"]),
        "monthly_ceiling_cents": ceiling // 1_000_000 if ceiling is not None else None,
        "month_spent_microcents": row["month_spent_microcents"] if ceiling is not None else None,
    }


def _key_json(row: asyncpg.Record, api_key: str | None = None) -> dict[str, Any]:
    out = {
        "key_id": str(row["id"]),
        "tenant_id": str(row["tenant_id"]),
        "prefix": row["prefix"],
        "scopes": list(row["scopes"]),
        "created_at": iso_time(row["created_at"]),
        "last_used_at": iso_time(row["last_used_at"]),
        "revoked_at": iso_time(row["revoked_at"]),
    }
    if api_key is not None:
        out["api_key"] = api_key
    return out


async def create_tenant(
    db: Db, name: str, monthly_ceiling_cents: int | None = None
) -> dict[str, Any]:
    tenant_id = uuid.uuid4()
    await db.execute("INSERT INTO tenants (id, name) VALUES ($1, $2)", tenant_id, name)
    if monthly_ceiling_cents is None:
        return _tenant_json(await db.fetchrow(
            f"SELECT {_TENANT_COLUMNS} FROM tenants WHERE id = $1", tenant_id))
    return await set_monthly_ceiling(db, tenant_id, monthly_ceiling_cents)


async def set_monthly_ceiling(
    db: Db, tenant_id: uuid.UUID, cents: int | None
) -> dict[str, Any]:
    """Set (None: remove) the most the tenant's agents may be charged per calendar month
    (UTC), enforced in every reserve from now on. What the month has already cost counts: the
    month's charges so far, and the live holds in full (their calls may still spend them)."""
    async with durable_transaction(db) as conn:
        row = await conn.fetchrow(
            "SELECT id FROM tenants WHERE id = $1 FOR NO KEY UPDATE", tenant_id
        )
        if row is None:
            raise NotFound(f"Tenant not found: {tenant_id}")
        await conn.execute(
            """
            WITH month AS (SELECT date_trunc('month', now() AT TIME ZONE 'UTC')
                                  AT TIME ZONE 'UTC' AS starts)
            UPDATE tenants t SET monthly_ceiling_microcents = $2::bigint * 1000000,
                   month_starts_at = month.starts,
                   month_spent_microcents = coalesce((
                       SELECT -sum(le.delta_microcents) FROM ledger_entries le
                         JOIN agents a ON a.id = le.agent_id
                        WHERE a.tenant_id = t.id AND le.created_at >= month.starts
                          AND le.kind IN ('charge', 'hold_expired')), 0)
                     + coalesce((SELECT sum(h.amount_microcents) FROM holds h
                                   JOIN agents a ON a.id = h.agent_id
                                  WHERE a.tenant_id = t.id AND h.tenant_id IS NULL), 0)
              FROM month WHERE t.id = $1
            """,
            tenant_id,
            cents,
        )
        return _tenant_json(await conn.fetchrow(
            f"SELECT {_TENANT_COLUMNS} FROM tenants WHERE id = $1", tenant_id))


async def list_tenants(db: Db) -> list[dict[str, Any]]:
    rows = await db.fetch(f"SELECT {_TENANT_COLUMNS} FROM tenants ORDER BY created_at, id")
    return [_tenant_json(r) for r in rows]


async def create_key(db: Db, tenant_id: uuid.UUID, scopes: list[str]) -> dict[str, Any]:
    key = generate_key()
    row = await db.fetchrow(
        "INSERT INTO api_keys (id, tenant_id, digest, prefix, scopes)"
        " SELECT $1, id, $3, $4, $5 FROM tenants WHERE id = $2 RETURNING *",
        uuid.uuid4(),
        tenant_id,
        key_digest(key),
        key[: len(KEY_PREFIX) + 4],
        scopes,
    )
    if row is None:
        raise NotFound(f"Tenant not found: {tenant_id}")
    return _key_json(row, api_key=key)


async def list_keys(db: Db, tenant_id: uuid.UUID | None = None) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT * FROM api_keys WHERE $1::uuid IS NULL OR tenant_id = $1"
        " ORDER BY created_at, id",
        tenant_id,
    )
    return [_key_json(r) for r in rows]


async def revoke_key(db: Db, key_id: uuid.UUID) -> dict[str, Any]:
    row = await db.fetchrow(
        "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1 RETURNING *",
        key_id,
    )
    if row is None:
        raise NotFound(f"API key not found: {key_id}")
    return _key_json(row)


_RESOLVE_KEY_SQL = """
WITH live AS (
    SELECT id, tenant_id, scopes, last_used_at FROM api_keys
    WHERE digest = $1 AND revoked_at IS NULL
), touched AS (
    UPDATE api_keys SET last_used_at = now()
    WHERE id IN (SELECT id FROM live
                 WHERE last_used_at IS NULL OR last_used_at < now() - interval '1 minute')
)
SELECT tenant_id, scopes FROM live
"""


async def resolve_key(db: Db, key: str) -> tuple[uuid.UUID, frozenset[str]] | None:
    """(tenant, scopes) of a live key; None when unknown or revoked. ``last_used_at`` moves at
    most once a minute, and an unknown key writes nothing: a flood of random keys is a flood
    of index reads, not of WAL flushes that legitimate calls would queue behind."""
    row = await db.fetchrow(_RESOLVE_KEY_SQL, key_digest(key))
    return (row["tenant_id"], frozenset(row["scopes"])) if row else None
