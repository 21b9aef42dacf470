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


def _none(what: str, where: str | None) -> str:
    """What an empty answer says: also where it looked, so a wrong database is obvious."""
    return f"(no {what} in {where})" if where else f"(no {what})"


def rows(console: Console, title: str, items: list[dict[str, Any]], columns: list[str],
         where: str | None = None) -> None:
    if not items:
        console.print(_none(title.lower(), where), markup=False, highlight=False, soft_wrap=True)
        return
    table = Table(title=title, title_justify="left")
    for col in columns:
        # Ids are copied from here into the next command: never wrap them.
        table.add_column(col, overflow="fold", no_wrap=col.endswith("_id"))
    for item in items:
        table.add_row(*(_cell(item.get(col)) for col in columns))
    console.print(table)


def cents(microcents: int | None) -> str:
    """Exact cents from integer microcents, without float: -18105 -> "-0.018105"."""
    if microcents is None:
        return ""
    sign = "-" if microcents < 0 else ""
    whole, frac = divmod(abs(microcents), 1_000_000)
    return f"{sign}{whole}" + (f".{frac:06d}".rstrip("0") if frac else "")


def usage(console: Console, result: dict[str, Any], where: str | None = None) -> None:
    entries = result["entries"]
    if not entries:
        console.print(_none("ledger entries", where), markup=False, highlight=False,
                      soft_wrap=True)
        return
    table = Table(title=f"Ledger of agent {result['agent_id']}", title_justify="left")
    for col, justify in (("id", "right"), ("kind", "left"), ("Δ ¢", "right"),
                         ("balance ¢", "right"), ("model", "left"), ("in", "right"),
                         ("out", "right"), ("overrun ¢", "right"), ("reason", "left"),
                         ("at (UTC)", "left")):
        table.add_column(col, justify=justify, no_wrap=col in ("model", "at (UTC)"))
    for e in entries:
        table.add_row(
            str(e["id"]), e["kind"], cents(e["delta_microcents"]),
            cents(e["balance_after_microcents"]), _cell(e["model"]), _cell(e["input_tokens"]),
            _cell(e["output_tokens"]),
            cents(e["overrun_microcents"]) if e["overrun_microcents"] else "",
            _cell(e["termination_reason"]), (e["created_at"] or "")[11:19],
        )
    console.print(table)
    if result.get("next_before"):
        console.print(f"older entries: --before {result['next_before']}")


def _listed(values: list | None, unit: str = "") -> str | None:
    return None if values is None else ", ".join(f"{v}{unit}" for v in values)


def _policies(obj: dict[str, Any]) -> dict[str, Any]:
    """A budget's or group's fields as they read best; the names stay the API's, so a reader
    can go from this table to --json and back. Absent policies say what absence means."""
    shown = dict(obj)
    for field, absent in (("rpm_limit", "no limit"), ("tpm_limit", "no limit"),
                          ("allowed_models", "all models"), ("alert_thresholds_pct", "none"),
                          ("group_id", "none")):
        if field in shown and shown[field] is None:
            shown[field] = absent
    if isinstance(obj.get("allowed_models"), list):
        shown["allowed_models"] = _listed(obj["allowed_models"])
    if isinstance(obj.get("alert_thresholds_pct"), list):
        shown["alert_thresholds_pct"] = _listed(obj["alert_thresholds_pct"], "%")
    if obj.get("period") == "none":
        shown["period_resets_at"] = "never"
    if isinstance(obj.get("agent_ids"), list):
        shown["agent_ids"] = _listed(obj["agent_ids"]) or "none"
    return shown


def budget(console: Console, obj: dict[str, Any]) -> None:
    key_values(console, "Budget", _policies(obj))


def group(console: Console, obj: dict[str, Any]) -> None:
    key_values(console, "Group", _policies(obj))


GROUP_COLUMNS = ["group_id", "name", "limit ¢", "available ¢", "period", "alerts", "agents"]


def groups(console: Console, items: list[dict[str, Any]], where: str | None = None) -> None:
    shown = []
    for g in items:
        readable = _policies(g)
        shown.append({"group_id": g["group_id"], "name": g["name"],
                      "limit ¢": g["hard_limit_cents"], "available ¢": g["available_cents"],
                      "period": g["period"], "alerts": readable["alert_thresholds_pct"],
                      "agents": len(g["agent_ids"])})
    rows(console, "Groups", shown, GROUP_COLUMNS, where=where)


TENANT_COLUMNS = ["tenant_id", "name", "ceiling ¢/month", "spent this month ¢",
                  "created (UTC)"]


def tenants(console: Console, items: list[dict[str, Any]], where: str | None = None) -> None:
    """Tenants with their monthly ceiling and this month's spend (exact cents; empty when the
    tenant has no ceiling: the month is counted only under one)."""
    shown = [{"tenant_id": t["tenant_id"], "name": t["name"],
              "ceiling ¢/month": _or_none(t.get("monthly_ceiling_cents")),
              "spent this month ¢": cents(t.get("month_spent_microcents")),
              "created (UTC)": (t.get("created_at") or "")[:19].replace("T", " ")}
             for t in items]
    rows(console, "Tenants", shown, TENANT_COLUMNS, where=where)


def _or_none(value: Any) -> Any:
    return "none" if value is None else value
