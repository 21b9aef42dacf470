"""The ``spendguard`` command."""

from __future__ import annotations

import argparse
import sys

from spendguard_proxy.cli import admin_cmds, server_cmds, tenant_cmds
from spendguard_proxy.cli.backends import CliError
from spendguard_proxy.errors import SpendGuardError

COMMAND_GROUPS = [tenant_cmds, admin_cmds, server_cmds]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spendguard",
        description="SpendGuard: strict hard budgets for LLM agents. Without --base-url the "
        "commands work on the database directly (CAP_DATABASE_URL, else the embedded "
        "PostgreSQL in the data dir).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for group in COMMAND_GROUPS:
        group.register(sub)
    for optional in ("spendguard_proxy.cli.pricing_cmd", "spendguard_proxy.cli.demo_cmd"):
        try:
            module = __import__(optional, fromlist=["register"])
        except ImportError:
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (CliError, SpendGuardError) as exc:
        print(f"error: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
