"""Webhooks of a tenant: create, list, delete; a webhook's deliveries with their attempts.

Every query names the tenant: another tenant's webhook is "not found", like a random id. The
secret is returned by ``create_webhook`` only; the table keeps its ciphertext.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from spendguard_proxy.errors import InvalidRequest, NotFound
from spendguard_proxy.ledger import durable_transaction
from spendguard_proxy.webhooks.secret_box import SecretBox, generate_secret

Db = asyncpg.Pool | asyncpg.Connection

# Deleting a webhook ends its pending deliveries with this error.
DELETED_ERROR = "webhook deleted"


def iso_time(ts: datetime | None) -> str | None:
    return ts.isoformat().replace("+00:00", "Z") if ts is not None else None


def _webhook_json(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "webhook_id": str(row["id"]),
        "url": row["url"],
        "events": list(row["events"]) if row["events"] is not None else None,
        "created_at": iso_time(row["created_at"]),
    }


def _not_found(webhook_id: uuid.UUID) -> NotFound:
    return NotFound(f"Webhook not found: {webhook_id}")


async def create_webhook(
    db: Db,
    tenant_id: uuid.UUID,
    url: str,
    events: Sequence[str] | None,
    box: SecretBox,
    max_per_tenant: int,
) -> dict[str, Any]:
    """A new webhook and its signing secret (the only time the secret is shown). ``url`` and
    ``events`` are checked already (webhooks.validation)."""
    secret = generate_secret()
    webhook_id = uuid.uuid4()
    async with durable_transaction(db) as conn:
        # One creation per tenant at a time, so the count below cannot be raced past; an
        # advisory lock, not the tenant row, which the money paths lock.
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('spendguard.webhooks:' || $1, 0))",
            str(tenant_id),
        )
        live = await conn.fetchval(
            "SELECT count(*) FROM webhooks WHERE tenant_id = $1 AND deleted_at IS NULL",
            tenant_id,
        )
        if live >= max_per_tenant:
            raise InvalidRequest(f"This tenant already has {live} webhooks, the most allowed "
                                 f"({max_per_tenant}); delete one first")
        row = await conn.fetchrow(
            "INSERT INTO webhooks (id, tenant_id, url, events, secret_ciphertext)"
            " VALUES ($1, $2, $3, $4, $5) RETURNING id, url, events, created_at",
            webhook_id,
            tenant_id,
            url,
            list(events) if events is not None else None,
            box.seal(secret),
        )
    return {**_webhook_json(row), "secret": secret}


async def list_webhooks(db: Db, tenant_id: uuid.UUID) -> dict[str, Any]:
    rows = await db.fetch(
        "SELECT id, url, events, created_at FROM webhooks"
        " WHERE tenant_id = $1 AND deleted_at IS NULL ORDER BY created_at, id",
        tenant_id,
    )
    return {"webhooks": [_webhook_json(r) for r in rows]}


async def delete_webhook(db: Db, tenant_id: uuid.UUID, webhook_id: uuid.UUID) -> dict[str, Any]:
    """Hide the webhook and end its pending deliveries (kept, with their attempts, for audit).
    A delivery being posted right now still finishes; its outcome no longer changes it."""
    async with durable_transaction(db) as conn:
        found = await conn.fetchval(
            "UPDATE webhooks SET deleted_at = now()"
            " WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL RETURNING id",
            webhook_id,
            tenant_id,
        )
        if found is None:
            raise _not_found(webhook_id)
        await conn.execute(
            "UPDATE webhook_deliveries SET state = 'failed', last_error = $2"
            " WHERE webhook_id = $1 AND state = 'pending'",
            webhook_id,
            DELETED_ERROR,
        )
    return {"webhook_id": str(webhook_id), "deleted": True}


_DELIVERIES_SQL = """
SELECT d.id, d.event_id, e.type, e.data, e.created_at AS event_created_at, d.state,
       d.next_attempt_at, d.last_status, d.last_error, d.delivered_at, d.created_at
FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id
WHERE d.webhook_id = $1 AND ($2::bigint IS NULL OR d.id < $2)
ORDER BY d.id DESC LIMIT $3
"""

_ATTEMPTS_SQL = """
SELECT delivery_id, attempted_at, status_code, error, duration_ms FROM webhook_attempts
WHERE delivery_id = ANY($1::bigint[]) ORDER BY id
"""


async def list_deliveries(
    db: Db, tenant_id: uuid.UUID, webhook_id: uuid.UUID, *, limit: int, before: int | None
) -> dict[str, Any]:
    """A webhook's deliveries, newest first, each with its attempts (oldest first);
    ``next_before`` pages further back (null at the end)."""
    owned = await db.fetchval(
        "SELECT 1 FROM webhooks WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL",
        webhook_id,
        tenant_id,
    )
    if owned is None:
        raise _not_found(webhook_id)
    rows = await db.fetch(_DELIVERIES_SQL, webhook_id, before, limit)
    attempts: dict[int, list[dict[str, Any]]] = {r["id"]: [] for r in rows}
    if rows:
        for a in await db.fetch(_ATTEMPTS_SQL, list(attempts)):
            attempts[a["delivery_id"]].append({
                "attempted_at": iso_time(a["attempted_at"]),
                "status_code": a["status_code"],
                "error": a["error"],
                "duration_ms": a["duration_ms"],
            })
    deliveries = [_delivery_json(r, attempts[r["id"]]) for r in rows]
    next_before = deliveries[-1]["delivery_id"] if len(deliveries) == limit else None
    return {"webhook_id": str(webhook_id), "deliveries": deliveries, "next_before": next_before}


def _delivery_json(row: asyncpg.Record, attempts: list[dict[str, Any]]) -> dict[str, Any]:
    pending = row["state"] == "pending"
    return {
        "delivery_id": row["id"],
        "event_id": row["event_id"],
        "event_type": row["type"],
        "event_created_at": iso_time(row["event_created_at"]),
        "data": row["data"],
        "state": row["state"],
        "next_attempt_at": iso_time(row["next_attempt_at"]) if pending else None,
        "last_status": row["last_status"],
        "last_error": row["last_error"],
        "delivered_at": iso_time(row["delivered_at"]),
        "created_at": iso_time(row["created_at"]),
        "attempts": attempts,
    }
