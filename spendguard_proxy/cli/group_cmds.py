"""group: budget groups, one limit several agents of a tenant draw on (DESIGN §11).

Like agent and budget, on the database directly or over HTTP (--base-url), with the API's
JSON under --json. An agent joins a group with `spendguard budget set --group GROUP_ID`.
"""

from __future__ import annotations

import argparse

from spendguard_proxy.cli.errors import CliError
from spendguard_proxy.cli.session import run_tenant_command
from spendguard_proxy.cli.tenant_cmds import (
    add_alert_flags,
    add_common_flags,
    add_period_flag,
    emit,
    integer,
)

# groups.GROUP_FIELDS, spelled out so that --help loads nothing (a test keeps them equal).
# The flags' dests are these API fields; a flag not given leaves no attribute (SUPPRESS).
GROUP_FIELDS = ("name", "hard_limit_cents", "topup_cents", "period", "alert_thresholds_pct")


def _given(args: argparse.Namespace) -> dict:
    return {field: getattr(args, field) for field in GROUP_FIELDS if hasattr(args, field)}


def _create(args):
    fields = _given(args)
    answer = run_tenant_command(args, lambda b: b.create_group(fields))
    return emit(args, answer, lambda c, r, a: r.group(c, a.data))


def _list(args):
    answer = run_tenant_command(args, lambda b: b.list_groups())
    return emit(args, answer, lambda c, r, a: r.groups(c, a.data["groups"], where=a.where))


def _get(args):
    answer = run_tenant_command(args, lambda b: b.get_group(args.group_id))
    return emit(args, answer, lambda c, r, a: r.group(c, a.data))


def _set(args):
    changes = _given(args)
    if not changes:
        raise CliError("Nothing to change: give --name, --limit-cents, --topup-cents, "
                       "--period, --alert-at or --no-alerts")
    answer = run_tenant_command(args, lambda b: b.update_group(args.group_id, changes))
    return emit(args, answer, lambda c, r, a: r.group(c, a.data))


def _delete(args):
    answer = run_tenant_command(args, lambda b: b.delete_group(args.group_id))
    return emit(args, answer, lambda c, r, a: c.print(f"deleted group_id={a.data['group_id']}"))


def _money_flags(parser: argparse.ArgumentParser, limit_required: bool) -> None:
    parser.add_argument("--limit-cents", dest="hard_limit_cents", type=integer, metavar="N",
                        required=limit_required, default=argparse.SUPPRESS,
                        help="the group's hard limit in cents")
    parser.add_argument("--topup-cents", dest="topup_cents", type=integer, metavar="N",
                        default=argparse.SUPPRESS,
                        help="credit this many cents (never beyond the limit)")


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("group", help="budget groups: one limit several agents share")
    gsub = group.add_subparsers(dest="group_command", required=True)

    p = gsub.add_parser("create", help="create a group (agents join with budget set --group)")
    p.add_argument("--name", required=True, default=argparse.SUPPRESS, help="group name")
    _money_flags(p, limit_required=True)
    add_period_flag(p)
    add_alert_flags(p, clearable=False)
    add_common_flags(p)
    p.set_defaults(handler=_create)

    p = gsub.add_parser("list", help="list groups")
    add_common_flags(p)
    p.set_defaults(handler=_list)

    p = gsub.add_parser("get", help="show a group and its agents")
    p.add_argument("group_id", help="group id")
    add_common_flags(p)
    p.set_defaults(handler=_get)

    p = gsub.add_parser("set", help="change a group (only the flags given change)")
    p.add_argument("group_id", help="group id")
    p.add_argument("--name", default=argparse.SUPPRESS, help="new name")
    _money_flags(p, limit_required=False)
    add_period_flag(p)
    add_alert_flags(p, clearable=True)
    add_common_flags(p)
    p.set_defaults(handler=_set)

    p = gsub.add_parser("delete", help="delete a group (its agents leave it; 409 while any "
                        "of their calls is in flight)")
    p.add_argument("group_id", help="group id")
    add_common_flags(p)
    p.set_defaults(handler=_delete)
