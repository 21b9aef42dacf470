"""billing.cost / worst_case_quote: exact sums, one round-up, the leaf rule, and the hold
invariant; RateCard.resolve: dated prices and request variants."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from fractions import Fraction
from math import ceil

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spendguard_proxy.billing import (
    UNLIMITED_OUTPUT_TOKENS,
    Quote,
    affordable_output_tokens,
    cost,
    hold_microcents,
    settled_context,
    worst_case_quote,
)
from spendguard_proxy.errors import UnpricedOption
from spendguard_proxy.pricing.ratecard import RateCard, parse_entry
from spendguard_proxy.usage import Usage


def card(cents: dict, *, prices: list | None = None, variants: list | None = None) -> RateCard:
    entry = {"id": "m", "prices": prices or [{"cents": cents}], "variants": variants or []}
    return parse_entry("anthropic", entry, 0)


def tiered(base: str, start: int, price: str) -> dict:
    return {"base": base, "tiers": [{"start": start, "price": price}]}


def test_cents_per_million_is_microcents_per_token() -> None:
    c = card({"input_mtok": 300, "output_mtok": 1500})
    assert cost(c, Usage(input_tokens=1_000_000)).microcents == 300_000_000  # $3.00
    assert cost(c, Usage(input_tokens=1, output_tokens=1)).microcents == 1800


def test_fractional_rate_rounds_up_once_for_the_whole_call() -> None:
    c = card({"input_mtok": "0.1", "output_mtok": "0.1"})
    charge = cost(c, Usage(input_tokens=5, output_tokens=6))
    assert charge.microcents == 2  # 1.1 µ¢ exactly, rounded up once
    assert charge.breakdown["totals"]["exact_microcents"] == "1.1"


def test_breakdown_is_plain_json_naming_units_and_rates() -> None:
    c = card({"input_mtok": 300, "output_mtok": 1500, "cache_read_mtok": 30})
    usage = Usage(input_tokens=100, cache_read_tokens=40, output_tokens=10, service_tier="standard")
    breakdown = cost(c, usage).breakdown
    assert json.loads(json.dumps(breakdown)) == breakdown
    lines = {item["name"]: item for item in breakdown["charges"]}
    assert lines["input_tokens"]["quantity"] == 60  # the leaf: 40 were cache reads
    assert lines["cache_read_tokens"]["rate"] == {"cache_read_mtok": "30"}
    assert breakdown["service_tier"] == "standard"


def test_one_hour_writes_take_their_own_rate_or_fall_back_to_the_write_rate() -> None:
    usage = Usage(input_tokens=1000, cache_write_tokens=600, cache_write_1h_tokens=400)
    with_1h = card({"input_mtok": 300, "output_mtok": 0, "cache_write_mtok": 375,
                    "cache_write_1h_mtok": 600})
    assert cost(with_1h, usage).microcents == 400 * 300 + 200 * 375 + 400 * 600
    without = card({"input_mtok": 300, "output_mtok": 0, "cache_write_mtok": 375})
    assert cost(without, usage).microcents == 400 * 300 + 600 * 375


def test_a_tier_reprices_every_unit_when_input_is_strictly_above_its_start() -> None:
    c = card({"input_mtok": tiered("300", 1000, "600"), "output_mtok": tiered("1500", 1000,
                                                                               "2250")})
    assert cost(c, Usage(input_tokens=1000, output_tokens=10)).microcents == 300_000 + 15_000
    assert cost(c, Usage(input_tokens=1001, output_tokens=10)).microcents == 600_600 + 22_500


def test_inconsistent_parts_are_charged_not_clamped() -> None:
    c = card({"input_mtok": 100, "output_mtok": 0, "cache_read_mtok": 10})
    # 500 cache reads reported with only 200 input tokens: charge the 500 reads, no negative.
    assert cost(c, Usage(input_tokens=200, cache_read_tokens=500)).microcents == 5000


def test_negative_counts_never_lower_a_charge() -> None:
    c = card({"input_mtok": 100, "output_mtok": 100})
    assert cost(c, Usage(input_tokens=10, output_tokens=-5)).microcents == 1000


def test_search_fees_are_per_thousand_and_unpriced_tools_are_flagged() -> None:
    c = card({"input_mtok": 0, "output_mtok": 0, "web_searches_kcount": 1000})
    charge = cost(c, Usage(web_search_calls=2, grounding_queries=1, code_executions=3))
    assert charge.microcents == 3 * 1_000_000  # 1000 ¢ per 1k = 1 ¢ per search
    assert charge.breakdown["unpriced"] == ["code_executions"]


def test_quote_uses_cache_write_rates_only_when_asked() -> None:
    c = card({"input_mtok": 300, "output_mtok": 1500, "cache_write_mtok": 375,
              "cache_write_1h_mtok": 600})
    assert worst_case_quote(c, input_tokens=100).fixed_microcents == 30_000
    assert worst_case_quote(c, input_tokens=100, cache_write="5m").fixed_microcents == 37_500
    assert worst_case_quote(c, input_tokens=100, cache_write="1h").fixed_microcents == 60_000


def test_quote_refuses_what_the_card_cannot_price() -> None:
    c = card({"input_mtok": 300, "output_mtok": 1500, "cache_write_mtok": 375})
    with pytest.raises(UnpricedOption, match="cache_control.ttl='1h'"):
        worst_case_quote(c, input_tokens=100, cache_write="1h")
    with pytest.raises(UnpricedOption, match="code_executions"):
        worst_case_quote(c, input_tokens=100, fees={"code_executions": 1})
    with pytest.raises(UnpricedOption, match="audio"):
        worst_case_quote(c, input_tokens=100, media_tokens={"audio": 50})


def test_quote_prices_media_at_their_own_rate() -> None:
    c = card({"input_mtok": 100, "input_audio_mtok": 700, "output_mtok": 400})
    quote = worst_case_quote(c, input_tokens=1000, media_tokens={"audio": 300})
    assert quote.fixed_microcents == 700 * 100 + 300 * 700


def test_quote_reaching_a_tier_prices_the_tier() -> None:
    c = card({"input_mtok": tiered("300", 1000, "600"), "output_mtok": tiered("1500", 1000,
                                                                               "2250")})
    assert worst_case_quote(c, input_tokens=1000) == Quote(300_000, Fraction(1500))
    assert worst_case_quote(c, input_tokens=1001) == Quote(600_600, Fraction(2250))


def test_quote_includes_tool_fees() -> None:
    c = card({"input_mtok": 0, "output_mtok": 0, "web_searches_kcount": 1000,
              "storage_searches_kcount": 250})
    quote = worst_case_quote(c, input_tokens=0, fees={"web_searches": 4, "storage_searches": 2})
    assert quote.fixed_microcents == 4 * 1_000_000 + 2 * 250_000


def test_hold_and_affordable_tokens() -> None:
    quote = Quote(1000, Fraction(5, 2))
    assert hold_microcents(quote, 2) == 1005
    assert hold_microcents(quote, 3) == 1008
    assert affordable_output_tokens(Quote(1, Fraction(0)), 5) == UNLIMITED_OUTPUT_TOKENS


# --- resolve: dates and variants --------------------------------------------------------


def test_the_price_in_force_at_the_calls_time_applies() -> None:
    c = card({}, prices=[{"cents": {"input_mtok": 100, "output_mtok": 100}},
                         {"from": "2026-03-01", "cents": {"input_mtok": 50, "output_mtok": 100}}])
    assert c.resolve(datetime(2026, 2, 28, 23, 59, tzinfo=UTC))["input_mtok"] == 100
    assert c.resolve(datetime(2026, 3, 1, tzinfo=UTC))["input_mtok"] == 50


def test_a_variant_overrides_its_keys_and_an_unpriced_option_is_refused() -> None:
    c = card({"input_mtok": 100, "output_mtok": 400},
             variants=[{"when": {"service_tier": "priority"}, "cents": {"input_mtok": 170}},
                       {"when": {"service_tier": "default"}, "cents": {}}])
    priority = c.resolve(context={"service_tier": "priority"})
    assert priority["input_mtok"] == 170 and priority["output_mtok"] == 400
    assert c.resolve(context={"service_tier": "default"})["input_mtok"] == 100
    assert c.option_values == {"service_tier": ["default", "priority"]}
    with pytest.raises(UnpricedOption, match="service_tier='flex'"):
        c.resolve(context={"service_tier": "flex"})


def test_settlement_follows_the_tier_the_provider_reports() -> None:
    assert settled_context({"service_tier": "priority"}, "default") == {}
    assert settled_context({}, "priority") == {"service_tier": "priority"}
    assert settled_context({"inference_geo": "us"}, None) == {"inference_geo": "us"}


# --- properties ---------------------------------------------------------------------------

decimal_rates = st.builds(lambda n, k: Fraction(n, 10**k), st.integers(0, 10**6), st.integers(0, 4))
KEYS = ("output_mtok", "cache_read_mtok", "cache_write_mtok", "cache_write_1h_mtok",
        "input_audio_mtok", "web_searches_kcount", "storage_searches_kcount")


@st.composite
def rate_cards(draw: st.DrawFn) -> RateCard:
    start = draw(st.integers(0, 300_000))
    cents = {}
    for key in ("input_mtok", *KEYS):
        if key != "input_mtok" and not draw(st.booleans()):
            continue
        value: object = _decimal(draw(decimal_rates))
        if draw(st.booleans()):
            value = {"base": value, "tiers": [{"start": start, "price": _decimal(
                draw(decimal_rates))}]}
        cents[key] = value
    return card(cents)


def _decimal(value: Fraction) -> str:
    digits = 0
    while (value * 10**digits).denominator != 1:
        digits += 1
    scaled = (value * 10**digits).numerator
    text = str(scaled).rjust(digits + 1, "0")
    return f"{text[:-digits]}.{text[-digits:]}" if digits else text


@st.composite
def quoted_calls(draw: st.DrawFn) -> tuple[RateCard, Quote, int, Usage]:
    c = draw(rate_cards())
    prices = c.resolve()
    estimate = draw(st.integers(0, 400_000))
    cache_write = draw(st.sampled_from([None, "5m", "1h"] if "cache_write_1h_mtok" in prices
                                       else [None, "5m"]))
    audio = draw(st.integers(0, estimate)) if "input_audio_mtok" in prices else 0
    fees = {k: draw(st.integers(0, 10)) for k in ("web_searches", "storage_searches")
            if f"{k}_kcount" in prices}
    max_output = draw(st.integers(0, 100_000))
    quote = worst_case_quote(c, input_tokens=estimate, cache_write=cache_write,
                             media_tokens={"audio": audio}, fees=fees)
    input_tokens = draw(st.integers(0, estimate))
    audio_used = draw(st.integers(0, min(audio, input_tokens)))
    read = draw(st.integers(0, input_tokens - audio_used))
    write = draw(st.integers(0, input_tokens - audio_used - read)) if cache_write else 0
    write_1h = draw(st.integers(0, write)) if cache_write == "1h" else 0
    usage = Usage(
        input_tokens=input_tokens, input_audio_tokens=audio_used, cache_read_tokens=read,
        cache_write_tokens=write, cache_write_1h_tokens=write_1h,
        output_tokens=draw(st.integers(0, max_output)),
        web_search_calls=draw(st.integers(0, fees.get("web_searches", 0))),
        file_search_calls=draw(st.integers(0, fees.get("storage_searches", 0))),
    )
    return c, quote, max_output, usage


@settings(max_examples=400, deadline=None)
@given(quoted_calls())
def test_a_call_within_its_bounds_never_costs_more_than_its_hold(call) -> None:
    c, quote, max_output, usage = call
    assert cost(c, usage).microcents <= hold_microcents(quote, max_output)


@settings(max_examples=300, deadline=None)
@given(rate_cards(), st.integers(0, 300_000), st.integers(0, 10**12))
def test_affordable_tokens_is_the_largest_hold_that_fits(
    c: RateCard, estimate: int, available: int
) -> None:
    quote = worst_case_quote(c, input_tokens=estimate)
    tokens = affordable_output_tokens(quote, available)
    if available < quote.fixed_microcents:
        assert tokens == 0
        return
    assert hold_microcents(quote, tokens) <= available
    if quote.output_rate > 0 and tokens < UNLIMITED_OUTPUT_TOKENS:
        assert hold_microcents(quote, tokens + 1) > available


@settings(max_examples=200, deadline=None)
@given(rate_cards(), st.integers(0, 10**6), st.integers(0, 10**6))
def test_charge_is_the_ceiling_of_its_exact_lines(c: RateCard, inp: int, out: int) -> None:
    charge = cost(c, Usage(input_tokens=inp, output_tokens=out))
    exact = sum(Fraction(i["cost_microcents"]) for i in charge.breakdown["charges"])
    assert charge.microcents == ceil(exact)
    assert Fraction(charge.breakdown["totals"]["exact_microcents"]) == exact
