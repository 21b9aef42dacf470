"""Trust checks for a file or remote pricing document, each failing with an actionable message.

Order: schema version, signature, expiry, future ``generated_at``, engine version. Bundled
tables skip all of these (they ship with the code and are trusted as code).

With ``CAP_PRICING_VERIFY_SIGNATURE=false`` only the signature is skipped. The other checks
are about correctness, not authenticity: a document in another schema would be misread, an
expired one holds stale prices, one "generated" in the future means a wrong clock (which
also defeats the expiry check), and one built for another engine version may mean something
else by the same fields. An operator who writes a file by hand can still satisfy them by
giving it a far ``expires_at``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from spendguard_proxy.errors import PricingError
from spendguard_proxy.pricing import ENGINE_VERSION
from spendguard_proxy.pricing.signing import verify_signature
from spendguard_proxy.settings import Settings

_VERSION = re.compile(r"(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:[-+].*)?")


@dataclass(frozen=True, slots=True)
class TrustPolicy:
    verify_signature: bool
    public_key: str | None
    schema_version: str
    skew_s: int

    @classmethod
    def from_settings(cls, settings: Settings) -> TrustPolicy:
        return cls(
            verify_signature=settings.pricing_verify_signature,
            public_key=settings.pricing_signing_public_key,
            schema_version=settings.pricing_schema_version,
            skew_s=settings.pricing_expiry_skew_seconds,
        )


def check_trust(
    doc: dict[str, Any], policy: TrustPolicy, origin: str, now: datetime | None = None
) -> None:
    """Every check a file/remote document must pass before its prices are used."""
    now = now or datetime.now(UTC)
    check_schema(doc, policy.schema_version, origin)
    if policy.verify_signature:
        if not policy.public_key:
            raise PricingError(
                "CAP_PRICING_VERIFY_SIGNATURE is on but CAP_PRICING_SIGNING_PUBLIC_KEY is not "
                "set: set it to the publisher's base64 Ed25519 public key (or turn "
                "verification off for an operator-written file)"
            )
        verify_signature(doc, policy.public_key, origin)
    check_times(doc, policy.skew_s, now, origin)
    check_engine(doc, origin)


def check_schema(doc: dict[str, Any], newest: str, origin: str) -> None:
    """The document's schema is one we read, no newer than CAP_PRICING_SCHEMA_VERSION."""
    found = doc.get("schema_version")
    if found not in ("1", "2") or found > newest:
        raise PricingError(
            f"Unsupported pricing schema_version {found!r} ({origin}); this SpendGuard reads "
            f"schema 1 to {newest!r} (CAP_PRICING_SCHEMA_VERSION): serve a document in that "
            "schema or upgrade SpendGuard"
        )


def check_times(doc: dict[str, Any], skew_s: int, now: datetime, origin: str) -> None:
    skew = timedelta(seconds=skew_s)
    expires_at = parse_timestamp(doc.get("expires_at"), "expires_at", origin)
    if expires_at + skew < now:
        raise PricingError(
            f"Remote pricing payload has expired ({origin}): expires_at "
            f"{format_timestamp(expires_at)} is before now {format_timestamp(now)} "
            f"(skew {skew_s}s); publish a freshly signed document or check this host's clock"
        )
    generated_at = parse_timestamp(doc.get("generated_at"), "generated_at", origin)
    if generated_at > now + skew:
        raise PricingError(
            f"Remote pricing payload generated_at is in the future ({origin}): "
            f"{format_timestamp(generated_at)} is after now {format_timestamp(now)} "
            f"(skew {skew_s}s); check the clocks of this host and the publisher, or raise "
            "CAP_PRICING_EXPIRY_SKEW_SECONDS"
        )


def check_engine(doc: dict[str, Any], origin: str, current: str = ENGINE_VERSION) -> None:
    low, high = engine_bounds(doc, origin)
    version = parse_version(current, "engine version", origin)
    too_low = low is not None and version < parse_version(low, "engine.min_version", origin)
    too_high = high is not None and version > parse_version(high, "engine.max_version", origin)
    if too_low or too_high:
        raise PricingError(
            f"Remote pricing is not compatible with engine version {current} ({origin}; "
            f"document allows {low or '*'}..{high or '*'}): upgrade SpendGuard or serve a "
            "document for this engine"
        )


def engine_bounds(doc: dict[str, Any], origin: str) -> tuple[str | None, str | None]:
    engine = doc.get("engine")
    if not isinstance(engine, dict):
        raise PricingError(
            f"Pricing document from {origin} is missing engine {{min_version, max_version}}"
        )
    bounds = engine.get("min_version"), engine.get("max_version")
    for bound in bounds:
        if bound is not None and not isinstance(bound, str):
            raise PricingError(f"Pricing document from {origin}: engine versions must be strings")
    return bounds


def parse_version(text: str, what: str, origin: str) -> tuple[int, int, int]:
    match = _VERSION.fullmatch(text.strip())
    if match is None:
        raise PricingError(f"Pricing document from {origin}: {what} {text!r} is not x.y.z")
    major, minor, patch = (int(part or 0) for part in match.groups())
    return major, minor, patch


def parse_timestamp(value: Any, field: str, origin: str) -> datetime:
    """ISO 8601; ``Z`` or an offset; a naive time is taken as UTC."""
    if not isinstance(value, str) or not value.strip():
        raise PricingError(f"Pricing document from {origin} is missing {field}")
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise PricingError(
            f"Pricing document from {origin}: {field} {value!r} is not an ISO 8601 time"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def format_timestamp(value: datetime) -> str:
    return value.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
