"""Cost maths in exact fractions, rounded up once to integer microcents.

``cost`` prices what a provider reported; ``worst_case_quote`` bounds what a request *can*
cost before it runs, so the ledger can reserve it. Guarantee (tested with Hypothesis): for a
usage whose input parts fit in ``input_tokens <= estimate``, whose reasoning fits in
``output_tokens <= max_output_tokens`` and whose tool calls and grounding queries stay within
the quoted bounds, ``cost(...).microcents <= hold_microcents(quote, max_output_tokens)``.

Context cliff: when a prompt exceeds ``context_cliff_tokens`` every token of the call is
priced at the cliff tier (Anthropic long context, Gemini >128k/>200k, Grok >128k). The
document gives the cliff input and output rates; the input-side part rates (cached, cache
write, cache read) scale by ``cliff_input / input`` and reasoning by ``cliff_output / output``
— the providers publish exactly that ratio (2x) for every part.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from math import ceil, floor
from typing import Any

from spendguard_proxy.pricing.ratecard import RateCard, fraction_to_str
from spendguard_proxy.usage import Usage

MICROCENTS_PER_CENT = 1_000_000
# 1 cent per 1k queries = 1,000 µ¢ per query.
_MICROCENTS_PER_1K_CENT = MICROCENTS_PER_CENT // 1000
# Answer of affordable_output_tokens when output is free: fits a 32-bit max-tokens field.
UNLIMITED_OUTPUT_TOKENS = 2**31 - 1


@dataclass(frozen=True, slots=True)
class Charge:
    microcents: int
    breakdown: dict[str, Any]  # JSON-able: ints, strings, bools, lists, dicts


@dataclass(frozen=True, slots=True)
class Quote:
    """Worst case of a request: a fixed part plus a price per output token (both µ¢)."""

    fixed_microcents: int
    output_rate: Fraction


@dataclass(frozen=True, slots=True)
class _Tier:
    """Effective µ¢-per-token rates at one prompt size."""

    input: Fraction
    cached_input: Fraction
    cache_write: Fraction
    cache_read: Fraction
    output: Fraction
    reasoning: Fraction
    cliff_applied: bool


def cost(card: RateCard, usage: Usage) -> Charge:
    """The exact price of ``usage`` under ``card``, rounded up once to whole microcents.

    Parts are never clamped to the totals a provider reports with them: if they disagree,
    charging every reported part is the larger (conservative) reading.
    """
    u = _non_negative(usage)
    parts = u.cached_input_tokens + u.cache_write_tokens + u.cache_read_tokens
    tier = _tier(card, max(u.input_tokens, parts))
    items = _input_items(u, tier, parts) + _output_items(u, tier)
    fee_items, unpriced = _fee_items(card, u)
    items += fee_items
    exact = sum((item.cost for item in items), Fraction(0))
    microcents = ceil(exact)
    breakdown = {
        "provider": card.provider,
        "model": card.model,
        "usage": u.as_dict(),
        "cliff": {"threshold_tokens": card.context_cliff_tokens, "applied": tier.cliff_applied},
        "charges": [item.as_json() for item in items],
        "totals": {
            "exact_microcents": fraction_to_str(exact),
            "realized_microcents": microcents,
            "realized_cents_ceiled": -(-microcents // MICROCENTS_PER_CENT),
        },
    }
    if unpriced:
        breakdown["unpriced"] = unpriced
    return Charge(microcents=microcents, breakdown=breakdown)


def worst_case_quote(
    card: RateCard,
    *,
    input_tokens: int,
    cache_write: bool = False,
    tool_calls_max: int = 0,
    grounding_queries_max: int = 0,
) -> Quote:
    """Bound the cost of a request whose input is at most ``input_tokens``.

    Input is priced at the highest input-side rate that can apply (cache write only when the
    request asks for caching), output at the highest output rate (reasoning included), in
    both tiers when the estimate crosses the context cliff (the real prompt may not).
    """
    input_tokens = max(0, input_tokens)
    tiers = [_tier(card, 0), _tier(card, input_tokens)]
    input_rate = max(_max_input_rate(t, cache_write) for t in tiers)
    output_rate = max(max(t.output, t.reasoning) for t in tiers)
    fixed = input_tokens * input_rate + _worst_fees(card, tool_calls_max, grounding_queries_max)
    return Quote(fixed_microcents=ceil(fixed), output_rate=output_rate)


def affordable_output_tokens(quote: Quote, available_microcents: int) -> int:
    """Most output tokens whose hold fits in ``available_microcents``.

    0 also when not even the fixed part fits: check ``available < quote.fixed_microcents``
    first to answer 402.
    """
    spare = available_microcents - quote.fixed_microcents
    if spare <= 0:
        return 0
    if quote.output_rate == 0:
        return UNLIMITED_OUTPUT_TOKENS
    return min(UNLIMITED_OUTPUT_TOKENS, floor(spare / quote.output_rate))


def hold_microcents(quote: Quote, max_output_tokens: int) -> int:
    """The reservation for a call clamped to ``max_output_tokens``."""
    return quote.fixed_microcents + ceil(max(0, max_output_tokens) * quote.output_rate)


# --- line items -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Item:
    name: str
    quantity: int
    unit: str
    rate_key: str
    rate: Fraction
    cost: Fraction  # µ¢, exact

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "quantity": self.quantity,
            "unit": self.unit,
            "rate": {self.rate_key: fraction_to_str(self.rate)},
            "cost_microcents": fraction_to_str(self.cost),
        }


def _tokens(name: str, quantity: int, rate: Fraction) -> _Item:
    return _Item(name, quantity, "tokens", "cents_per_1m", rate, quantity * rate)


def _input_items(u: Usage, tier: _Tier, parts: int) -> list[_Item]:
    if parts == 0:
        return [_tokens("input_tokens", u.input_tokens, tier.input)]
    items = [_tokens("input_tokens_uncached", max(0, u.input_tokens - parts), tier.input)]
    for name, quantity, rate in (
        ("input_tokens_cached", u.cached_input_tokens, tier.cached_input),
        ("input_tokens_cache_write", u.cache_write_tokens, tier.cache_write),
        ("input_tokens_cache_read", u.cache_read_tokens, tier.cache_read),
    ):
        if quantity:
            items.append(_tokens(name, quantity, rate))
    return items


def _output_items(u: Usage, tier: _Tier) -> list[_Item]:
    if u.reasoning_tokens == 0:
        return [_tokens("output_tokens", u.output_tokens, tier.output)]
    visible = max(0, u.output_tokens - u.reasoning_tokens)
    return [
        _tokens("output_tokens_non_reasoning", visible, tier.output),
        _tokens("output_tokens_reasoning", u.reasoning_tokens, tier.reasoning),
    ]


def _fee_items(card: RateCard, u: Usage) -> tuple[list[_Item], list[str]]:
    items: list[_Item] = []
    unpriced: list[str] = []
    fees = (
        ("grounding_queries", u.grounding_queries, "queries", "cents_per_1k",
         card.grounding_cents_per_1k_queries, _MICROCENTS_PER_1K_CENT),
        ("tool_web_search_call", u.web_search_calls, "calls", "cents_per_call",
         card.web_search_cents_per_call, MICROCENTS_PER_CENT),
        ("tool_file_search_call", u.file_search_calls, "calls", "cents_per_call",
         card.file_search_cents_per_call, MICROCENTS_PER_CENT),
    )
    for name, quantity, unit, rate_key, rate, scale in fees:
        if not quantity:
            continue
        if rate is None:
            # The table has no fee for it: nothing to charge, but say so in the ledger row.
            unpriced.append(name)
            continue
        items.append(_Item(name, quantity, unit, rate_key, rate, quantity * rate * scale))
    return items, unpriced


# --- rates ------------------------------------------------------------------------------


def _tier(card: RateCard, prompt_tokens: int) -> _Tier:
    cliff = card.context_cliff_tokens
    applied = cliff is not None and prompt_tokens > cliff
    cin = card.cliff_input_cents_per_1m if applied else None
    cout = card.cliff_output_cents_per_1m if applied else None
    base_in, base_out = card.input_cents_per_1m, card.output_cents_per_1m
    return _Tier(
        input=cin if cin is not None else base_in,
        cached_input=_scaled(card.cached_input_rate, cin, base_in),
        cache_write=_scaled(card.cache_write_rate, cin, base_in),
        cache_read=_scaled(card.cache_read_rate, cin, base_in),
        output=cout if cout is not None else base_out,
        reasoning=_scaled(card.reasoning_rate, cout, base_out),
        cliff_applied=applied,
    )


def _scaled(rate: Fraction, cliff: Fraction | None, base: Fraction) -> Fraction:
    if cliff is None:
        return rate
    if base == 0:  # no ratio to apply: never price a part below the cliff rate itself
        return max(rate, cliff)
    return rate * cliff / base


def _max_input_rate(tier: _Tier, cache_write: bool) -> Fraction:
    rates = [tier.input, tier.cached_input, tier.cache_read]
    if cache_write:
        rates.append(tier.cache_write)
    return max(rates)


def _worst_fees(card: RateCard, tool_calls_max: int, grounding_queries_max: int) -> Fraction:
    per_call = max(card.web_search_cents_per_call or 0, card.file_search_cents_per_call or 0)
    grounding = card.grounding_cents_per_1k_queries or 0
    return (
        max(0, tool_calls_max) * Fraction(per_call) * MICROCENTS_PER_CENT
        + max(0, grounding_queries_max) * Fraction(grounding) * _MICROCENTS_PER_1K_CENT
    )


def _non_negative(usage: Usage) -> Usage:
    # A negative count can only be a parsing bug; it must never lower a charge.
    values = {name: max(0, value) for name, value in usage.as_dict().items()}
    return Usage(**values)
