"""Refresh: ETag revalidation, new documents, failures that keep the last good table."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from spendguard_proxy.errors import PricingError
from spendguard_proxy.pricing.signing import sign_document
from spendguard_proxy.pricing.state import PricingState, load_initial, refresh_forever, refresh_once

from .helpers import PricingServer, pricing_settings


def settings_for(server: PricingServer, public_key: str, **overrides):
    return pricing_settings(pricing_source="remote", pricing_url=server.url,
                            pricing_signing_public_key=public_key, **overrides)


async def test_304_keeps_the_table(pricing_server: PricingServer, make_signed, keys) -> None:
    pricing_server.publish(make_signed(), '"v1"')
    settings = settings_for(pricing_server, keys.public_key)
    async with aiohttp.ClientSession() as session:
        state = await load_initial(settings, session)
        first = state.table
        assert await refresh_once(state, settings, session) is False
    assert state.table is first
    assert pricing_server.seen_if_none_match == [None, '"v1"']
    assert state.last_refresh_at is not None and state.last_error is None


async def test_new_document_replaces_the_table(
    pricing_server: PricingServer, make_signed, keys
) -> None:
    pricing_server.publish(make_signed(), '"v1"')
    settings = settings_for(pricing_server, keys.public_key)
    async with aiohttp.ClientSession() as session:
        state = await load_initial(settings, session)
        doc = make_signed()
        doc["rates"]["openai"]["fake-model"]["input_cents_per_1m"] = 111
        pricing_server.publish(sign_document(doc, keys.private_key), '"v2"')
        assert await refresh_once(state, settings, session) is True
    assert state.table.etag == '"v2"'
    assert state.table.lookup("openai", "fake-model").resolve()["input_mtok"] == 111


@pytest.mark.parametrize("failure", ["http", "tampered"])
async def test_refresh_failure_keeps_the_last_good_table(
    pricing_server: PricingServer, make_signed, keys, caplog, failure: str
) -> None:
    pricing_server.publish(make_signed(), '"v1"')
    settings = settings_for(pricing_server, keys.public_key, price_table_refresh_seconds=1)
    async with aiohttp.ClientSession() as session:
        state = await load_initial(settings, session)
        good = state.table
        if failure == "http":
            pricing_server.mode = "error"
        else:
            doc = make_signed()
            doc["rates"]["openai"]["fake-model"]["input_cents_per_1m"] = 1
            pricing_server.publish(doc, '"v2"')
        with pytest.raises(PricingError):
            await refresh_once(state, settings, session)
        # The loop swallows it, logs it and keeps going.
        with caplog.at_level(logging.WARNING):
            task = asyncio.create_task(refresh_forever(state, settings, session))
            await _wait_for(lambda: state.last_error is not None, timeout_s=5)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    assert state.table is good
    assert "keeping the table" in caplog.text
    expected = "HTTP 500" if failure == "http" else "signature verification failed"
    assert expected in state.last_error


async def test_bundled_refresh_loop_returns_at_once() -> None:
    state = await load_initial(pricing_settings())
    async with aiohttp.ClientSession() as session:
        await asyncio.wait_for(refresh_forever(state, pricing_settings(), session), 1)
    assert isinstance(state, PricingState) and state.table.source == "bundled"


async def test_file_refresh_picks_up_edits(write_doc, make_signed, keys) -> None:
    path = write_doc(make_signed())
    settings = pricing_settings(pricing_source="file", pricing_file=path,
                                pricing_signing_public_key=keys.public_key)
    state = await load_initial(settings)
    async with aiohttp.ClientSession() as session:
        assert await refresh_once(state, settings, session) is False
        write_doc(make_signed(_notes="edited"))
        assert await refresh_once(state, settings, session) is True
    assert state.table.document["_notes"] == "edited"


async def _wait_for(predicate, timeout_s: float) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.05)


async def test_refresh_refuses_an_older_document(
    pricing_server: PricingServer, make_signed, keys
) -> None:
    pricing_server.publish(make_signed(), '"v2"')
    settings = settings_for(pricing_server, keys.public_key)
    async with aiohttp.ClientSession() as session:
        state = await load_initial(settings, session)
        older = make_signed(now=datetime.now(UTC) - timedelta(minutes=10))
        pricing_server.publish(older, '"v1"')
        with pytest.raises(PricingError, match="older than the active table"):
            await refresh_once(state, settings, session)
    assert state.table.etag == '"v2"'


async def test_same_document_without_etag_keeps_the_table(
    pricing_server: PricingServer, make_signed, keys
) -> None:
    pricing_server.publish(make_signed(), "")  # a publisher that sends no usable ETag
    settings = settings_for(pricing_server, keys.public_key)
    async with aiohttp.ClientSession() as session:
        state = await load_initial(settings, session)
        first = state.table
        assert await refresh_once(state, settings, session) is False
    assert state.table is first
