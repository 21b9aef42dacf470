"""Which model names a price entry answers to: genai-prices' match rules, case-insensitive.

``{"equals": …}``, ``{"starts_with": …}``, ``{"ends_with": …}``, ``{"contains": …}``,
``{"regex": …}``, ``{"or": [rules]}``, ``{"and": [rules]}``. A dated snapshot such as
``claude-opus-4-5-20251101`` resolves through its model's rule; nothing is guessed beyond
what the document says.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from spendguard_proxy.errors import PricingError

Match = Callable[[str], bool]  # called with the lower-cased model name

_MAX_DEPTH = 8


def parse_match(rule: Any, where: str, depth: int = 0) -> Match:
    if not isinstance(rule, dict) or len(rule) != 1 or depth > _MAX_DEPTH:
        raise PricingError(f"Pricing document: {where} must be one match clause")
    ((kind, value),) = rule.items()
    if kind in ("or", "and"):
        if not isinstance(value, list) or not value:
            raise PricingError(f"Pricing document: {where}.{kind} must be a non-empty list")
        parts = tuple(parse_match(r, f"{where}.{kind}[{i}]", depth + 1)
                      for i, r in enumerate(value))
        return (lambda name: any(p(name) for p in parts)) if kind == "or" else (
            lambda name: all(p(name) for p in parts))
    if not isinstance(value, str):
        raise PricingError(f"Pricing document: {where}.{kind} must be a string")
    text = value.lower()
    if kind == "equals":
        return lambda name: name == text
    if kind == "starts_with":
        return lambda name: name.startswith(text)
    if kind == "ends_with":
        return lambda name: name.endswith(text)
    if kind == "contains":
        return lambda name: text in name
    if kind == "regex":
        try:
            pattern = re.compile(value)
        except re.error as exc:
            raise PricingError(f"Pricing document: {where}.regex is invalid: {exc}") from None
        return lambda name: pattern.search(name) is not None
    raise PricingError(f"Pricing document: {where} has unknown match clause {kind!r}")
