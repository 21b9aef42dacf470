"""agent, budget and usage: the reference CLI's commands and flags, plus usage."""

from __future__ import annotations

import argparse
import json

from spendguard_proxy.cli.session import Answer, run_tenant_command

# Rendering imports rich: done in the handlers, after the work, and not at all for --json.


def _non_negative_int(value: str) -> int:
    try:
        parsed = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError("must be an integer") from None
    if parsed < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return parsed


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


def _agent_create(args):
    answer = run_tenant_command(args, lambda b: b.create_agent(args.name))
    return _emit(args, answer, lambda c, r, a: c.print(f"agent_id={a.data['agent_id']}"))


def _agent_list(args):
    answer = run_tenant_command(args, lambda b: b.list_agents())
    cols = ["agent_id", "name", "created_at"]
    return _emit(args, answer, lambda c, r, a: r.rows(c, "Agents", a.data["agents"], cols,
                                                      where=a.where))


def _agent_get(args):
    answer = run_tenant_command(args, lambda b: b.get_agent(args.agent))
    return _emit(args, answer, lambda c, r, a: r.key_values(c, "Agent", a.data))


def _agent_rename(args):
    answer = run_tenant_command(args, lambda b: b.rename_agent(args.agent, args.name))
    return _emit(args, answer, lambda c, r, a: r.key_values(c, "Agent", a.data))


def _agent_delete(args):
    answer = run_tenant_command(args, lambda b: b.delete_agent(args.agent))
    return _emit(args, answer, lambda c, r, a: c.print(f"deleted agent_id={a.data['agent_id']}"))


def _budget_set(args):
    answer = run_tenant_command(
        args, lambda b: b.set_budget(args.agent, args.limit, args.topup, args.concurrency)
    )
    return _emit(args, answer, lambda c, r, a: r.key_values(c, "Budget", a.data))


def _budget_get(args):
    answer = run_tenant_command(args, lambda b: b.get_budget(args.agent))
    return _emit(args, answer, lambda c, r, a: r.key_values(c, "Budget", a.data))


def _usage(args):
    answer = run_tenant_command(args, lambda b: b.usage(args.agent, args.limit, args.before))
    return _emit(args, answer, lambda c, r, a: r.usage(c, a.data, where=a.where))


def register(sub: argparse._SubParsersAction) -> None:
    agent = sub.add_parser("agent", help="create, list, get, rename, delete agents")
    agent_sub = agent.add_subparsers(dest="agent_command", required=True)
    p = agent_sub.add_parser("create", help="create an agent")
    p.add_argument("--name", help="optional agent name")
    _common(p)
    p.set_defaults(handler=_agent_create)
    p = agent_sub.add_parser("list", help="list agents")
    _common(p)
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
        _common(p)
        p.set_defaults(handler=handler)

    budget = sub.add_parser("budget", help="set or show an agent's hard budget")
    budget_sub = budget.add_subparsers(dest="budget_command", required=True)
    p = budget_sub.add_parser("set", help="set the hard limit and/or top up (cents)")
    p.add_argument("--agent", required=True, help="agent id")
    p.add_argument("--limit", required=True, type=_non_negative_int, help="hard limit in cents")
    p.add_argument("--topup", type=_non_negative_int, default=None, help="top-up in cents")
    p.add_argument("--concurrency", choices=["exclusive", "shared"],
                   help="exclusive: one run at a time (default for new budgets); shared: any")
    _common(p)
    p.set_defaults(handler=_budget_set)
    p = budget_sub.add_parser("get", help="show the budget")
    p.add_argument("--agent", required=True, help="agent id")
    _common(p)
    p.set_defaults(handler=_budget_get)

    p = sub.add_parser("usage", help="an agent's ledger, newest first")
    p.add_argument("--agent", required=True, help="agent id")
    p.add_argument("--limit", type=int, default=50, help="entries per page (1-1000)")
    p.add_argument("--before", type=int, default=None, help="entries older than this id")
    _common(p)
    p.set_defaults(handler=_usage)
