"""``GET /v1/public/pricing``: the active table as a signed document for sidecars (no auth).

The served document is the active table's document with fresh dates, signed with
``CAP_PRICING_SIGNING_PRIVATE_KEY``. Dates are aligned to fixed windows so the bytes only
change when the table, the key or the window changes: Ed25519 is deterministic, so every
replica behind a load balancer serves the same bytes and the same ETag, and we sign once per
window instead of once per request.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aiohttp import web

from spendguard_proxy.errors import InvalidRequest, NotFound
from spendguard_proxy.pricing.checks import format_timestamp
from spendguard_proxy.pricing.legacy import v1_document
from spendguard_proxy.pricing.signing import sign_document
from spendguard_proxy.pricing.state import PricingState
from spendguard_proxy.pricing.table import PriceTable
from spendguard_proxy.server.keys import PRICING, SETTINGS

# A served document is valid for a day and re-signed every 12 hours, so a consumer always
# receives at least 12 hours of validity while an old copy cannot be replayed for long.
SIGN_WINDOW = timedelta(hours=12)
DOCUMENT_TTL = timedelta(hours=24)
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class SignedPricing:
    table: PriceTable
    key_digest: str
    window_start: datetime
    body: bytes
    etag: str


async def public_pricing(request: web.Request) -> web.Response:
    private_key = request.app[SETTINGS].pricing_signing_private_key
    if not private_key:
        error = NotFound(
            "Public pricing is not enabled here: set CAP_PRICING_SIGNING_PRIVATE_KEY to serve it"
        )
        return web.json_response(error.body(), status=404)
    version = request.query.get("schema_version", "2")
    if version not in ("1", "2"):
        error = InvalidRequest(f"schema_version must be 1 or 2, got {version!r}")
        return web.json_response(error.body(), status=400)
    signed = signed_public_pricing(request.app[PRICING], private_key, schema_version=version)
    headers = {"ETag": signed.etag, "Cache-Control": "public, no-cache"}
    if etag_matches(request.headers.get("If-None-Match"), signed.etag):
        return web.Response(status=304, headers=headers)
    return web.Response(body=signed.body, content_type="application/json", headers=headers)


def signed_public_pricing(
    state: PricingState, private_key: str, now: datetime | None = None,
    schema_version: str = "2",
) -> SignedPricing:
    """The signed bytes for the current table, from the cache while table/key/window hold."""
    now = now or datetime.now(UTC)
    window_start = _window_start(now)
    key_digest = hashlib.sha256(private_key.encode()).hexdigest()
    cached = state.public_cache.get(schema_version)
    if (
        isinstance(cached, SignedPricing)
        and cached.table is state.table
        and cached.key_digest == key_digest
        and cached.window_start == window_start
    ):
        return cached
    doc = public_document(state.table, window_start, schema_version)
    doc = sign_document(doc, private_key)
    body = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    signed = SignedPricing(state.table, key_digest, window_start, body, etag)
    state.public_cache[schema_version] = signed
    return signed


def public_document(table: PriceTable, window_start: datetime, schema_version: str = "2") -> dict:
    """The table's document re-dated; never valid longer than the source document itself.
    Schema 1 says the prices in force at the window's start, as far as v1 can say them."""
    # Never claim the prices are older than they are: a table loaded mid-window keeps its date.
    generated_at = max(window_start, table.generated_at)
    expires_at = window_start + DOCUMENT_TTL
    if table.source != "bundled":  # bundled is trusted as code; its expires_at means nothing
        expires_at = min(expires_at, table.expires_at)
    doc = dict(table.document)
    if schema_version == "1" and table.schema_version != "1":
        doc = v1_document(table, window_start)
    doc["generated_at"] = format_timestamp(generated_at)
    doc["expires_at"] = format_timestamp(expires_at)
    return doc


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 weak comparison against a comma-separated If-None-Match list or ``*``."""
    if not if_none_match:
        return False
    wanted = _opaque(etag)
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or _opaque(candidate) == wanted:
            return True
    return False


def _opaque(tag: str) -> str:
    return tag.removeprefix("W/")


def _window_start(now: datetime) -> datetime:
    windows = (now - _EPOCH) // SIGN_WINDOW
    return _EPOCH + windows * SIGN_WINDOW
