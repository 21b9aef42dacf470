"""One model's rates, exact, parsed from a pricing document entry.

Units: a document says "cents per 1M tokens"; 1 cent = 1,000,000 µ¢, so that number *is* the
price of one token in microcents. Rates are kept as ``Fraction`` so "17.5" stays 17.5 and the
only rounding anywhere is the single round-up in ``billing``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from spendguard_proxy.errors import PricingError

PROVIDERS = ("openai", "grok", "anthropic", "gemini")

# Rates per token (µ¢) or per unit (cents); names are the document's keys.
RATE_KEYS = (
    "input_cents_per_1m",
    "output_cents_per_1m",
    "cached_input_cents_per_1m",
    "reasoning_output_cents_per_1m",
    "cache_write_cents_per_1m",
    "cache_read_cents_per_1m",
    "grounding_cents_per_1k_queries",
    "web_search_cents_per_call",
    "file_search_cents_per_call",
    "cliff_input_cents_per_1m",
    "cliff_output_cents_per_1m",
)
TOKEN_KEYS = ("context_cliff_tokens", "max_output_tokens")
REQUIRED_KEYS = ("input_cents_per_1m", "output_cents_per_1m")

# Plain decimal: digits, optional fraction. No sign, exponent, spaces or "NaN" — a price list
# should be readable by a human and by any JSON consumer without surprises.
_DECIMAL = re.compile(r"\d{1,15}(\.\d{1,12})?")


@dataclass(frozen=True, slots=True)
class RateCard:
    """Exact rates of one model. ``*_cents_per_1m`` values are µ¢ per token."""

    provider: str
    model: str
    input_cents_per_1m: Fraction
    output_cents_per_1m: Fraction
    cached_input_cents_per_1m: Fraction | None = None
    reasoning_output_cents_per_1m: Fraction | None = None
    cache_write_cents_per_1m: Fraction | None = None
    cache_read_cents_per_1m: Fraction | None = None
    grounding_cents_per_1k_queries: Fraction | None = None
    web_search_cents_per_call: Fraction | None = None
    file_search_cents_per_call: Fraction | None = None
    context_cliff_tokens: int | None = None
    cliff_input_cents_per_1m: Fraction | None = None
    cliff_output_cents_per_1m: Fraction | None = None
    max_output_tokens: int | None = None

    # Fallbacks are deliberately never cheaper than what a provider could bill for the part:
    # an unpriced cache hit costs full input, unpriced reasoning costs full output.
    @property
    def cached_input_rate(self) -> Fraction:
        return _first(self.cached_input_cents_per_1m, self.cache_read_cents_per_1m,
                      self.input_cents_per_1m)

    @property
    def cache_read_rate(self) -> Fraction:
        return _first(self.cache_read_cents_per_1m, self.cached_input_cents_per_1m,
                      self.input_cents_per_1m)

    @property
    def cache_write_rate(self) -> Fraction:
        return _first(self.cache_write_cents_per_1m, self.input_cents_per_1m)

    @property
    def reasoning_rate(self) -> Fraction:
        return _first(self.reasoning_output_cents_per_1m, self.output_cents_per_1m)


def _first(*values: Fraction | None) -> Fraction:
    for value in values:
        if value is not None:
            return value
    raise AssertionError("the last fallback is always set")


def parse_card(provider: str, model: str, entry: Any) -> RateCard:
    """Build a RateCard from ``rates[provider][model]``; PricingError names the bad field."""
    where = f"rates.{provider}.{model}"
    if not isinstance(entry, dict):
        raise PricingError(f"Pricing document: {where} must be an object of rates")
    unknown = [k for k in entry if k not in RATE_KEYS + TOKEN_KEYS and not k.startswith("_")]
    if unknown:
        # A misspelt key (say "cliff_input_cents_per_1M") would otherwise be ignored and the
        # model under-priced; keys starting with "_" are free-form notes.
        raise PricingError(f"Pricing document: {where} has unknown field(s) {sorted(unknown)}")
    for key in REQUIRED_KEYS:
        if key not in entry:
            raise PricingError(f"Pricing document: {where} is missing {key}")
    fields: dict[str, Any] = {}
    for key in RATE_KEYS:
        if key in entry:
            fields[key] = parse_rate(entry[key], f"{where}.{key}")
    for key in TOKEN_KEYS:
        if key in entry:
            fields[key] = parse_tokens(entry[key], f"{where}.{key}")
    _check_cliff(fields, where)
    return RateCard(provider=provider, model=model, **fields)


def _check_cliff(fields: dict[str, Any], where: str) -> None:
    has_threshold = "context_cliff_tokens" in fields
    has_rates = "cliff_input_cents_per_1m" in fields or "cliff_output_cents_per_1m" in fields
    if has_threshold != has_rates:
        raise PricingError(
            f"Pricing document: {where} needs context_cliff_tokens together with "
            "cliff_input_cents_per_1m and/or cliff_output_cents_per_1m"
        )


def parse_rate(value: Any, where: str) -> Fraction:
    """An integer or a decimal string, >= 0, as an exact Fraction."""
    if isinstance(value, bool):
        raise PricingError(f"Pricing document: {where} must be a number, not {value!r}")
    if isinstance(value, float):
        raise PricingError(
            f"Pricing document: {where} is a JSON float ({value!r}); write rates as integers "
            f'or decimal strings such as "17.5" so money stays exact'
        )
    if isinstance(value, int):
        if value < 0:
            raise PricingError(f"Pricing document: {where} must not be negative")
        return Fraction(value)
    if isinstance(value, str) and _DECIMAL.fullmatch(value):
        return Fraction(value)
    raise PricingError(
        f'Pricing document: {where} must be an integer or a decimal string like "17.5", '
        f"got {value!r}"
    )


def parse_tokens(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise PricingError(f"Pricing document: {where} must be a positive integer, got {value!r}")
    return value


def fraction_to_str(value: Fraction) -> str:
    """Exact text of a rate or amount: "17.5", "3", or "1/3" when no finite decimal exists."""
    if value.denominator == 1:
        return str(value.numerator)
    digits = _decimal_places(value.denominator)
    if digits is None:
        return f"{value.numerator}/{value.denominator}"
    scaled = value * 10**digits
    sign = "-" if scaled < 0 else ""
    whole, frac = divmod(abs(scaled.numerator), 10**digits)
    return f"{sign}{whole}.{str(frac).rjust(digits, '0').rstrip('0')}"


def _decimal_places(denominator: int) -> int | None:
    """Smallest k with denominator | 10**k, or None if the decimal does not terminate."""
    twos = fives = 0
    while denominator % 2 == 0:
        denominator //= 2
        twos += 1
    while denominator % 5 == 0:
        denominator //= 5
        fives += 1
    return max(twos, fives) if denominator == 1 else None
