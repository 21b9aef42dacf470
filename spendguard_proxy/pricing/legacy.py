"""Schema 1, the reference SpendGuard's pricing document, read and written through schema 2.

Reading: a v1 entry (``rates[provider][model]`` with ``*_cents_per_1m`` keys and one context
cliff) becomes a card with one undated price and no variants; ``aliases`` become ``equals``
clauses of the model's match rule. The v1 cliff rule (cache parts scale by
``cliff_input / input``) becomes explicit tiers.

Writing: for sidecars that ask for schema 1, each model's prices in force now, standard tier,
as far as v1 can say them. Keys v1 has no word for (1-hour cache writes, audio, video, code
execution) are listed under the model's ``_schema_2_only`` note: a v1 reader cannot price
them, so a v2 reader should be preferred.
"""

from __future__ import annotations

from datetime import datetime
from fractions import Fraction
from typing import Any

from spendguard_proxy.errors import PricingError
from spendguard_proxy.pricing.match import parse_match
from spendguard_proxy.pricing.ratecard import (
    DatedPrices,
    Prices,
    Rate,
    RateCard,
    Tiered,
    fraction_to_str,
    parse_rate,
    parse_tokens,
)

V1_RATE_KEYS = (
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
V1_TOKEN_KEYS = ("context_cliff_tokens", "max_output_tokens")
_PER_CALL_TO_KCOUNT = 1000


def card_from_v1(
    provider: str, model: str, entry: Any, aliases: list[str]
) -> RateCard:
    where = f"rates.{provider}.{model}"
    if not isinstance(entry, dict):
        raise PricingError(f"Pricing document: {where} must be an object of rates")
    unknown = [k for k in entry if k not in V1_RATE_KEYS + V1_TOKEN_KEYS and not k.startswith("_")]
    if unknown:
        raise PricingError(f"Pricing document: {where} has unknown field(s) {sorted(unknown)}")
    for key in ("input_cents_per_1m", "output_cents_per_1m"):
        if key not in entry:
            raise PricingError(f"Pricing document: {where} is missing {key}")
    r = {k: parse_rate(entry[k], f"{where}.{k}") for k in V1_RATE_KEYS if k in entry}
    tokens = {k: parse_tokens(entry[k], f"{where}.{k}") for k in V1_TOKEN_KEYS if k in entry}
    has_cliff = "context_cliff_tokens" in tokens
    if has_cliff != ("cliff_input_cents_per_1m" in r or "cliff_output_cents_per_1m" in r):
        raise PricingError(
            f"Pricing document: {where} needs context_cliff_tokens together with "
            "cliff_input_cents_per_1m and/or cliff_output_cents_per_1m"
        )
    cliff = tokens.get("context_cliff_tokens")
    base_in, base_out = r["input_cents_per_1m"], r["output_cents_per_1m"]
    cliff_in, cliff_out = r.get("cliff_input_cents_per_1m"), r.get("cliff_output_cents_per_1m")

    def tiered(rate: Fraction, cliff_rate: Fraction | None, base: Fraction) -> Rate:
        if cliff is None or cliff_rate is None:
            return rate
        scaled = max(rate, cliff_rate) if base == 0 else rate * cliff_rate / base
        return Tiered(rate, ((cliff, scaled),))

    # v1 priced reasoning apart; schema 2 has one output rate, so take the higher.
    output = max(base_out, r.get("reasoning_output_cents_per_1m", base_out))
    cents: dict[str, Rate] = {
        "input_mtok": tiered(base_in, cliff_in, base_in),
        "output_mtok": tiered(output, cliff_out, base_out),
    }
    cache_read = r.get("cached_input_cents_per_1m", r.get("cache_read_cents_per_1m"))
    if cache_read is not None:
        cents["cache_read_mtok"] = tiered(cache_read, cliff_in, base_in)
    if "cache_write_cents_per_1m" in r:
        cents["cache_write_mtok"] = tiered(r["cache_write_cents_per_1m"], cliff_in, base_in)
    searches = [r[k] * _PER_CALL_TO_KCOUNT for k in ("web_search_cents_per_call",) if k in r]
    searches += [r[k] for k in ("grounding_cents_per_1k_queries",) if k in r]
    if searches:
        cents["web_searches_kcount"] = max(searches)
    if "file_search_cents_per_call" in r:
        cents["storage_searches_kcount"] = r["file_search_cents_per_call"] * _PER_CALL_TO_KCOUNT
    names = [model, *aliases]
    rule = {"or": [{"equals": n} for n in names]}
    return RateCard(
        provider=provider,
        model=model,
        match=parse_match(rule, f"{where}.match"),
        equal_names=tuple(n.lower() for n in names),
        prices=(DatedPrices(None, cents),),
        max_output_tokens=tokens.get("max_output_tokens"),
        source=entry.get("_source") if isinstance(entry.get("_source"), str) else None,
    )


def v1_entry(card: RateCard, at: datetime) -> dict[str, Any]:
    """The card's standard prices at ``at`` as a v1 entry (plus ``_schema_2_only``)."""
    prices: Prices = card.resolve(at)
    entry: dict[str, Any] = {}
    cliff: int | None = None
    leftovers = []
    for key, rate in prices.items():
        base = rate.base if isinstance(rate, Tiered) else rate
        if isinstance(rate, Tiered) and rate.tiers:
            cliff = rate.tiers[0][0] if cliff is None else cliff
        v1_key = _V1_NAME.get(key)
        if v1_key is None:
            leftovers.append(key)
            continue
        scale = Fraction(1, _PER_CALL_TO_KCOUNT) if key in _KCOUNT_TO_CALL else 1
        entry[v1_key] = fraction_to_str(base * scale)
    for key, v1_key in (("input_mtok", "cliff_input_cents_per_1m"),
                        ("output_mtok", "cliff_output_cents_per_1m")):
        rate = prices.get(key)
        if cliff is not None and isinstance(rate, Tiered) and rate.tiers:
            entry[v1_key] = fraction_to_str(rate.at(cliff + 1))
    if cliff is not None and any(k.startswith("cliff_") for k in entry):
        entry["context_cliff_tokens"] = cliff
    entry.setdefault("output_cents_per_1m", "0")  # embedding models: no output to price
    if card.max_output_tokens is not None:
        entry["max_output_tokens"] = card.max_output_tokens
    if leftovers:
        entry["_schema_2_only"] = sorted(leftovers)
    return entry


_V1_NAME = {
    "input_mtok": "input_cents_per_1m",
    "output_mtok": "output_cents_per_1m",
    "cache_read_mtok": "cached_input_cents_per_1m",
    "cache_write_mtok": "cache_write_cents_per_1m",
    "web_searches_kcount": "web_search_cents_per_call",
    "storage_searches_kcount": "file_search_cents_per_call",
}
_KCOUNT_TO_CALL = frozenset({"web_searches_kcount", "storage_searches_kcount"})


def v1_document(table: Any, at: datetime) -> dict[str, Any]:
    """A schema-1 document of ``table``'s prices in force at ``at``; ``aliases`` lists the
    ``equals`` names of each model's match rule (v1 cannot say prefixes or patterns)."""
    rates: dict[str, dict[str, Any]] = {}
    aliases: dict[str, dict[str, str]] = {}
    taken: set[tuple[str, str]] = set()
    for card in table.entries():
        rates.setdefault(card.provider, {})[card.model] = v1_entry(card, at)
        taken.add((card.provider, card.model))
    for card in table.entries():
        for name in card.equal_names:
            if (card.provider, name) not in taken:
                taken.add((card.provider, name))
                aliases.setdefault(card.provider, {})[name] = card.model
    doc = {k: v for k, v in table.document.items() if k not in ("models", "source")}
    doc.update(schema_version="1", rates=rates, aliases=aliases)
    return doc
