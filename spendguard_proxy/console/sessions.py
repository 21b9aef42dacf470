"""Console sessions, kept server-side in ``console_sessions`` (DESIGN §12).

The cookie carries a random id; the table keeps only its SHA-256, the tenant, the key the
operator signed in with (hosted; none in sidecar mode), the session's CSRF token and its
expiry. A session is valid while it has not ended or expired and — hosted — while its key is
live and still has ``cap:admin``: revoking the key ends every console session signed in with
it on the next request (no cache).
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass

import asyncpg

from spendguard_proxy.tenants import key_digest, looks_like_key

Db = asyncpg.Pool | asyncpg.Connection
ADMIN_SCOPE = "cap:admin"


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    id_digest: bytes
    tenant_id: uuid.UUID
    key_id: uuid.UUID | None
    csrf_token: str


def _digest(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode()).digest()


async def start(
    db: Db, tenant_id: uuid.UUID, key_id: uuid.UUID | None, *, ttl_s: int
) -> tuple[str, ConsoleSession]:
    """A new session; returns the cookie value (shown only here) and the session."""
    session_id = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    digest = _digest(session_id)
    await db.execute(
        "INSERT INTO console_sessions (id_digest, tenant_id, key_id, csrf_token, expires_at)"
        " VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))",
        digest,
        tenant_id,
        key_id,
        csrf,
        ttl_s,
    )
    # Old rows serve no one; a bounded delete keeps the table small without a sweeper.
    await db.execute(
        "DELETE FROM console_sessions WHERE id_digest IN (SELECT id_digest FROM console_sessions"
        " WHERE expires_at < now() - interval '1 day' OR ended_at < now() - interval '1 day'"
        " LIMIT 100)"
    )
    return session_id, ConsoleSession(digest, tenant_id, key_id, csrf)


_LOOKUP_SQL = """
SELECT s.id_digest, s.tenant_id, s.key_id, s.csrf_token
  FROM console_sessions s LEFT JOIN api_keys k ON k.id = s.key_id
 WHERE s.id_digest = $1 AND s.ended_at IS NULL AND s.expires_at > now()
   AND CASE WHEN $2 THEN k.revoked_at IS NULL AND $3 = ANY(k.scopes)
            ELSE s.key_id IS NULL END
"""


async def lookup(db: Db, session_id: str | None, *, hosted: bool) -> ConsoleSession | None:
    """The live session a cookie names, or None. Hosted sessions need their key still live
    with ``cap:admin``; sidecar sessions have no key (and a hosted deployment never accepts
    one: a database once used by a sidecar must not let its sessions in)."""
    if not session_id or len(session_id) > 100:
        return None
    row = await db.fetchrow(_LOOKUP_SQL, _digest(session_id), hosted, ADMIN_SCOPE)
    if row is None:
        return None
    return ConsoleSession(row["id_digest"], row["tenant_id"], row["key_id"], row["csrf_token"])


async def still_valid(db: Db, session: ConsoleSession, *, hosted: bool) -> bool:
    row = await db.fetchval(
        "SELECT 1 FROM console_sessions s LEFT JOIN api_keys k ON k.id = s.key_id"
        " WHERE s.id_digest = $1 AND s.ended_at IS NULL AND s.expires_at > now()"
        " AND CASE WHEN $2 THEN k.revoked_at IS NULL AND $3 = ANY(k.scopes)"
        " ELSE s.key_id IS NULL END",
        session.id_digest,
        hosted,
        ADMIN_SCOPE,
    )
    return row is not None


async def end(db: Db, session: ConsoleSession) -> None:
    await db.execute(
        "UPDATE console_sessions SET ended_at = now() WHERE id_digest = $1 AND ended_at IS NULL",
        session.id_digest,
    )


class SignInRefused(Exception):
    """The key cannot open a console session; the message says why (shown by the field)."""


async def admin_key(db: Db, api_key: str) -> tuple[uuid.UUID, uuid.UUID]:
    """(tenant, key id) of a live ``cap:admin`` key, else SignInRefused with the API's words."""
    api_key = api_key.strip()
    if not api_key:
        raise SignInRefused("Enter an API key")
    if not looks_like_key(api_key):
        raise SignInRefused("Malformed API key: expected sk_cynsta_live_ + 32 characters")
    row = await db.fetchrow(
        "SELECT id, tenant_id, scopes FROM api_keys WHERE digest = $1 AND revoked_at IS NULL",
        key_digest(api_key),
    )
    if row is None:
        raise SignInRefused("Invalid or revoked API key")
    if ADMIN_SCOPE not in row["scopes"]:
        raise SignInRefused(f"This API key lacks the {ADMIN_SCOPE} scope")
    return row["tenant_id"], row["id"]
