"""Rich renderings of the API's JSON objects: pure functions onto a given Console."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def key_values(console: Console, title: str, obj: dict[str, Any]) -> None:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value")
    for key, value in obj.items():
        table.add_row(key, _cell(value))
    console.print(table)


def rows(console: Console, title: str, items: list[dict[str, Any]], columns: list[str]) -> None:
    if not items:
        console.print(f"(no {title.lower()})")
        return
    table = Table(title=title, title_justify="left")
    for col in columns:
        table.add_column(col, overflow="fold")
    for item in items:
        table.add_row(*(_cell(item.get(col)) for col in columns))
    console.print(table)


USAGE_COLUMNS = [
    "id",
    "kind",
    "delta_microcents",
    "balance_after_microcents",
    "model",
    "input_tokens",
    "output_tokens",
    "realized_microcents",
    "overrun_microcents",
    "termination_reason",
    "created_at",
]


def usage(console: Console, result: dict[str, Any]) -> None:
    rows(console, f"Ledger of agent {result['agent_id']}", result["entries"], USAGE_COLUMNS)
    if result.get("next_before"):
        console.print(f"older entries: --before {result['next_before']}")
