"""File and remote sources against every trust check, with a real publisher on 127.0.0.1."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from spendguard_proxy.errors import PricingError
from spendguard_proxy.pricing.checks import format_timestamp
from spendguard_proxy.pricing.signing import sign_document
from spendguard_proxy.pricing.sources import fetch_remote, load_bundled, load_table
from spendguard_proxy.pricing.state import load_initial

from .helpers import PricingServer, base_document, pricing_settings

NOW = datetime.now(UTC)


def remote_settings(server: PricingServer, public_key: str, **overrides) -> object:
    return pricing_settings(pricing_source="remote", pricing_url=server.url,
                            pricing_signing_public_key=public_key, **overrides)


async def test_remote_good_document_loads_with_its_etag(
    pricing_server: PricingServer, make_signed, keys
) -> None:
    pricing_server.publish(make_signed(), '"abc"')
    state = await load_initial(remote_settings(pricing_server, keys.public_key))
    table = state.table
    assert table.source == "remote"
    assert table.etag == '"abc"'
    assert table.lookup("openai", "fake-model").resolve()["input_mtok"] == 100
    assert 0 <= state.table_age_seconds() < 3600
    assert pricing_server.seen_if_none_match == [None]


async def test_remote_with_shared_session_and_304(
    pricing_server: PricingServer, make_signed, keys
) -> None:
    pricing_server.publish(make_signed(), '"v7"')
    settings = remote_settings(pricing_server, keys.public_key)
    async with aiohttp.ClientSession() as session:
        table = await load_table(settings, session)
        assert await fetch_remote(settings, session, etag=table.etag) is None
    assert pricing_server.seen_if_none_match == [None, '"v7"']


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda signed, keys, other: _tamper(signed(), "input_cents_per_1m", 1),
         "Remote pricing signature verification failed"),
        (lambda signed, keys, other: signed(key=other.private_key),
         "Remote pricing signature verification failed"),
        (lambda signed, keys, other: {k: v for k, v in signed().items() if k != "signature"},
         "missing signature"),
        (lambda signed, keys, other: signed(expires_at=format_timestamp(NOW - timedelta(hours=1))),
         "Remote pricing payload has expired"),
        (lambda signed, keys, other: signed(
            generated_at=format_timestamp(NOW + timedelta(hours=1))),
         "generated_at is in the future"),
        (lambda signed, keys, other: signed(schema_version="3"),
         "Unsupported pricing schema_version '3'"),
        (lambda signed, keys, other: signed(engine={"min_version": "0.3.0", "max_version": "1.0"}),
         "not compatible with engine version 0.2.0"),
        (lambda signed, keys, other: signed(engine={"max_version": "0.0.9"}),
         r"allows \*\.\.0\.0\.9"),
    ],
    ids=["tampered", "wrong-key", "unsigned", "expired", "future", "schema", "engine-min",
         "engine-max"],
)
async def test_remote_bad_documents_stop_start_up(
    pricing_server: PricingServer, make_signed, keys, other_keys, make, message: str
) -> None:
    pricing_server.publish(make(make_signed, keys, other_keys), '"bad"')
    with pytest.raises(PricingError, match=message):
        await load_initial(remote_settings(pricing_server, keys.public_key))


def _tamper(doc: dict, field: str, value: int) -> dict:
    doc["rates"]["openai"]["fake-model"][field] = value
    return doc


async def test_skew_tolerates_a_slightly_expired_document(
    pricing_server: PricingServer, make_signed, keys
) -> None:
    pricing_server.publish(make_signed(expires_at=format_timestamp(NOW - timedelta(seconds=30))),
                           '"s"')
    settings = remote_settings(pricing_server, keys.public_key, pricing_expiry_skew_seconds=300)
    assert (await load_initial(settings)).table.source == "remote"


async def test_verification_on_without_public_key_is_explained(
    pricing_server: PricingServer, make_signed
) -> None:
    pricing_server.publish(make_signed(), '"x"')
    settings = pricing_settings(pricing_source="remote", pricing_url=pricing_server.url)
    with pytest.raises(PricingError, match="CAP_PRICING_SIGNING_PUBLIC_KEY is not set"):
        await load_initial(settings)


async def test_http_errors_and_unreachable_publishers(
    pricing_server: PricingServer, keys
) -> None:
    pricing_server.mode = "error"
    with pytest.raises(PricingError, match="HTTP 500 .*publisher down"):
        await load_initial(remote_settings(pricing_server, keys.public_key))
    closed = pricing_settings(pricing_source="remote", pricing_url="http://127.0.0.1:9/pricing",
                              pricing_signing_public_key=keys.public_key)
    with pytest.raises(PricingError, match="Remote pricing request failed"):
        await load_initial(closed)
    with pytest.raises(PricingError, match="needs CAP_PRICING_URL"):
        await load_initial(pricing_settings(pricing_source="remote"))


async def test_file_source_checks_signature(write_doc, make_signed, keys, other_keys) -> None:
    good = write_doc(make_signed())
    settings = pricing_settings(pricing_source="file", pricing_file=good,
                                pricing_signing_public_key=keys.public_key)
    assert (await load_initial(settings)).table.source == "file"
    bad = write_doc(make_signed(key=other_keys.private_key), "bad.json")
    with pytest.raises(PricingError, match="signature verification failed.*bad.json"):
        await load_initial(settings.model_copy(update={"pricing_file": bad}))


async def test_unverified_file_skips_only_the_signature(write_doc, caplog) -> None:
    unsigned = write_doc(base_document())
    settings = pricing_settings(pricing_source="file", pricing_file=unsigned,
                                pricing_verify_signature=False)
    with caplog.at_level(logging.WARNING):
        assert (await load_initial(settings)).table.source == "file"
    assert "signature check is off" in caplog.text
    expired = write_doc(base_document(expires_at="2020-01-01T00:00:00Z"), "old.json")
    with pytest.raises(PricingError, match="has expired"):
        await load_initial(settings.model_copy(update={"pricing_file": expired}))


async def test_missing_file_is_explained(tmp_path) -> None:
    with pytest.raises(PricingError, match="needs CAP_PRICING_FILE"):
        await load_initial(pricing_settings(pricing_source="file"))
    with pytest.raises(PricingError, match="Cannot read CAP_PRICING_FILE"):
        await load_initial(pricing_settings(pricing_source="file",
                                            pricing_file=tmp_path / "nope.json"))


def test_bundled_document_passes_the_same_schema_checks(keys) -> None:
    # Trusted as code, but still a valid document: signed, it passes every remote check.
    from importlib import resources

    from spendguard_proxy.pricing.canonical import load_document
    from spendguard_proxy.pricing.checks import TrustPolicy, check_trust

    raw = resources.files("spendguard_proxy.pricing").joinpath("bundled.json").read_bytes()
    doc = sign_document(load_document(raw, "bundled"), keys.private_key)
    policy = TrustPolicy(verify_signature=True, public_key=keys.public_key, schema_version="2",
                         skew_s=0)
    check_trust(doc, policy, "bundled", now=datetime(2026, 12, 1, tzinfo=UTC))
    assert load_bundled().document == {k: v for k, v in doc.items() if k != "signature"}
