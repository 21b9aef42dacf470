"""Jinja filters: exact money from integer microcents, times, short ids."""

from __future__ import annotations

from datetime import UTC, datetime

from spendguard_proxy.errors import format_cents

MICROCENTS_PER_CENT = 1_000_000


def microcents(value: int | None) -> str:
    """Exact: 12_345_678 µ¢ -> "12.345678 ¢" (no rounding, ever)."""
    return "—" if value is None else format_cents(int(value))


def cents(value: int | None) -> str:
    return "—" if value is None else f"{int(value):,} ¢".replace(",", " ")


def when(value: datetime | str | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def short_id(value: object) -> str:
    return str(value)[:8] if value else "—"


def number(value: int | None) -> str:
    return "—" if value is None else f"{int(value):,}".replace(",", " ")


FILTERS = {
    "microcents": microcents,
    "cents": cents,
    "when": when,
    "short_id": short_id,
    "number": number,
}
