"""Cost maths in exact fractions, rounded up once to integer microcents.

``cost`` prices what a provider reported; ``worst_case_quote`` bounds what a request *can*
cost before it runs, so the ledger can reserve it. Both take the ``Prices`` a card resolved for
the call (its date, its service tier). Guarantee (tested with Hypothesis): for a usage whose
input fits in the quoted input bound, whose output fits in ``max_output_tokens`` and whose
tool calls stay within the quoted fees, ``cost(...) <= hold_microcents(quote, max_output)``.

Charges follow genai-prices' rule, so they equal its ``calc_price``: each count is charged at
the most specific priced unit it belongs to (see ``pricing.units``), and a tiered rate applies
to every unit of the call when its total input tokens are strictly above the tier's start.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from math import ceil, floor
from typing import Any

from spendguard_proxy.errors import UnpricedOption
from spendguard_proxy.pricing.ratecard import (
    Prices,
    RateCard,
    fraction_to_str,
    rate_at,
    rate_highest,
)
from spendguard_proxy.pricing.units import BY_PRICE_KEY, BY_USAGE_KEY, Unit
from spendguard_proxy.usage import Usage

MICROCENTS_PER_CENT = 1_000_000
# Answer of affordable_output_tokens when output is free: fits a 32-bit max-tokens field.
UNLIMITED_OUTPUT_TOKENS = 2**31 - 1
# Input modalities whose rate may differ from text and that need their own price to be sent.
PRICED_MEDIA = ("audio", "video")


@dataclass(frozen=True, slots=True)
class Charge:
    microcents: int
    breakdown: dict[str, Any]  # JSON-able: ints, strings, bools, lists, dicts


@dataclass(frozen=True, slots=True)
class Quote:
    """Worst case of a request: a fixed part plus a price per output token (both µ¢)."""

    fixed_microcents: int
    output_rate: Fraction


def usage_counts(usage: Usage) -> dict[str, int]:
    """Our usage in genai-prices' usage keys (negative counts, a parsing bug, become 0)."""
    u = {name: max(0, value) for name, value in usage.as_dict().items()}
    return {
        "input_tokens": u["input_tokens"],
        "output_tokens": u["output_tokens"],
        "cache_read_tokens": u["cached_input_tokens"] + u["cache_read_tokens"],
        "cache_write_tokens": u["cache_write_tokens"],
        "cache_write_1h_tokens": u["cache_write_1h_tokens"],
        "input_audio_tokens": u["input_audio_tokens"],
        "input_image_tokens": u["input_image_tokens"],
        "input_video_tokens": u["input_video_tokens"],
        "cache_audio_read_tokens": u["cache_audio_read_tokens"],
        "output_audio_tokens": u["output_audio_tokens"],
        "output_image_tokens": u["output_image_tokens"],
        "web_searches": u["web_search_calls"] + u["grounding_queries"],
        "storage_searches": u["file_search_calls"],
        "code_executions": u["code_executions"],
    }


def cost(card: RateCard, usage: Usage, prices: Prices | None = None) -> Charge:
    """The exact price of ``usage`` under ``prices`` (default: the card's standard prices in
    force now), rounded up once to whole microcents.

    A part larger than its whole (say cache reads above input tokens) is charged as reported:
    the whole is raised to its parts, the larger (conservative) reading.
    """
    prices = card.resolve() if prices is None else prices
    counts = usage_counts(usage)
    priced = sorted(
        (BY_PRICE_KEY[key] for key in prices),
        key=lambda unit: (-len(unit.dimensions), unit.usage_key),
    )
    leaves = _leaf_counts(priced, counts)
    input_total = max(counts["input_tokens"], _parts_total(leaves, "input"))
    items = []
    exact = Fraction(0)
    for unit in priced:
        quantity = leaves[unit.usage_key]
        if not quantity:
            continue
        rate = rate_at(prices[unit.price_key], input_total)
        line = quantity * rate * MICROCENTS_PER_CENT / unit.per
        exact += line
        items.append({
            "name": unit.usage_key,
            "quantity": quantity,
            "rate": {unit.price_key: fraction_to_str(rate)},
            "cost_microcents": fraction_to_str(line),
        })
    microcents = ceil(exact)
    breakdown: dict[str, Any] = {
        "provider": card.provider,
        "model": card.model,
        "usage": usage.as_dict(),
        "charges": items,
        "totals": {
            "exact_microcents": fraction_to_str(exact),
            "realized_microcents": microcents,
            "realized_cents_ceiled": -(-microcents // MICROCENTS_PER_CENT),
        },
    }
    if usage.service_tier:
        breakdown["service_tier"] = usage.service_tier
    unpriced = [k for k in ("web_searches", "storage_searches", "code_executions")
                if counts[k] and BY_USAGE_KEY[k].price_key not in prices]
    if unpriced:
        breakdown["unpriced"] = unpriced  # nothing to charge, but say so in the ledger row
    return Charge(microcents=microcents, breakdown=breakdown)


def worst_case_quote(
    card: RateCard,
    *,
    input_tokens: int,
    prices: Prices | None = None,
    media_tokens: Mapping[str, int] | None = None,
    cache_write: str | None = None,
    fees: Mapping[str, int] | None = None,
) -> Quote:
    """Bound the cost of a request whose input is at most ``input_tokens`` (of which
    ``media_tokens[modality]`` are audio/image/video), that may write the prompt cache for
    ``cache_write`` ("5m" or "1h") and use at most ``fees[unit]`` tool calls.

    Each input token is priced at the highest rate that can apply to its modality (cache
    writes only when asked for, every tier the bound can reach), output at the highest output
    rate. UnpricedOption when the request can trigger a charge the table has no price for.
    """
    prices = card.resolve() if prices is None else prices
    input_tokens = max(0, input_tokens)
    media = {m: max(0, n) for m, n in (media_tokens or {}).items() if n}
    if cache_write == "1h" and "cache_write_1h_mtok" not in prices:
        raise UnpricedOption(card.provider, card.model, "cache_control.ttl", "1h")
    for modality in PRICED_MEDIA:
        if media.get(modality) and f"input_{modality}_mtok" not in prices:
            raise UnpricedOption(card.provider, card.model, "input", modality)
    # A token rate in cents per 1M tokens is exactly µ¢ per token.
    text_tokens = max(0, input_tokens - sum(media.values()))
    fixed = text_tokens * _input_rate(prices, None, input_tokens, cache_write)
    for modality, tokens in media.items():
        fixed += tokens * _input_rate(prices, modality, input_tokens, cache_write)
    for usage_key, calls in (fees or {}).items():
        if calls <= 0:
            continue
        unit = BY_USAGE_KEY[usage_key]
        if unit.price_key not in prices:
            raise UnpricedOption(card.provider, card.model, "tool", usage_key)
        rate = rate_highest(prices[unit.price_key], input_tokens)
        fixed += calls * rate * MICROCENTS_PER_CENT / unit.per
    output_rate = max(
        (rate_highest(prices[u.price_key], input_tokens) for u in _output_units(prices)),
        default=Fraction(0),
    )
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


def output_cost_microcents(quote: Quote, output_tokens: int) -> int:
    """What ``output_tokens`` beyond the hold's own would cost at the quoted output rate."""
    return ceil(max(0, output_tokens) * quote.output_rate)


# ---------------------------------------------------------------------------------------


def _leaf_counts(priced: list[Unit], counts: Mapping[str, int]) -> dict[str, int]:
    """Each priced unit's own count: its count less what more specific priced units take."""
    leaves: dict[str, int] = {}
    for unit in priced:  # most specific first
        taken = sum(leaves[d.usage_key] for d in priced if d is not unit and unit.covers(d)
                    and d.usage_key in leaves)
        leaves[unit.usage_key] = max(0, counts.get(unit.usage_key, 0) - taken)
    return leaves


def _parts_total(leaves: Mapping[str, int], direction: str) -> int:
    return sum(n for key, n in leaves.items() if BY_USAGE_KEY[key].direction == direction)


def _input_rate(
    prices: Prices, modality: str | None, input_tokens: int, cache_write: str | None
) -> Fraction:
    rates = []
    for key, rate in prices.items():
        unit = BY_PRICE_KEY[key]
        if unit.direction != "input" or unit.modality not in (None, modality):
            continue
        if unit.token_type == "cache_write" and (
            cache_write is None or (unit.cache_ttl == "1h" and cache_write != "1h")
        ):
            continue
        rates.append(rate_highest(rate, input_tokens))
    return max(rates, default=Fraction(0))


def _output_units(prices: Prices) -> list[Unit]:
    units = (BY_PRICE_KEY[key] for key in prices)
    return [u for u in units if u.direction == "output" and u.modality in (None, "text")]


# Tier names providers report for their standard rates: no variant needed.
STANDARD_TIERS = frozenset({"default", "standard", "standard_only", "on_demand"})


def settled_context(requested: Mapping[str, str], reported_tier: str | None) -> dict[str, str]:
    """The price context to settle by: the tier the provider says it used, else the one sent."""
    context = dict(requested)
    if reported_tier is not None:
        if reported_tier.lower() in STANDARD_TIERS:
            context.pop("service_tier", None)
        else:
            context["service_tier"] = reported_tier.lower()
    return context
