"""One model's prices, exact, parsed from a schema-2 pricing document entry.

Units: a document gives US cents per ``per`` units of a price key (``input_mtok`` = cents per
1M input tokens, ``web_searches_kcount`` = cents per 1,000 searches). Rates are ``Fraction``
so "17.5" stays 17.5 and the only rounding anywhere is the single round-up in ``billing``.

A card holds dated prices (the last entry whose ``from`` date has come applies) and request
variants (``when: {"service_tier": "priority"}``) that override some keys. ``resolve`` picks
the prices in force for one call; a request option no variant prices is refused there, never
priced at standard rates.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from fractions import Fraction
from typing import Any

from spendguard_proxy.errors import PricingError, UnpricedOption
from spendguard_proxy.pricing.match import Match, parse_match
from spendguard_proxy.pricing.units import BY_PRICE_KEY

PROVIDERS = ("openai", "grok", "anthropic", "gemini")

# Plain decimal: digits, optional fraction. No sign, exponent, spaces or "NaN" — a price list
# should be readable by a human and by any JSON consumer without surprises.
_DECIMAL = re.compile(r"\d{1,15}(\.\d{1,12})?")
_ENTRY_KEYS = frozenset(
    {"id", "match", "prices", "variants", "max_output_tokens", "context_window", "deprecated"}
)


@dataclass(frozen=True, slots=True)
class Tiered:
    """A rate that rises with the prompt: tier ``(start, price)`` applies to every unit of the
    call when its total input tokens are strictly above ``start``."""

    base: Fraction
    tiers: tuple[tuple[int, Fraction], ...]  # ascending starts

    def at(self, input_tokens: int) -> Fraction:
        rate = self.base
        for start, price in self.tiers:
            if input_tokens > start:
                rate = price
        return rate

    def highest(self, input_tokens_max: int) -> Fraction:
        """The most this rate can be for a call of at most ``input_tokens_max`` input tokens."""
        return max([self.base] + [p for s, p in self.tiers if input_tokens_max > s])


Rate = Fraction | Tiered
Prices = Mapping[str, Rate]  # price key -> cents per ``per`` units


def rate_at(rate: Rate, input_tokens: int) -> Fraction:
    return rate.at(input_tokens) if isinstance(rate, Tiered) else rate


def rate_highest(rate: Rate, input_tokens_max: int) -> Fraction:
    return rate.highest(input_tokens_max) if isinstance(rate, Tiered) else rate


@dataclass(frozen=True, slots=True)
class DatedPrices:
    starts: date | None  # None: the fallback, in force before any dated entry
    cents: Prices


@dataclass(frozen=True, slots=True)
class Variant:
    when: Mapping[str, str]
    starts: date | None
    cents: Prices


@dataclass(frozen=True, slots=True)
class RateCard:
    """Every price of one model: dated standard prices plus request variants."""

    provider: str
    model: str  # the canonical id
    match: Match
    prices: tuple[DatedPrices, ...]
    variants: tuple[Variant, ...] = ()
    max_output_tokens: int | None = None
    context_window: int | None = None
    deprecated: bool = False
    source: str | None = None
    equal_names: tuple[str, ...] = ()  # the exact names its match rule lists
    # Request options with a price, e.g. {"service_tier": ["flex", "priority"]}: derived
    # from the variants once, since the relay asks on every call.
    option_values: Mapping[str, list[str]] = field(init=False)

    def __post_init__(self) -> None:
        found: dict[str, set[str]] = {}
        for variant in self.variants:
            for key, value in variant.when.items():
                found.setdefault(key, set()).add(value)
        options = {key: sorted(values) for key, values in sorted(found.items())}
        object.__setattr__(self, "option_values", options)


    def resolve(
        self, at: datetime | None = None, context: Mapping[str, str] | None = None
    ) -> Prices:
        """The prices in force at ``at`` for a request with ``context`` (say
        ``{"service_tier": "priority"}``). UnpricedOption when a context value has no price:
        charging it at standard rates could bill more than the hold."""
        day = (at or datetime.now(UTC)).astimezone(UTC).date()
        standard = self.prices[0].cents
        for entry in reversed(self.prices):
            if entry.starts is None or entry.starts <= day:
                standard = entry.cents
                break
        if not context:
            return standard
        resolved = dict(standard)
        overridden: set[str] = set()
        priced: set[tuple[str, str]] = set()
        for variant in self.variants:
            if variant.starts is not None and variant.starts > day:
                continue
            if any(context.get(k) != v for k, v in variant.when.items()):
                continue
            priced.update(variant.when.items())
            for key, rate in variant.cents.items():
                if key not in overridden:  # first matching variant wins per key
                    overridden.add(key)
                    resolved[key] = rate
        for item in context.items():
            if item not in priced:
                raise UnpricedOption(self.provider, self.model, *item)
        return resolved


def parse_entry(provider: str, entry: Any, index: int) -> RateCard:
    """Build a RateCard from ``models[provider][index]``; PricingError names the bad field."""
    where = f"models.{provider}[{index}]"
    if not isinstance(entry, dict):
        raise PricingError(f"Pricing document: {where} must be an object")
    model = entry.get("id")
    if not isinstance(model, str) or not model:
        raise PricingError(f"Pricing document: {where}.id must be a non-empty string")
    where = f"models.{provider}.{model}"
    unknown = [k for k in entry if k not in _ENTRY_KEYS and not k.startswith("_")]
    if unknown:
        raise PricingError(f"Pricing document: {where} has unknown field(s) {sorted(unknown)}")
    prices = entry.get("prices")
    if not isinstance(prices, list) or not prices:
        raise PricingError(f"Pricing document: {where}.prices must be a non-empty list")
    dated = tuple(_dated(p, f"{where}.prices[{i}]") for i, p in enumerate(prices))
    if any(d.starts is None for d in dated[1:]):
        raise PricingError(f"Pricing document: {where}.prices: only the first entry may omit from")
    if "input_mtok" not in dated[0].cents:
        raise PricingError(f"Pricing document: {where}.prices[0] is missing input_mtok")
    variants = entry.get("variants", [])
    if not isinstance(variants, list):
        raise PricingError(f"Pricing document: {where}.variants must be a list")
    rule = entry.get("match", {"equals": model})
    deprecated = entry.get("deprecated", False)
    if not isinstance(deprecated, bool):
        raise PricingError(f"Pricing document: {where}.deprecated must be true or false")
    return RateCard(
        provider=provider,
        model=model,
        match=parse_match(rule, f"{where}.match"),
        equal_names=equal_names(rule),
        prices=dated,
        variants=tuple(_variant(v, f"{where}.variants[{i}]") for i, v in enumerate(variants)),
        max_output_tokens=_optional_tokens(entry, "max_output_tokens", where),
        context_window=_optional_tokens(entry, "context_window", where),
        deprecated=deprecated,
        source=entry.get("_source") if isinstance(entry.get("_source"), str) else None,
    )


def equal_names(rule: Any) -> tuple[str, ...]:
    """Names an ``equals`` clause accepts outright (inside ``or``s): what schema 1 can alias."""
    if isinstance(rule, dict) and isinstance(rule.get("equals"), str):
        return (rule["equals"].lower(),)
    if isinstance(rule, dict) and isinstance(rule.get("or"), list):
        return tuple(n for r in rule["or"] for n in equal_names(r))
    return ()


def _dated(value: Any, where: str) -> DatedPrices:
    if not isinstance(value, dict) or set(value) - {"from", "cents"}:
        raise PricingError(f"Pricing document: {where} must be {{from?, cents}}")
    return DatedPrices(_starts(value, where), parse_cents(value.get("cents"), f"{where}.cents"))


def _variant(value: Any, where: str) -> Variant:
    if not isinstance(value, dict) or set(value) - {"when", "from", "cents"}:
        raise PricingError(f"Pricing document: {where} must be {{when, from?, cents}}")
    when = value.get("when")
    if (
        not isinstance(when, dict)
        or not when
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in when.items())
    ):
        raise PricingError(f"Pricing document: {where}.when must map option names to strings")
    # Empty cents are meaningful: the option is priced, at the standard rates.
    cents = parse_cents(value.get("cents"), f"{where}.cents", allow_empty=True)
    return Variant(dict(when), _starts(value, where), cents)


def _starts(value: dict[str, Any], where: str) -> date | None:
    raw = value.get("from")
    if raw is None:
        return None
    try:
        return date.fromisoformat(raw)
    except (TypeError, ValueError):
        message = f"Pricing document: {where}.from {raw!r} is not a YYYY-MM-DD date"
        raise PricingError(message) from None


def parse_cents(value: Any, where: str, allow_empty: bool = False) -> dict[str, Rate]:
    if not isinstance(value, dict) or not (value or allow_empty):
        raise PricingError(f"Pricing document: {where} must be a non-empty object of rates")
    unknown = [k for k in value if k not in BY_PRICE_KEY]
    if unknown:
        # A misspelt key would otherwise be ignored and the model under-priced.
        raise PricingError(
            f"Pricing document: {where} has unknown price key(s) {sorted(unknown)}; "
            f"known: {', '.join(BY_PRICE_KEY)}"
        )
    return {key: _rate(raw, f"{where}.{key}") for key, raw in value.items()}


def _rate(value: Any, where: str) -> Rate:
    if not isinstance(value, dict):
        return parse_rate(value, where)
    if set(value) != {"base", "tiers"} or not isinstance(value["tiers"], list):
        raise PricingError(f"Pricing document: {where} must be a rate or {{base, tiers}}")
    tiers = []
    for i, tier in enumerate(value["tiers"]):
        if not isinstance(tier, dict) or set(tier) != {"start", "price"}:
            raise PricingError(f"Pricing document: {where}.tiers[{i}] must be {{start, price}}")
        start = tier["start"]
        if isinstance(start, bool) or not isinstance(start, int) or start < 0:
            raise PricingError(f"Pricing document: {where}.tiers[{i}].start must be an integer")
        tiers.append((start, parse_rate(tier["price"], f"{where}.tiers[{i}].price")))
    if [s for s, _ in tiers] != sorted(s for s, _ in tiers):
        raise PricingError(f"Pricing document: {where}.tiers must be in ascending start order")
    return Tiered(parse_rate(value["base"], f"{where}.base"), tuple(tiers))


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


def _optional_tokens(entry: dict[str, Any], key: str, where: str) -> int | None:
    return parse_tokens(entry[key], f"{where}.{key}") if key in entry else None


def rate_to_json(rate: Rate) -> Any:
    if isinstance(rate, Tiered):
        return {
            "base": fraction_to_str(rate.base),
            "tiers": [{"start": s, "price": fraction_to_str(p)} for s, p in rate.tiers],
        }
    return fraction_to_str(rate)


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
