"""Strict JSON for pricing documents and the canonical bytes that are signed.

Canonical form: the document without ``signature``, keys sorted, separators ``,`` and ``:``,
UTF-8 without escaping, no NaN. Floats are refused everywhere in a document: their text is not
byte-stable across JSON libraries (so a signature could not be checked elsewhere) and they
cannot hold prices like 0.1 exactly.
"""

from __future__ import annotations

import json
from typing import Any

from spendguard_proxy.errors import PricingError


def load_document(raw: bytes | str, origin: str) -> dict[str, Any]:
    """Parse a pricing document; PricingError if it is not a JSON object free of floats."""
    try:
        doc = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PricingError(f"Pricing document from {origin} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise PricingError(f"Pricing document from {origin} must be a JSON object")
    ensure_no_floats(doc, origin)
    return doc


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in a pricing document")


def ensure_no_floats(value: Any, origin: str, path: str = "") -> None:
    """PricingError naming the first JSON float found (its path and value)."""
    if isinstance(value, float):
        raise PricingError(
            f"Pricing document from {origin} has a JSON float at {path or '(top)'} "
            f'({value!r}); write it as an integer or a decimal string such as "17.5" '
            "so money stays exact"
        )
    if isinstance(value, dict):
        for key, item in value.items():
            ensure_no_floats(item, origin, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            ensure_no_floats(item, origin, f"{path}[{index}]")


def unsigned(doc: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in doc.items() if key != "signature"}


def canonical_bytes(doc: dict[str, Any]) -> bytes:
    """The bytes a signature covers: ``doc`` minus ``signature``, canonically encoded."""
    return json.dumps(
        unsigned(doc), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")
