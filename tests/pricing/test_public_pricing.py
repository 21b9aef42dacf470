"""GET /v1/public/pricing: signed with the private key, verifiable, ETag/304, cached bytes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from spendguard_proxy.errors import PricingError
from spendguard_proxy.pricing.canonical import load_document
from spendguard_proxy.pricing.checks import TrustPolicy, check_trust
from spendguard_proxy.pricing.ratecard import rate_at
from spendguard_proxy.pricing.signing import verify_signature
from spendguard_proxy.pricing.sources import table_from_bytes
from spendguard_proxy.pricing.state import PricingState, load_initial
from spendguard_proxy.server.keys import PRICING, SETTINGS
from spendguard_proxy.server.public_pricing import (
    etag_matches,
    public_pricing,
    signed_public_pricing,
)

from .helpers import pricing_settings


async def client_for(settings, state: PricingState) -> TestClient:
    app = web.Application()
    app[SETTINGS] = settings
    app[PRICING] = state
    app.router.add_get("/v1/public/pricing", public_pricing)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    return client


async def test_serves_the_active_table_signed_and_verifiable(keys) -> None:
    settings = pricing_settings(pricing_signing_private_key=keys.private_key)
    state = await load_initial(settings)
    client = await client_for(settings, state)
    try:
        resp = await client.get("/v1/public/pricing")
        assert resp.status == 200
        body = await resp.read()
        etag = resp.headers["ETag"]
    finally:
        await client.close()
    doc = load_document(body, "served")
    verify_signature(doc, keys.public_key, "served")
    policy = TrustPolicy(verify_signature=True, public_key=keys.public_key, schema_version="2",
                         skew_s=0)
    check_trust(doc, policy, "served")  # fresh dates even though bundled is trusted as code
    assert doc["models"] == state.table.document["models"]
    assert etag.startswith('"') and etag.endswith('"')
    # A consumer configured for remote pricing accepts it.
    consumer = pricing_settings(pricing_source="remote", pricing_url="http://x",
                                pricing_signing_public_key=keys.public_key)
    served = table_from_bytes(body, consumer, source="remote", origin="served", etag=etag)
    assert served.lookup("openai", "gpt-4o-2024-08-06").model == "gpt-4o"


async def test_etag_and_304(keys) -> None:
    settings = pricing_settings(pricing_signing_private_key=keys.private_key)
    client = await client_for(settings, await load_initial(settings))
    try:
        first = await client.get("/v1/public/pricing")
        etag = first.headers["ETag"]
        again = await client.get("/v1/public/pricing", headers={"If-None-Match": etag})
        assert again.status == 304
        assert again.headers["ETag"] == etag
        assert await again.read() == b""
        weak = await client.get("/v1/public/pricing",
                                headers={"If-None-Match": f'"other", W/{etag}'})
        assert weak.status == 304
        stale = await client.get("/v1/public/pricing", headers={"If-None-Match": '"other"'})
        assert stale.status == 200
        assert await stale.read() == await first.read()
    finally:
        await client.close()


async def test_404_without_a_private_key() -> None:
    settings = pricing_settings()
    client = await client_for(settings, await load_initial(settings))
    try:
        resp = await client.get("/v1/public/pricing")
        assert resp.status == 404
        body = await resp.json()
    finally:
        await client.close()
    assert body["error"]["type"] == "not_found"
    assert "CAP_PRICING_SIGNING_PRIVATE_KEY" in body["detail"]
    assert body["detail"] == body["error"]["message"]


async def test_signed_bytes_are_cached_per_table_key_and_window(keys, other_keys) -> None:
    state = await load_initial(pricing_settings())
    now = datetime(2026, 11, 23, 13, 0, tzinfo=UTC)
    first = signed_public_pricing(state, keys.private_key, now)
    assert signed_public_pricing(state, keys.private_key, now + timedelta(hours=1)) is first
    next_window = signed_public_pricing(state, keys.private_key, now + timedelta(hours=12))
    assert next_window is not first and next_window.etag != first.etag
    rotated = signed_public_pricing(state, other_keys.private_key, now + timedelta(hours=12))
    assert rotated.etag != next_window.etag
    state.table = (await load_initial(pricing_settings())).table
    assert signed_public_pricing(state, other_keys.private_key, now + timedelta(hours=12)) \
        is not rotated
    doc = json.loads(first.body)
    assert doc["generated_at"] == "2026-11-23T12:00:00Z"
    assert doc["expires_at"] == "2026-11-24T12:00:00Z"


async def test_served_document_never_outlives_its_source(write_doc, make_signed, keys) -> None:
    source_expiry = datetime.now(UTC) + timedelta(minutes=30)
    path = write_doc(make_signed(expires_at=source_expiry.isoformat()))
    settings = pricing_settings(pricing_source="file", pricing_file=path,
                                pricing_signing_public_key=keys.public_key)
    state = await load_initial(settings)
    doc = json.loads(signed_public_pricing(state, keys.private_key).body)
    served = datetime.fromisoformat(doc["expires_at"].replace("Z", "+00:00"))
    assert served == source_expiry.replace(microsecond=0)


@pytest.mark.parametrize(
    ("header", "matches"),
    [(None, False), ("", False), ('"a"', True), ('W/"a"', True), ('"b", "a"', True),
     ("*", True), ('"b"', False)],
)
def test_if_none_match_parsing(header: str | None, matches: bool) -> None:
    assert etag_matches(header, '"a"') is matches


async def test_a_schema_1_reader_gets_what_schema_1_can_say(keys) -> None:
    settings = pricing_settings(pricing_signing_private_key=keys.private_key)
    state = await load_initial(settings)
    client = await client_for(settings, state)
    try:
        resp = await client.get("/v1/public/pricing", params={"schema_version": "1"})
        assert resp.status == 200
        body = await resp.read()
        bad = await client.get("/v1/public/pricing", params={"schema_version": "9"})
        assert bad.status == 400 and "schema_version must be 1 or 2" in await bad.text()
    finally:
        await client.close()
    doc = load_document(body, "served")
    assert doc["schema_version"] == "1" and "models" not in doc
    consumer = pricing_settings(pricing_source="remote", pricing_url="http://x",
                                pricing_signing_public_key=keys.public_key,
                                pricing_schema_version="1")
    served = table_from_bytes(body, consumer, source="remote", origin="served")
    # Same standard prices as the v2 table, today; dated snapshots resolve through aliases.
    for provider, model in [("openai", "gpt-4.1-2025-04-14"), ("anthropic", "claude-opus-5-5"),
                            ("gemini", "gemini-2.5-pro")]:
        v1, v2 = served.lookup(provider, model), state.table.lookup(provider, model)
        assert v1.model == v2.model
        assert rate_at(v1.resolve()["input_mtok"], 0) == rate_at(v2.resolve()["input_mtok"], 0)
    claude = doc["rates"]["anthropic"]["claude-opus-5-5"]
    assert claude["_schema_2_only"] == ["cache_write_1h_mtok"]
    # A v1 reader never gets a document newer than it reads.
    with pytest.raises(PricingError, match="schema 1 to '1'"):
        table_from_bytes(load_document_bytes(state, keys), consumer, source="remote",
                         origin="served")


def load_document_bytes(state, keys) -> bytes:
    return signed_public_pricing(state, keys.private_key).body
