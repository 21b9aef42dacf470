"""billing.cost / worst_case_quote: exact sums, one round-up, and the hold invariant."""

from __future__ import annotations

import json
from fractions import Fraction
from math import ceil

from hypothesis import given, settings
from hypothesis import strategies as st

from spendguard_proxy.billing import (
    UNLIMITED_OUTPUT_TOKENS,
    Quote,
    affordable_output_tokens,
    cost,
    hold_microcents,
    worst_case_quote,
)
from spendguard_proxy.pricing.ratecard import RateCard
from spendguard_proxy.usage import Usage


def card(**rates: object) -> RateCard:
    fields = {"input_cents_per_1m": Fraction(300), "output_cents_per_1m": Fraction(1500)}
    fields.update({k: Fraction(str(v)) if isinstance(v, (int, str)) and not k.endswith("tokens")
                   else v for k, v in rates.items()})
    return RateCard(provider="anthropic", model="m", **fields)


# --- examples ---------------------------------------------------------------------------


def test_cents_per_million_is_microcents_per_token() -> None:
    charge = cost(card(), Usage(input_tokens=1, output_tokens=1))
    assert charge.microcents == 300 + 1500


def test_fractional_rate_rounds_up_once_for_the_whole_call() -> None:
    # 3 tokens at 0.5 µ¢ is 1.5 µ¢ -> 2; rounding each item would give 1 + 1 = 2 too, so use
    # two items of 0.5 each: per-item rounding would charge 2, the exact sum is 1.
    c = card(input_cents_per_1m="0.5", output_cents_per_1m="0.5")
    assert cost(c, Usage(input_tokens=1, output_tokens=1)).microcents == 1
    assert cost(c, Usage(input_tokens=3)).microcents == 2


def test_breakdown_is_plain_json_with_reference_terms() -> None:
    c = card(cache_write_cents_per_1m=375, cache_read_cents_per_1m=30,
             reasoning_output_cents_per_1m="1600.25", web_search_cents_per_call=1,
             grounding_cents_per_1k_queries=3500)
    usage = Usage(input_tokens=1000, output_tokens=300, reasoning_tokens=100,
                  cache_write_tokens=200, cache_read_tokens=300, web_search_calls=2,
                  grounding_queries=3, file_search_calls=1)
    charge = cost(c, usage)
    data = json.loads(json.dumps(charge.breakdown))  # round-trips: no Fraction, no float
    assert data == charge.breakdown
    names = [item["name"] for item in data["charges"]]
    assert names == [
        "input_tokens_uncached", "input_tokens_cache_write", "input_tokens_cache_read",
        "output_tokens_non_reasoning", "output_tokens_reasoning",
        "grounding_queries", "tool_web_search_call",
    ]
    assert data["unpriced"] == ["tool_file_search_call"]
    uncached = data["charges"][0]
    assert uncached == {"name": "input_tokens_uncached", "quantity": 500, "unit": "tokens",
                        "rate": {"cents_per_1m": "300"}, "cost_microcents": "150000"}
    expected = (500 * 300 + 200 * 375 + 300 * 30 + 200 * 1500 + 100 * Fraction("1600.25")
                + 3 * 3500 * 1000 + 2 * 1_000_000)
    assert data["totals"]["exact_microcents"] == "13194025"
    assert Fraction(data["totals"]["exact_microcents"]) == expected
    assert charge.microcents == ceil(expected)
    assert data["totals"]["realized_cents_ceiled"] == 14


def test_context_cliff_reprices_every_token_and_scales_parts() -> None:
    c = card(cache_read_cents_per_1m=30, context_cliff_tokens=200_000,
             cliff_input_cents_per_1m=600, cliff_output_cents_per_1m=2250)
    below = cost(c, Usage(input_tokens=200_000, output_tokens=10))
    above = cost(c, Usage(input_tokens=200_001, output_tokens=10, cache_read_tokens=1))
    assert below.microcents == 200_000 * 300 + 10 * 1500
    assert not below.breakdown["cliff"]["applied"]
    assert above.microcents == 200_000 * 600 + 1 * 60 + 10 * 2250
    assert above.breakdown["cliff"] == {"threshold_tokens": 200_000, "applied": True}


def test_inconsistent_parts_are_charged_not_clamped() -> None:
    # A provider reporting more cache reads than input tokens gets the larger reading.
    c = card(cache_read_cents_per_1m=30)
    assert cost(c, Usage(input_tokens=10, cache_read_tokens=50)).microcents == 50 * 30


def test_negative_counts_never_lower_a_charge() -> None:
    assert cost(card(), Usage(input_tokens=10, output_tokens=-5)).microcents == 3000


def test_unpriced_cache_hits_cost_full_input() -> None:
    assert cost(card(), Usage(input_tokens=10, cached_input_tokens=10)).microcents == 3000


def test_quote_uses_cache_write_rate_only_when_asked() -> None:
    c = card(cache_write_cents_per_1m=375)
    assert worst_case_quote(c, input_tokens=100).fixed_microcents == 30_000
    assert worst_case_quote(c, input_tokens=100, cache_write=True).fixed_microcents == 37_500


def test_quote_crossing_the_cliff_prices_the_cliff_tier() -> None:
    c = card(context_cliff_tokens=1000, cliff_input_cents_per_1m=600,
             cliff_output_cents_per_1m=2250)
    assert worst_case_quote(c, input_tokens=1000) == Quote(300_000, Fraction(1500))
    assert worst_case_quote(c, input_tokens=1001) == Quote(600_600, Fraction(2250))


def test_quote_includes_tool_and_grounding_fees() -> None:
    c = card(web_search_cents_per_call="2.5", file_search_cents_per_call="0.25",
             grounding_cents_per_1k_queries=3500)
    quote = worst_case_quote(c, input_tokens=0, tool_calls_max=4, grounding_queries_max=2)
    assert quote.fixed_microcents == 4 * 2_500_000 + 2 * 3_500_000


def test_affordable_and_hold_helpers() -> None:
    quote = Quote(fixed_microcents=1000, output_rate=Fraction(5, 2))
    assert affordable_output_tokens(quote, 999) == 0
    assert affordable_output_tokens(quote, 1000) == 0
    assert affordable_output_tokens(quote, 1005) == 2
    assert hold_microcents(quote, 2) == 1005
    assert hold_microcents(quote, 3) == 1008
    assert affordable_output_tokens(Quote(1, Fraction(0)), 5) == UNLIMITED_OUTPUT_TOKENS


# --- properties ---------------------------------------------------------------------------

decimal_rates = st.builds(lambda n, k: Fraction(n, 10**k), st.integers(0, 10**6), st.integers(0, 4))
optional_rates = st.none() | decimal_rates


@st.composite
def rate_cards(draw: st.DrawFn) -> RateCard:
    has_cliff = draw(st.booleans())
    return RateCard(
        provider="openai",
        model="m",
        input_cents_per_1m=draw(decimal_rates),
        output_cents_per_1m=draw(decimal_rates),
        cached_input_cents_per_1m=draw(optional_rates),
        reasoning_output_cents_per_1m=draw(optional_rates),
        cache_write_cents_per_1m=draw(optional_rates),
        cache_read_cents_per_1m=draw(optional_rates),
        grounding_cents_per_1k_queries=draw(optional_rates),
        web_search_cents_per_call=draw(optional_rates),
        file_search_cents_per_call=draw(optional_rates),
        context_cliff_tokens=draw(st.integers(1, 300_000)) if has_cliff else None,
        cliff_input_cents_per_1m=draw(optional_rates) if has_cliff else None,
        cliff_output_cents_per_1m=draw(optional_rates) if has_cliff else None,
    )


@st.composite
def consistent_usages(draw: st.DrawFn, max_input: int = 400_000, max_output: int = 100_000,
                      cache_write: bool = True, tools: int = 20, grounding: int = 20) -> Usage:
    input_tokens = draw(st.integers(0, max_input))
    cached = draw(st.integers(0, input_tokens))
    write = draw(st.integers(0, input_tokens - cached)) if cache_write else 0
    read = draw(st.integers(0, input_tokens - cached - write))
    output = draw(st.integers(0, max_output))
    web = draw(st.integers(0, tools))
    return Usage(
        input_tokens=input_tokens,
        cached_input_tokens=cached,
        cache_write_tokens=write,
        cache_read_tokens=read,
        output_tokens=output,
        reasoning_tokens=draw(st.integers(0, output)),
        web_search_calls=web,
        file_search_calls=draw(st.integers(0, tools - web)),
        grounding_queries=draw(st.integers(0, grounding)),
    )


def reference_cost(c: RateCard, u: Usage) -> Fraction:
    """Independent model of the pricing rules (see billing's docstring)."""
    parts = u.cached_input_tokens + u.cache_write_tokens + u.cache_read_tokens
    threshold = c.context_cliff_tokens
    cliff = threshold is not None and max(u.input_tokens, parts) > threshold
    inp, out = c.input_cents_per_1m, c.output_cents_per_1m
    cliff_in, cliff_out = c.cliff_input_cents_per_1m, c.cliff_output_cents_per_1m
    in_rate = cliff_in if cliff and cliff_in is not None else inp
    out_rate = cliff_out if cliff and cliff_out is not None else out

    def scale(rate: Fraction, new: Fraction, old: Fraction) -> Fraction:
        if new == old:
            return rate
        return max(rate, new) if old == 0 else rate * new / old

    def first(*rates: Fraction | None) -> Fraction:
        return next(r for r in rates if r is not None)

    cached = first(c.cached_input_cents_per_1m, c.cache_read_cents_per_1m, inp)
    read = first(c.cache_read_cents_per_1m, c.cached_input_cents_per_1m, inp)
    write = first(c.cache_write_cents_per_1m, inp)
    reasoning = first(c.reasoning_output_cents_per_1m, out)
    total = (
        max(0, u.input_tokens - parts) * in_rate
        + u.cached_input_tokens * scale(cached, in_rate, inp)
        + u.cache_write_tokens * scale(write, in_rate, inp)
        + u.cache_read_tokens * scale(read, in_rate, inp)
        + max(0, u.output_tokens - u.reasoning_tokens) * out_rate
        + u.reasoning_tokens * scale(reasoning, out_rate, out)
        + u.grounding_queries * (c.grounding_cents_per_1k_queries or 0) * 1000
        + u.web_search_calls * (c.web_search_cents_per_call or 0) * 1_000_000
        + u.file_search_calls * (c.file_search_cents_per_call or 0) * 1_000_000
    )
    return Fraction(total)


@settings(max_examples=400, deadline=None)
@given(rate_cards(), consistent_usages())
def test_charge_is_the_ceiling_of_the_exact_rational_cost(c: RateCard, u: Usage) -> None:
    charge = cost(c, u)
    exact = reference_cost(c, u)
    assert charge.microcents == ceil(exact)
    assert Fraction(charge.breakdown["totals"]["exact_microcents"]) == exact
    items = sum(Fraction(i["cost_microcents"]) for i in charge.breakdown["charges"])
    assert items == exact


@st.composite
def quoted_calls(draw: st.DrawFn) -> tuple[RateCard, Quote, int, Usage]:
    c = draw(rate_cards())
    estimate = draw(st.integers(0, 400_000))
    cache_write = draw(st.booleans())
    tools = draw(st.integers(0, 10))
    grounding = draw(st.integers(0, 10))
    max_output = draw(st.integers(0, 100_000))
    quote = worst_case_quote(c, input_tokens=estimate, cache_write=cache_write,
                             tool_calls_max=tools, grounding_queries_max=grounding)
    usage = draw(consistent_usages(max_input=estimate, max_output=max_output,
                                   cache_write=cache_write, tools=tools, grounding=grounding))
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
