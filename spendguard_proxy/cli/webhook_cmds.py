"""webhook: signed alerts of budget events (DESIGN §11) — create, list, delete, deliveries,
and keygen (the operator's key that encrypts signing secrets at rest)."""

from __future__ import annotations

import argparse
import json

from spendguard_proxy.cli.session import Answer, run_tenant_command
from spendguard_proxy.webhooks.events import EVENT_TYPES  # a constant: nothing else loads

WEBHOOK_COLUMNS = ["webhook_id", "url", "events", "created_at"]


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base-url", help="talk HTTP to this SpendGuard (else: CAP_BASE_URL, "
                        "else the database directly)")
    parser.add_argument("--api-key", help="tenant API key (hosted mode; else CAP_API_KEY)")
    parser.add_argument("--json", action="store_true", help="print the API's JSON object")


def _emit(args: argparse.Namespace, answer: Answer, show) -> int:
    if args.json:
        print(json.dumps(answer.data, indent=2, sort_keys=True))
        return 0
    from rich.console import Console

    from spendguard_proxy.cli import render

    show(Console(), render, answer)
    return 0


def _create(args):
    from spendguard_proxy.cli.session import settings_or_exit

    settings = settings_or_exit()  # the URL rules of the mode, the secret key
    answer = run_tenant_command(
        args, lambda b: b.create_webhook(args.url, args.event, settings)
    )

    def show(console, render, a: Answer) -> None:
        render.key_values(console, "Webhook", _readable(a.data))
        console.print("Store the secret now: it is not shown again. Receivers verify each "
                      "delivery's webhook-signature with it.", style="bold yellow")

    return _emit(args, answer, show)


def _list(args):
    answer = run_tenant_command(args, lambda b: b.list_webhooks())
    return _emit(args, answer, lambda c, r, a: r.rows(
        c, "Webhooks", [_readable(w) for w in a.data["webhooks"]], WEBHOOK_COLUMNS,
        where=a.where))


def _delete(args):
    answer = run_tenant_command(args, lambda b: b.delete_webhook(args.webhook_id))
    return _emit(args, answer,
                 lambda c, r, a: c.print(f"deleted webhook_id={a.data['webhook_id']}"))


def _deliveries(args):
    answer = run_tenant_command(
        args, lambda b: b.webhook_deliveries(args.webhook, args.limit, args.before)
    )
    return _emit(args, answer, lambda c, r, a: deliveries_table(c, a.data, where=a.where))


def _keygen(args):
    from spendguard_proxy.webhooks.secret_box import generate_key

    key = generate_key()
    print(json.dumps({"key": key}) if args.json else key)
    return 0


def _readable(webhook: dict) -> dict:
    events = webhook.get("events")
    return {**webhook, "events": "all" if events is None else ", ".join(events)}


def deliveries_table(console, result: dict, where: str | None = None) -> None:
    """A webhook's deliveries, newest first (a pure rendering onto ``console``)."""
    from rich.table import Table

    deliveries = result["deliveries"]
    if not deliveries:
        console.print(f"(no deliveries in {where})" if where else "(no deliveries)",
                      markup=False, highlight=False, soft_wrap=True)
        return
    table = Table(title=f"Deliveries of webhook {result['webhook_id']}", title_justify="left")
    for col, justify in (("id", "right"), ("event", "left"), ("event_id", "left"),
                         ("state", "left"), ("tries", "right"), ("last", "left"),
                         ("next / delivered (UTC)", "left")):
        table.add_column(col, justify=justify, no_wrap=col in ("event_id", "event"))
    for d in deliveries:
        last = d["last_error"] or (str(d["last_status"]) if d["last_status"] else "")
        when = d["delivered_at"] if d["state"] == "delivered" else d["next_attempt_at"]
        table.add_row(str(d["delivery_id"]), d["event_type"], d["event_id"], d["state"],
                      str(len(d["attempts"])), last, (when or "")[:19].replace("T", " "))
    console.print(table)
    if result.get("next_before"):
        console.print(f"older deliveries: --before {result['next_before']}")


def register(sub: argparse._SubParsersAction) -> None:
    webhook = sub.add_parser("webhook", help="signed webhook alerts of budget events")
    wsub = webhook.add_subparsers(dest="webhook_command", required=True)
    p = wsub.add_parser("create", help="create a webhook (its signing secret is printed once)")
    p.add_argument("--url", required=True, help="where to POST events (https; a sidecar may "
                   "use http and loopback)")
    p.add_argument("--event", action="append", choices=EVENT_TYPES, metavar="TYPE",
                   help="subscribe to this event type (repeat for more; default: all): "
                   + ", ".join(EVENT_TYPES))
    _common(p)
    p.set_defaults(handler=_create)
    p = wsub.add_parser("list", help="list webhooks (never their secrets)")
    _common(p)
    p.set_defaults(handler=_list)
    p = wsub.add_parser("delete", help="delete a webhook (its pending deliveries end)")
    p.add_argument("webhook_id", help="webhook id")
    _common(p)
    p.set_defaults(handler=_delete)
    p = wsub.add_parser("deliveries", help="a webhook's deliveries and attempts, newest first")
    p.add_argument("--webhook", required=True, help="webhook id")
    p.add_argument("--limit", type=int, default=50, help="deliveries per page (1-200)")
    p.add_argument("--before", type=int, default=None, help="deliveries older than this id")
    _common(p)
    p.set_defaults(handler=_deliveries)
    p = wsub.add_parser("keygen", help="print a new key for CAP_WEBHOOK_SECRET_KEY (hosted "
                        "mode; encrypts webhook secrets at rest)")
    p.add_argument("--json", action="store_true", help='print {"key": …}')
    p.set_defaults(handler=_keygen)
