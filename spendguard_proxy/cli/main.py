"""The ``spendguard`` command.

Start-up time is import time, so nothing heavy is imported here or at the top of the command
modules: each handler imports what it needs when it runs (``--help`` loads argparse and the
command modules only). ``pricing`` registers its own sub-commands from a module that imports
aiohttp and the pricing engine, so it is loaded only when the command line asks for it;
``build_parser()`` without arguments (what the docs tests use) loads everything.
"""

from __future__ import annotations

import argparse
import sys

from spendguard_proxy.cli import admin_cmds, db_cmds, demo_cmd, server_cmds, tenant_cmds
from spendguard_proxy.cli.errors import CliError
from spendguard_proxy.errors import SpendGuardError

COMMAND_GROUPS = [tenant_cmds, admin_cmds, server_cmds, db_cmds, demo_cmd]
# Commands whose module is imported only when they run: name -> (module, help).
LAZY_COMMANDS = {
    "pricing": ("spendguard_proxy.cli.pricing_cmd", "pricing documents and the active table"),
    "webhook": ("spendguard_proxy.cli.webhook_cmds", "signed webhook alerts of budget events"),
    "group": ("spendguard_proxy.cli.group_cmds", "budget groups: one limit several agents share"),
}


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The full parser; given the command line, the lazy commands it does not name are
    registered as placeholders (listed by --help, never run)."""
    parser = argparse.ArgumentParser(
        prog="spendguard",
        description="SpendGuard: strict hard budgets for LLM agents. Without --base-url the "
        "commands work on the database directly (CAP_DATABASE_URL, else the embedded "
        "PostgreSQL in the data dir; `spendguard db status` says which).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for group in COMMAND_GROUPS:
        group.register(sub)
    wanted = _command_word(argv) if argv is not None else None
    for name, (module_name, help_text) in LAZY_COMMANDS.items():
        if argv is not None and wanted != name:
            sub.add_parser(name, help=help_text)
            continue
        try:
            module = __import__(module_name, fromlist=["register"])
        except ImportError:
            continue
        module.register(sub)
    return parser


def _command_word(argv: list[str]) -> str | None:
    """The sub-command named on the command line (the first word that is not an option)."""
    return next((word for word in argv if not word.startswith("-")), None)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    try:
        return args.handler(args)
    except (CliError, SpendGuardError) as exc:
        print(f"error: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
