"""What each request field does to the bill: the table every adapter declares (DESIGN §10).

A field is *free* (cannot change the bill), *bounded* (priced into the hold, or capped by a
value SpendGuard sends upstream) or *refused* (nothing bounds it). A field an adapter does not
list is refused too: a new provider option is assumed to cost money until someone reads its
price. Fields whose values differ in cost classify each value (``service_tier: "priority"``
may be bounded by a price variant while ``"scale"`` is refused); object-valued fields may
carry the table of their own fields; tools are classified by their type, and header values
(``anthropic-beta``) like field values.

The operator can forward named fields or values anyway with ``CAP_FORWARD_UNPRICED_FIELDS``
(``adapter:field`` or ``adapter:field=value``, nested fields dotted: ``gemini:tools.urlContext``,
``openai_responses:tools=mcp``, ``anthropic_messages:anthropic-beta=compact-2026-01-12``);
that breaks the strict-budget guarantee for those calls, and the documentation says so.
"""

from __future__ import annotations

import re
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
    # Per value (strings; booleans as "true"/"false"; each item of a list of strings), for
    # fields whose values differ in cost; a value not listed gets ``other``.
    values: Mapping[str, Kind] = field(default_factory=dict)
    other: Kind = Kind.REFUSED
    # The table of an object value's own fields (or of each object in a list value).
    fields: Mapping[str, Rule] | None = None


def free(why: str = "does not change what the provider bills", *,
         fields: Mapping[str, Rule] | None = None) -> Rule:
    return Rule(Kind.FREE, why, fields=fields)


def bounded(why: str, values: Mapping[str, Kind] | None = None,
            other: Kind = Kind.REFUSED, *, fields: Mapping[str, Rule] | None = None) -> Rule:
    return Rule(Kind.BOUNDED, why, values or {}, other, fields)


def refused(why: str) -> Rule:
    return Rule(Kind.REFUSED, why)


FieldTable = Mapping[str, Rule]

# Names any adapter may list in a table of values: shorthands for readability.
FREE, BOUNDED, REFUSED = Kind.FREE, Kind.BOUNDED, Kind.REFUSED
# A new provider option is assumed to cost money until someone reads its price.
_UNKNOWN_FIELD = "SpendGuard does not know what this field costs"
_UNKNOWN_TOOL = "SpendGuard does not know what this tool costs"
_UNKNOWN_VALUE = "SpendGuard does not know what this value costs"


def check_fields(
    adapter: str,
    container: Mapping[str, Any],
    table: FieldTable,
    forwarded: frozenset[str],
    where: str = "",
    *,
    one_spelling: bool = False,
) -> None:
    """400 naming the first field (or value) of ``container`` nobody can bound.

    ``one_spelling`` (Gemini): a field sent both in camelCase and in snake_case in the same
    object is a 400 — which of the two the provider reads is not ours to guess. It applies
    to the nested tables too.
    """
    if one_spelling:
        check_one_spelling(container, where)
    for name, value in container.items():
        path = f"{where}{name}"
        rule = table.get(name)
        if rule is None:
            refuse(adapter, path, None, forwarded, _UNKNOWN_FIELD)
            continue
        if rule.kind is Kind.REFUSED:
            refuse(adapter, path, None, forwarded, rule.why)
            continue
        if rule.values and value is not None:
            for item in _value_keys(value):
                if rule.values.get(item, rule.other) is Kind.REFUSED:
                    refuse(adapter, path, item, forwarded, rule.why)
        if rule.fields is not None and not is_forwarded(adapter, path, None, forwarded):
            for obj in value if isinstance(value, list) else [value]:
                if isinstance(obj, dict):
                    check_fields(adapter, obj, rule.fields, forwarded, f"{path}.",
                                 one_spelling=one_spelling)


def check_tools(
    adapter: str,
    tools: Iterable[Mapping[str, Any]],
    table: FieldTable,
    forwarded: frozenset[str],
    *,
    default_type: str,
    where: str = "tools",
) -> list[str]:
    """Classify each tool by its ``type`` (``default_type`` when it has none); a table key
    ending in ``*`` matches by prefix (``web_search_*``). Returns the types, in order."""
    kinds = []
    for tool in tools:
        kind = tool.get("type", default_type)
        kind = kind if isinstance(kind, str) else repr(kind)
        rule = lookup(table, kind)
        if rule is None:
            refuse(adapter, where, kind, forwarded, _UNKNOWN_TOOL)
        elif rule.kind is Kind.REFUSED:
            refuse(adapter, where, kind, forwarded, rule.why)
        kinds.append(kind)
    return kinds


def check_values(
    adapter: str, name: str, values: Iterable[str], table: FieldTable, forwarded: frozenset[str]
) -> None:
    """Classify each value of a list-valued header (``anthropic-beta``) like a field value."""
    for value in values:
        rule = lookup(table, value)
        if rule is None:
            refuse(adapter, name, value, forwarded, _UNKNOWN_VALUE)
        elif rule.kind is Kind.REFUSED:
            refuse(adapter, name, value, forwarded, rule.why)


def lookup(table: FieldTable, name: str) -> Rule | None:
    rule = table.get(name)
    if rule is not None:
        return rule
    for key, candidate in table.items():
        if key.endswith("*") and name.startswith(key[:-1]):
            return candidate
    return None


def is_forwarded(adapter: str, path: str, value: Any, forwarded: frozenset[str]) -> bool:
    """The operator listed ``adapter:path`` (any value) or ``adapter:path=value``."""
    if f"{adapter}:{path}" in forwarded:
        return True
    return value is not None and f"{adapter}:{path}={_value_key(value)}" in forwarded


def refuse(adapter: str, path: str, value: Any, forwarded: frozenset[str], why: str) -> None:
    """InvalidRequest naming ``path`` (and ``value``), why, and the escape hatch — unless the
    operator forwards it."""
    if is_forwarded(adapter, path, value, forwarded):
        return
    shown = path if value is None else f"{path}={value!r}"
    entry = path if value is None else f"{path}={_value_key(value)}"
    raise InvalidRequest(
        f"{shown} is refused: {why}. SpendGuard only forwards what it can bound; an operator "
        f"can forward it anyway with CAP_FORWARD_UNPRICED_FIELDS={adapter}:{entry} (this voids "
        "the budget guarantee for such calls)"
    )


_CAPITAL = re.compile(r"(?<!^)([A-Z])")


def snake_case(name: str) -> str:
    return _CAPITAL.sub(r"_\1", name).lower()


def camel_case(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def check_one_spelling(container: Mapping[str, Any], where: str = "") -> None:
    seen: dict[str, str] = {}
    for name in container:
        other = seen.setdefault(snake_case(name), name)
        if other != name:
            raise InvalidRequest(
                f"{where}{other} and {where}{name} are the same field in two spellings "
                "(camelCase and snake_case); send it once"
            )


def both_spellings(table: Mapping[str, Rule]) -> dict[str, Rule]:
    """A camelCase table plus the snake_case name of each field (Gemini accepts both)."""
    out = dict(table)
    for name, rule in table.items():
        out.setdefault(snake_case(name), rule)
    return out


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


def _value_key(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _value_keys(value: Any) -> list[str]:
    """The keys a value is classified by: a string or boolean, or each of a list's items
    (other values — numbers, objects — are classified by ``other``, keyed by their repr)."""
    items = value if isinstance(value, list) else [value]
    return [_value_key(item) if isinstance(item, (str, bool)) else repr(item) for item in items]
