"""agent, budget and usage: the reference CLI's commands and flags, plus usage and the
budget policy flags (DESIGN §11), which `group` shares."""

from __future__ import annotations

import argparse
import json

from spendguard_proxy.cli.session import Answer, run_tenant_command

# Rendering imports rich: done in the handlers, after the work, and not at all for --json.


# The policy fields `budget set` can change: ledger.POLICY_FIELDS, spelled out so that --help
# loads nothing (tests/cli/test_policies_cli.py keeps the two equal).
POLICY_FIELDS = (
    "period", "rpm_limit", "tpm_limit", "allowed_models", "alert_thresholds_pct", "group_id",
)
PERIODS = ("none", "daily", "weekly", "monthly")


def integer(value: str) -> int:
    """An integer flag; its range is the API's rule (the body models check it, so the CLI and
    the API refuse a value with the same words)."""
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {value!r}") from None


def _non_negative_int(value: str) -> int:
    try:
        parsed = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError("must be an integer") from None
    if parsed < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return parsed


def add_period_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--period", choices=PERIODS, default=argparse.SUPPRESS,
                        help="reset to the limit at each period start (UTC; weeks start "
                        "Monday); none: never")


def add_alert_flags(parser: argparse.ArgumentParser, clearable: bool) -> None:
    target = parser.add_mutually_exclusive_group() if clearable else parser
    target.add_argument("--alert-at", dest="alert_thresholds_pct", action="append",
                        type=integer, metavar="PCT", default=argparse.SUPPRESS,
                        help="send budget.threshold when this percent of the limit is spent "
                        "(1-100; repeat for more, up to 10)")
    if clearable:
        target.add_argument("--no-alerts", dest="alert_thresholds_pct", action="store_const",
                            const=None, default=argparse.SUPPRESS, help="no threshold alerts")


def _setter_or_clear(parser, flag: str, clear_flag: str, dest: str, clear_help: str,
                     **setter) -> None:
    """A flag that sets a policy field and one that clears it (null in the API): never both."""
    both = parser.add_mutually_exclusive_group()
    both.add_argument(flag, dest=dest, default=argparse.SUPPRESS, **setter)
    both.add_argument(clear_flag, dest=dest, action="store_const", const=None,
                      default=argparse.SUPPRESS, help=clear_help)


def add_policy_flags(parser: argparse.ArgumentParser) -> None:
    """The budget policy flags (DESIGN §11). Each one's dest is its API field, and a flag not
    given leaves no attribute (SUPPRESS), so ``given_policy`` sends only what was typed."""
    add_period_flag(parser)
    _setter_or_clear(parser, "--rpm-limit", "--no-rpm-limit", "rpm_limit",
                     "no calls-per-minute limit", type=integer, metavar="N",
                     help="at most N calls per rolling minute (else 429 rate_limited)")
    _setter_or_clear(parser, "--tpm-limit", "--no-tpm-limit", "tpm_limit",
                     "no tokens-per-minute limit", type=integer, metavar="N",
                     help="at most N tokens (input + max output) per rolling minute")
    _setter_or_clear(parser, "--allow-model", "--all-models", "allowed_models",
                     "allow every model", action="append", metavar="GLOB",
                     help="allow only models matching this glob, e.g. 'gpt-5*' (repeat for "
                     "more; the list replaces the old one; else 403 model_not_allowed)")
    add_alert_flags(parser, clearable=True)
    _setter_or_clear(parser, "--group", "--no-group", "group_id", "leave its budget group",
                     metavar="GROUP_ID", help="also draw on this budget group "
                     "(`spendguard group create`)")


def given_policy(args: argparse.Namespace) -> dict:
    """The policy fields whose flags were given (None: clear)."""
    return {field: getattr(args, field) for field in POLICY_FIELDS if hasattr(args, field)}


def add_common_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base-url", help="talk HTTP to this SpendGuard (else: CAP_BASE_URL, "
                        "else the database directly)")
    parser.add_argument("--api-key", help="tenant API key (hosted mode; else CAP_API_KEY)")
    parser.add_argument("--json", action="store_true", help="print the API's JSON object")


def emit(args: argparse.Namespace, answer: Answer, show) -> int:
    if args.json:
        print(json.dumps(answer.data, indent=2, sort_keys=True))
        return 0
    from rich.console import Console

    from spendguard_proxy.cli import render

    show(Console(), render, answer)
    return 0


def _agent_create(args):
    answer = run_tenant_command(args, lambda b: b.create_agent(args.name))
    return emit(args, answer, lambda c, r, a: c.print(f"agent_id={a.data['agent_id']}"))


def _agent_list(args):
    answer = run_tenant_command(args, lambda b: b.list_agents())
    cols = ["agent_id", "name", "created_at"]
    return emit(args, answer, lambda c, r, a: r.rows(c, "Agents", a.data["agents"], cols,
                                                      where=a.where))


def _agent_get(args):
    answer = run_tenant_command(args, lambda b: b.get_agent(args.agent))
    return emit(args, answer, lambda c, r, a: r.key_values(c, "Agent", a.data))


def _agent_rename(args):
    answer = run_tenant_command(args, lambda b: b.rename_agent(args.agent, args.name))
    return emit(args, answer, lambda c, r, a: r.key_values(c, "Agent", a.data))


def _agent_delete(args):
    answer = run_tenant_command(args, lambda b: b.delete_agent(args.agent))
    return emit(args, answer, lambda c, r, a: c.print(f"deleted agent_id={a.data['agent_id']}"))


def _budget_set(args):
    policy = given_policy(args)
    answer = run_tenant_command(
        args, lambda b: b.set_budget(args.agent, args.limit, args.topup, args.concurrency,
                                     policy)
    )
    return emit(args, answer, lambda c, r, a: r.budget(c, a.data))


def _budget_get(args):
    answer = run_tenant_command(args, lambda b: b.get_budget(args.agent))
    return emit(args, answer, lambda c, r, a: r.budget(c, a.data))


def _usage(args):
    answer = run_tenant_command(args, lambda b: b.usage(args.agent, args.limit, args.before))
    return emit(args, answer, lambda c, r, a: r.usage(c, a.data, where=a.where))


def register(sub: argparse._SubParsersAction) -> None:
    agent = sub.add_parser("agent", help="create, list, get, rename, delete agents")
    agent_sub = agent.add_subparsers(dest="agent_command", required=True)
    p = agent_sub.add_parser("create", help="create an agent")
    p.add_argument("--name", help="optional agent name")
    add_common_flags(p)
    p.set_defaults(handler=_agent_create)
    p = agent_sub.add_parser("list", help="list agents")
    add_common_flags(p)
    p.set_defaults(handler=_agent_list)
    for name, handler, text in (
        ("get", _agent_get, "show an agent"),
        ("delete", _agent_delete, "delete an agent (its ledger is kept)"),
        ("rename", _agent_rename, "rename an agent"),
    ):
        p = agent_sub.add_parser(name, help=text)
        p.add_argument("--agent", required=True, help="agent id")
        if name == "rename":
            p.add_argument("--name", required=True, help="new name")
        add_common_flags(p)
        p.set_defaults(handler=handler)

    budget = sub.add_parser("budget", help="set or show an agent's hard budget")
    budget_sub = budget.add_subparsers(dest="budget_command", required=True)
    p = budget_sub.add_parser(
        "set", help="set the hard limit, top up (cents) and change policies",
        description="Set an agent's hard limit, credit a top-up, and change its policies. "
        "Only the policy flags given change; the others keep their values.")
    p.add_argument("--agent", required=True, help="agent id")
    p.add_argument("--limit", "--limit-cents", dest="limit", required=True,
                   type=_non_negative_int, help="hard limit in cents")
    p.add_argument("--topup", "--topup-cents", dest="topup", type=_non_negative_int,
                   default=None, help="top-up in cents")
    p.add_argument("--concurrency", choices=["exclusive", "shared"],
                   help="exclusive: one run at a time (default for new budgets); shared: any")
    add_policy_flags(p)
    add_common_flags(p)
    p.set_defaults(handler=_budget_set)
    p = budget_sub.add_parser("get", help="show the budget")
    p.add_argument("--agent", required=True, help="agent id")
    add_common_flags(p)
    p.set_defaults(handler=_budget_get)

    p = sub.add_parser("usage", help="an agent's ledger, newest first")
    p.add_argument("--agent", required=True, help="agent id")
    p.add_argument("--limit", type=int, default=50, help="entries per page (1-1000)")
    p.add_argument("--before", type=int, default=None, help="entries older than this id")
    add_common_flags(p)
    p.set_defaults(handler=_usage)
