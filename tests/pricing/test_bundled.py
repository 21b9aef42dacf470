"""The bundled table: loads offline, prices every model it lists, covers the models we promise."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from spendguard_proxy.billing import cost, hold_microcents, worst_case_quote
from spendguard_proxy.pricing.sources import load_bundled
from spendguard_proxy.usage import Usage

PROMISED = {
    "openai": ["gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "o1", "o3",
               "o3-mini", "o4-mini", "gpt-5", "gpt-5-mini", "gpt-5-nano",
               # the reference engine's table
               "gpt-5.2", "gpt-5.2-chat-latest", "gpt-5.2-codex", "gpt-5.2-pro", "o3-pro",
               "o3-deep-research", "o1-mini"],
    "anthropic": ["claude-3-5-haiku", "claude-3-5-sonnet", "claude-3-7-sonnet",
                  "claude-sonnet-4", "claude-opus-4", "claude-opus-4-1", "claude-sonnet-4-5",
                  "claude-haiku-4-5", "claude-sonnet-4-20250514", "claude-3-5-sonnet-latest",
                  "claude-3-5-haiku-latest", "claude-opus-4-6"],
    "gemini": ["gemini-1.5-flash", "gemini-1.5-pro", "gemini-2.0-flash", "gemini-2.0-flash-lite",
               "gemini-2.5-flash", "gemini-2.5-flash-lite", "gemini-2.5-pro",
               "gemini-3-flash-preview", "gemini-3-pro-preview"],
    "grok": ["grok-3", "grok-3-mini", "grok-4", "grok-4-fast-reasoning",
             "grok-4-fast-non-reasoning", "grok-3-latest", "grok-3-fast-latest"],
}


def test_bundled_covers_the_promised_models() -> None:
    table = load_bundled()
    for provider, models in PROMISED.items():
        for model in models:
            table.lookup(provider, model)  # raises UnknownModel if missing


FLAGSHIPS = {  # the current models a new user tried and found refused (issue 9)
    "openai": ["gpt-6-sol", "gpt-6.1-terra", "gpt-5.5", "gpt-5.4-mini"],
    "anthropic": ["claude-opus-5-5", "claude-sonnet-5-5", "claude-haiku-5-5", "claude-opus-4-8",
                  "claude-sonnet-4-6"],
    "gemini": ["gemini-4-argon", "gemini-3.8-flash", "gemini-3.5-flash-lite",
               "gemini-3.1-pro-preview"],
    "grok": ["grok-4.7", "grok-4.5"],
}


def test_bundled_prices_todays_flagships() -> None:
    table = load_bundled()
    for provider, models in FLAGSHIPS.items():
        for model in models:
            assert table.lookup(provider, model).model == model


def test_every_bundled_model_costs_no_more_than_its_hold() -> None:
    table = load_bundled()
    usage = Usage(input_tokens=250_000, output_tokens=2_000, reasoning_tokens=500,
                  cache_read_tokens=1_000, web_search_calls=1, file_search_calls=1)
    for card in table.entries():
        prices = card.resolve()
        assert prices["input_mtok"] is not None, card.model
        fees = {k: 1 for k in ("web_searches", "storage_searches") if f"{k}_kcount" in prices}
        charge = cost(card, usage)
        quote = worst_case_quote(card, input_tokens=250_000, fees=fees)
        assert charge.microcents <= hold_microcents(quote, 2_000), card.model


def test_known_list_prices() -> None:
    table = load_bundled()
    gpt5 = cost(table.lookup("openai", "gpt-5"), Usage(input_tokens=1_000_000,
                                                       output_tokens=1_000_000))
    assert gpt5.microcents == (125 + 1000) * 1_000_000  # $1.25 + $10
    pro = table.lookup("gemini", "gemini-2.5-pro")
    long = cost(pro, Usage(input_tokens=300_000, output_tokens=1_000))
    assert long.microcents == 300_000 * 250 + 1_000 * 1500  # the >200k tier
    assert table.lookup("anthropic", "claude-sonnet-4-20250514").model == "claude-sonnet-4-0"
    assert table.lookup("openai", "o4-mini").resolve()["cache_read_mtok"] * 4 == 110


def test_bundled_metadata_and_stale_warning(caplog: pytest.LogCaptureFixture) -> None:
    table = load_bundled()
    assert table.source == "bundled" and table.etag is None
    assert table.as_of.isoformat() == "2026-11-10"
    with caplog.at_level(logging.WARNING):
        load_bundled(now=datetime(2027, 2, 1, tzinfo=UTC))
    assert not caplog.records
    with caplog.at_level(logging.WARNING):
        load_bundled(now=datetime(2027, 6, 1, tzinfo=UTC))
    assert "days old" in caplog.text
