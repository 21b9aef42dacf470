"""PriceTable: a validated pricing document, its rate cards and its aliases.

A model name resolves in exactly two ways: it is a key of ``rates[provider]``, or the
document's ``aliases[provider]`` maps it to one. Nothing is guessed: a dated id such as
``gpt-4o-2024-05-13`` is priced differently from ``gpt-4o``, so stripping a date suffix could
under-charge; the document must say which dated ids share a price.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from spendguard_proxy.errors import PricingError, UnknownModel
from spendguard_proxy.pricing.canonical import unsigned
from spendguard_proxy.pricing.checks import engine_bounds, parse_timestamp
from spendguard_proxy.pricing.ratecard import PROVIDERS, RateCard, parse_card


@dataclass(frozen=True)
class PriceTable:
    source: str  # "bundled" | "file" | "remote"
    origin: str  # where it came from, for messages: a path, a URL or "bundled"
    cards: dict[str, dict[str, RateCard]]
    aliases: dict[str, dict[str, str]]
    generated_at: datetime
    expires_at: datetime
    as_of: date
    loaded_at: datetime
    etag: str | None
    document: dict[str, Any] = field(repr=False)  # the document without its signature

    @classmethod
    def from_document(
        cls,
        doc: dict[str, Any],
        *,
        source: str,
        origin: str,
        etag: str | None = None,
        loaded_at: datetime | None = None,
    ) -> PriceTable:
        """Validate the document's shape and rates (not its trust: see ``checks``)."""
        if not isinstance(doc.get("schema_version"), str):
            raise PricingError(f"Pricing document from {origin} is missing schema_version")
        generated_at = parse_timestamp(doc.get("generated_at"), "generated_at", origin)
        engine_bounds(doc, origin)
        cards = _parse_rates(doc.get("rates"), origin)
        return cls(
            source=source,
            origin=origin,
            cards=cards,
            aliases=_parse_aliases(doc.get("aliases", {}), cards, origin),
            generated_at=generated_at,
            expires_at=parse_timestamp(doc.get("expires_at"), "expires_at", origin),
            as_of=_parse_as_of(doc.get("as_of"), generated_at, origin),
            loaded_at=loaded_at or datetime.now(UTC),
            etag=etag,
            document=unsigned(doc),
        )

    def lookup(self, provider: str, model: str) -> RateCard:
        models = self.cards.get(provider, {})
        card = models.get(model)
        if card is None:
            target = self.aliases.get(provider, {}).get(model)
            card = models.get(target) if target is not None else None
        if card is None:
            raise UnknownModel(provider, model)
        return card

    def entries(self) -> Iterator[RateCard]:
        """Every rate card, by provider then model name."""
        for provider in sorted(self.cards):
            for model in sorted(self.cards[provider]):
                yield self.cards[provider][model]

    def aliases_of(self, provider: str, model: str) -> list[str]:
        return sorted(a for a, t in self.aliases.get(provider, {}).items() if t == model)

    def age_seconds(self, now: datetime | None = None) -> float:
        """How old the prices are: seconds since the document's ``generated_at``."""
        now = now or datetime.now(UTC)
        return max(0.0, (now - self.generated_at).total_seconds())


def _parse_rates(rates: Any, origin: str) -> dict[str, dict[str, RateCard]]:
    if not isinstance(rates, dict) or not rates:
        raise PricingError(f"Pricing document from {origin} is missing its rates object")
    cards: dict[str, dict[str, RateCard]] = {}
    for provider, models in rates.items():
        if provider.startswith("_"):
            continue
        _check_provider(provider, origin)
        if not isinstance(models, dict):
            raise PricingError(
                f"Pricing document from {origin}: rates.{provider} must be an object"
            )
        cards[provider] = {
            model: parse_card(provider, model, entry)
            for model, entry in models.items()
            if not model.startswith("_")
        }
    if not any(cards.values()):
        raise PricingError(f"Pricing document from {origin} prices no model")
    return cards


def _parse_aliases(
    aliases: Any, cards: dict[str, dict[str, RateCard]], origin: str
) -> dict[str, dict[str, str]]:
    if not isinstance(aliases, dict):
        raise PricingError(f"Pricing document from {origin}: aliases must be an object")
    parsed: dict[str, dict[str, str]] = {}
    for provider, mapping in aliases.items():
        if provider.startswith("_"):
            continue
        _check_provider(provider, origin)
        if not isinstance(mapping, dict):
            raise PricingError(
                f"Pricing document from {origin}: aliases.{provider} must be an object"
            )
        models = cards.get(provider, {})
        for alias, target in mapping.items():
            where = f"aliases.{provider}.{alias}"
            if not isinstance(target, str) or target not in models:
                raise PricingError(
                    f"Pricing document from {origin}: {where} points at {target!r}, "
                    f"which rates.{provider} does not price"
                )
            if alias in models:
                raise PricingError(
                    f"Pricing document from {origin}: {where} shadows a priced model"
                )
        parsed[provider] = dict(mapping)
    return parsed


def _parse_as_of(value: Any, generated_at: datetime, origin: str) -> date:
    if value is None:
        return generated_at.date()
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise PricingError(
            f"Pricing document from {origin}: as_of {value!r} is not a YYYY-MM-DD date"
        ) from None


def _check_provider(provider: str, origin: str) -> None:
    if provider not in PROVIDERS:
        raise PricingError(
            f"Pricing document from {origin} names unknown provider {provider!r}; "
            f"expected one of {', '.join(PROVIDERS)}"
        )
