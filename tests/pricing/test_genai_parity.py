"""Every bundled model is charged what genai-prices' own ``calc_price`` computes, to 1 µ¢.

genai-prices is the independent oracle here: its data built the table, but its pricing code
(leaf rule, tiers, variants, dates) is not ours.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from math import ceil

import genai_prices
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spendguard_proxy.billing import cost
from spendguard_proxy.errors import UnpricedOption
from spendguard_proxy.pricing.sources import load_bundled
from spendguard_proxy.usage import Usage

TABLE = load_bundled()
CARDS = list(TABLE.entries())
GENAI_PROVIDER = {"openai": "openai", "anthropic": "anthropic", "gemini": "google",
                  "grok": "x-ai"}
MICROCENTS_PER_USD = Decimal(10**8)


@st.composite
def usages(draw: st.DrawFn) -> Usage:
    inp = draw(st.integers(0, 1_500_000))
    read = draw(st.integers(0, inp))
    write = draw(st.integers(0, inp - read))
    return Usage(
        input_tokens=inp, cache_read_tokens=read, cache_write_tokens=write,
        cache_write_1h_tokens=draw(st.integers(0, write)),
        input_audio_tokens=draw(st.integers(0, inp - read - write)),
        output_tokens=draw(st.integers(0, 200_000)),
        web_search_calls=draw(st.integers(0, 20)),
        file_search_calls=draw(st.integers(0, 20)),
    )


def genai_usage(u: Usage) -> genai_prices.Usage:
    return genai_prices.Usage(
        input_tokens=u.input_tokens, output_tokens=u.output_tokens,
        cache_read_tokens=u.cache_read_tokens, cache_write_tokens=u.cache_write_tokens,
        cache_write_1h_tokens=u.cache_write_1h_tokens, input_audio_tokens=u.input_audio_tokens,
        cache_audio_read_tokens=u.cache_audio_read_tokens,
        web_searches=u.web_search_calls, storage_searches=u.file_search_calls,
    )


def test_the_bundled_table_covers_the_four_providers() -> None:
    assert {card.provider for card in CARDS} == set(GENAI_PROVIDER)
    assert len(CARDS) >= 100


@pytest.mark.parametrize("card", CARDS, ids=lambda c: f"{c.provider}:{c.model}")
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(usage=usages(), day=st.dates(datetime(2025, 1, 1).date(), datetime(2027, 6, 1).date()))
def test_charge_equals_genai_prices(card, usage: Usage, day) -> None:
    at = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
    # inference_geo variants come from our overrides (test_generated_table checks them).
    options = [{k: v} for k, vs in card.option_values.items() if k != "inference_geo" for v in vs]
    for context in [{}, *options]:
        try:
            prices = card.resolve(at, context)
        except UnpricedOption:
            continue  # the option had no price yet on that day: refused, so nothing to bill
        ours = cost(card, usage, prices).microcents
        theirs = genai_prices.calc_price(
            genai_usage(usage), card.model, provider_id=GENAI_PROVIDER[card.provider],
            genai_request_timestamp=at, price_context=context or None,
        ).total_price
        assert abs(ours - ceil(theirs * MICROCENTS_PER_USD)) <= 1, (context, ours, theirs)
