"""What each request field does to the bill: the table every adapter declares (DESIGN §10).

A field is *free* (cannot change the bill), *bounded* (priced into the hold, or capped by a
value SpendGuard sends upstream) or *refused* (nothing bounds it). A field an adapter does not
list is refused too: a new provider option is assumed to cost money until someone reads its
price. String-valued fields may classify each value (``service_tier: "priority"`` may be
bounded by a price variant while ``"scale"`` is refused).

The operator can forward named fields or values anyway with ``CAP_FORWARD_UNPRICED_FIELDS``
(``adapter:field`` or ``adapter:field=value``); that breaks the strict-budget guarantee for
those calls, and the documentation says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from spendguard_proxy.errors import InvalidRequest


class Kind(Enum):
    FREE = "free"
    BOUNDED = "bounded"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class Rule:
    kind: Kind
    why: str
    # Per string value, for fields whose values differ in cost; a value not listed is
    # refused (unless ``other`` says otherwise).
    values: Mapping[str, Kind] = field(default_factory=dict)
    other: Kind = Kind.REFUSED


def free(why: str = "does not change what the provider bills") -> Rule:
    return Rule(Kind.FREE, why)


def bounded(why: str, values: Mapping[str, Kind] | None = None,
            other: Kind = Kind.REFUSED) -> Rule:
    return Rule(Kind.BOUNDED, why, values or {}, other)


def refused(why: str) -> Rule:
    return Rule(Kind.REFUSED, why)


FieldTable = Mapping[str, Rule]


def check_fields(
    adapter: str,
    container: Mapping[str, Any],
    table: FieldTable,
    forwarded: frozenset[str],
    where: str = "",
) -> None:
    """400 naming the first field (or value) of ``container`` nobody can bound."""
    for name, value in container.items():
        path = f"{where}{name}"
        rule = table.get(name)
        if rule is None:
            _refuse(adapter, path, None, forwarded,
                    "is not a field SpendGuard knows the cost of")
            continue
        if rule.kind is Kind.REFUSED:
            _refuse(adapter, path, None, forwarded, rule.why)
        elif rule.values and value is not None:
            kind = rule.values.get(value, rule.other) if isinstance(value, str) else rule.other
            if kind is Kind.REFUSED:
                _refuse(adapter, path, value, forwarded, rule.why)


def _refuse(adapter: str, path: str, value: Any, forwarded: frozenset[str], why: str) -> None:
    if value is None and f"{adapter}:{path}" in forwarded:
        return
    if value is not None and (
        f"{adapter}:{path}={value}" in forwarded or f"{adapter}:{path}" in forwarded
    ):
        return
    shown = path if value is None else f"{path}={value!r}"
    raise InvalidRequest(
        f"{shown} is refused: {why}. SpendGuard only forwards what it can bound; an operator "
        f"can forward it anyway with CAP_FORWARD_UNPRICED_FIELDS={adapter}:"
        f"{path if value is None else f'{path}={value}'} (this voids the budget guarantee "
        "for such calls)"
    )


def parse_forwarded(entries: Iterable[str]) -> frozenset[str]:
    """``CAP_FORWARD_UNPRICED_FIELDS`` entries, checked for the ``adapter:field[=value]``
    shape (a bare field name would be ambiguous across APIs)."""
    out = set()
    for raw in entries:
        entry = raw.strip()
        if not entry:
            continue
        adapter, sep, rest = entry.partition(":")
        if not sep or not adapter or not rest or rest.startswith("="):
            raise ValueError(
                f"{entry!r} must look like adapter:field or adapter:field=value "
                "(e.g. openai_chat:service_tier=scale)"
            )
        out.add(entry)
    return frozenset(out)
