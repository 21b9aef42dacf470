"""PriceTable: a validated pricing document and its rate cards, looked up by model name.

A model name resolves to the card whose id it is, else to the first card (in document order)
whose match rule accepts it, as genai-prices resolves names: a dated snapshot such as
``gpt-4.1-2025-04-14`` resolves through ``gpt-4.1``'s rule. Nothing is guessed beyond the rules:
a name no rule accepts is an unknown model (400), never priced like a neighbour.

Schema 2 is the native format; a schema-1 document (the reference SpendGuard's) is read
through ``legacy``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from spendguard_proxy.errors import PricingError, UnknownModel
from spendguard_proxy.pricing.canonical import unsigned
from spendguard_proxy.pricing.checks import engine_bounds, parse_timestamp
from spendguard_proxy.pricing.legacy import card_from_v1
from spendguard_proxy.pricing.ratecard import PROVIDERS, RateCard, parse_entry

SCHEMA_VERSIONS = ("1", "2")


@dataclass(frozen=True)
class PriceTable:
    source: str  # "bundled" | "file" | "remote"
    origin: str  # where it came from, for messages: a path, a URL or "bundled"
    cards: dict[str, list[RateCard]]  # per provider, in match order
    generated_at: datetime
    expires_at: datetime
    as_of: date
    loaded_at: datetime
    etag: str | None
    document: dict[str, Any] = field(repr=False)  # the document without its signature
    _by_id: dict[tuple[str, str], RateCard] = field(repr=False, default_factory=dict)
    _resolved: dict[tuple[str, str], RateCard | None] = field(repr=False, default_factory=dict)

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
        version = doc.get("schema_version")
        if not isinstance(version, str):
            raise PricingError(f"Pricing document from {origin} is missing schema_version")
        if version not in SCHEMA_VERSIONS:
            raise PricingError(
                f"Pricing document from {origin} has schema_version {version!r}; this "
                f"SpendGuard reads {', '.join(SCHEMA_VERSIONS)}"
            )
        generated_at = parse_timestamp(doc.get("generated_at"), "generated_at", origin)
        engine_bounds(doc, origin)
        cards = _parse_v1(doc, origin) if version == "1" else _parse_v2(doc, origin)
        return cls(
            source=source,
            origin=origin,
            cards=cards,
            generated_at=generated_at,
            expires_at=parse_timestamp(doc.get("expires_at"), "expires_at", origin),
            as_of=_parse_as_of(doc.get("as_of"), generated_at, origin),
            loaded_at=loaded_at or datetime.now(UTC),
            etag=etag,
            document=unsigned(doc),
            _by_id={(p, c.model.lower()): c for p, cs in cards.items() for c in cs},
        )

    @property
    def schema_version(self) -> str:
        return self.document["schema_version"]

    def lookup(self, provider: str, model: str) -> RateCard:
        name = model.lower()
        key = (provider, name)
        card = self._by_id.get(key)
        if card is None:
            if key in self._resolved:
                card = self._resolved[key]
            else:
                card = next((c for c in self.cards.get(provider, ()) if c.match(name)), None)
                if len(self._resolved) < _RESOLVED_CACHE_MAX:
                    self._resolved[key] = card
        if card is None:
            raise UnknownModel(provider, model)
        return card

    def entries(self) -> Iterator[RateCard]:
        """Every rate card, by provider then model id."""
        for provider in sorted(self.cards):
            yield from sorted(self.cards[provider], key=lambda c: c.model)

    def model_count(self) -> int:
        return sum(len(cards) for cards in self.cards.values())

    def age_seconds(self, now: datetime | None = None) -> float:
        """How old the prices are: seconds since the document's ``generated_at``."""
        now = now or datetime.now(UTC)
        return max(0.0, (now - self.generated_at).total_seconds())


# Names clients send are few; the bound only stops a flood of random names growing the cache.
_RESOLVED_CACHE_MAX = 4096


def _parse_v2(doc: dict[str, Any], origin: str) -> dict[str, list[RateCard]]:
    models = doc.get("models")
    if not isinstance(models, dict) or not models:
        raise PricingError(f"Pricing document from {origin} is missing its models object")
    cards: dict[str, list[RateCard]] = {}
    for provider, entries in models.items():
        if provider.startswith("_"):
            continue
        _check_provider(provider, origin)
        if not isinstance(entries, list):
            raise PricingError(f"Pricing document from {origin}: models.{provider} must be a list")
        cards[provider] = [parse_entry(provider, e, i) for i, e in enumerate(entries)]
        ids = [c.model.lower() for c in cards[provider]]
        if len(ids) != len(set(ids)):
            raise PricingError(f"Pricing document from {origin}: models.{provider} repeats an id")
    if not any(cards.values()):
        raise PricingError(f"Pricing document from {origin} prices no model")
    return cards


def _parse_v1(doc: dict[str, Any], origin: str) -> dict[str, list[RateCard]]:
    rates = doc.get("rates")
    if not isinstance(rates, dict) or not rates:
        raise PricingError(f"Pricing document from {origin} is missing its rates object")
    aliases = _parse_aliases(doc.get("aliases", {}), rates, origin)
    cards: dict[str, list[RateCard]] = {}
    for provider, models in rates.items():
        if provider.startswith("_"):
            continue
        _check_provider(provider, origin)
        if not isinstance(models, dict):
            raise PricingError(
                f"Pricing document from {origin}: rates.{provider} must be an object"
            )
        named = aliases.get(provider, {})
        cards[provider] = [
            card_from_v1(provider, model, entry,
                         sorted(a for a, t in named.items() if t == model))
            for model, entry in models.items()
            if not model.startswith("_")
        ]
    if not any(cards.values()):
        raise PricingError(f"Pricing document from {origin} prices no model")
    return cards


def _parse_aliases(aliases: Any, rates: dict[str, Any], origin: str) -> dict[str, dict[str, str]]:
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
        models = rates.get(provider, {}) if isinstance(rates.get(provider), dict) else {}
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
