"""tenant and key: operator commands on the database (hosted mode): tenants and their
monthly ceilings, API keys."""

from __future__ import annotations

import argparse
import json

from spendguard_proxy.cli.errors import CliError
from spendguard_proxy.cli.session import cli_settings_or_exit, run_on_db, where
from spendguard_proxy.cli.tenant_cmds import integer

CEILING_HELP = ("the most the tenant's agents may be charged per calendar month (UTC), in "
                "cents, enforced in every reserve")
KEY_COLUMNS = ["key_id", "tenant_id", "prefix", "scopes", "created_at", "last_used_at",
               "revoked_at"]


def _emit(args, data, show) -> int:
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
        return 0
    from rich.console import Console

    from spendguard_proxy.cli import render

    show(Console(), render, data)
    return 0


def _on_db(work):
    """(data, where) of ``work(pool, tenants)`` on the configured database."""
    from spendguard_proxy import tenants
    from spendguard_proxy.errors import NotFound

    settings = cli_settings_or_exit()
    place = where(settings)
    try:
        return run_on_db(settings, lambda db: work(db, tenants)), place
    except NotFound as exc:
        raise CliError(f"{exc.message} (in {place})") from None


def _uuid(value: str, what: str):
    from spendguard_proxy.cli.backends import parse_uuid

    return parse_uuid(value, what)


def _ceiling_cents(value: int | None) -> int | None:
    """--monthly-ceiling-cents checked before anything is written (the API's cents range)."""
    from spendguard_proxy.server.bodies import MAX_CENTS

    if value is not None and not 1 <= value <= MAX_CENTS:
        raise CliError(f"--monthly-ceiling-cents must be between 1 and {MAX_CENTS}, got "
                       f"{value}; --no-monthly-ceiling removes the ceiling")
    return value


def _tenant_create(args):
    ceiling = _ceiling_cents(args.monthly_ceiling_cents)
    data, _ = _on_db(lambda db, t: t.create_tenant(db, args.name, ceiling))
    return _emit(args, data, lambda c, r, d: r.key_values(c, "Tenant", d))


def _tenant_set(args):
    tenant_id = _uuid(args.tenant_id, "tenant id")
    ceiling = _ceiling_cents(args.monthly_ceiling_cents)
    data, _ = _on_db(lambda db, t: t.set_monthly_ceiling(db, tenant_id, ceiling))
    return _emit(args, data, lambda c, r, d: r.key_values(c, "Tenant", d))


def _tenant_list(args):
    data, place = _on_db(lambda db, t: t.list_tenants(db))
    return _emit(args, data, lambda c, r, d: r.tenants(c, d, where=place))


def _key_create(args):
    from spendguard_proxy.tenants import parse_scopes

    tenant_id = _uuid(args.tenant, "tenant id")
    scopes = parse_scopes(args.scopes)
    data, _ = _on_db(lambda db, t: t.create_key(db, tenant_id, scopes))

    def show(console, render, d: dict) -> None:
        render.key_values(console, "API key", d)
        console.print("Store the api_key now: it is not shown again.", style="bold yellow")

    return _emit(args, data, show)


def _key_list(args):
    tenant_id = _uuid(args.tenant, "tenant id") if args.tenant else None
    data, place = _on_db(lambda db, t: t.list_keys(db, tenant_id))
    return _emit(args, data, lambda c, r, d: r.rows(c, "API keys", d, KEY_COLUMNS, where=place))


def _key_revoke(args):
    key_id = _uuid(args.key_id, "key id")
    data, _ = _on_db(lambda db, t: t.revoke_key(db, key_id))
    return _emit(args, data, lambda c, r, d: r.key_values(c, "API key", d))


def register(sub: argparse._SubParsersAction) -> None:
    tenant = sub.add_parser("tenant", help="hosted-mode tenants (database access)")
    tsub = tenant.add_subparsers(dest="tenant_command", required=True)
    p = tsub.add_parser("create", help="create a tenant")
    p.add_argument("--name", required=True)
    p.add_argument("--monthly-ceiling-cents", type=integer, metavar="N",
                   help=CEILING_HELP + " (default: none)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_tenant_create)
    p = tsub.add_parser("set", help="set or remove a tenant's monthly ceiling")
    p.add_argument("tenant_id", help="tenant id")
    ceiling = p.add_mutually_exclusive_group(required=True)
    # SUPPRESS: argparse counts a flag as given only when its value differs from the default.
    ceiling.add_argument("--monthly-ceiling-cents", type=integer, metavar="N",
                         default=argparse.SUPPRESS,
                         help=CEILING_HELP + "; this month's charges and live holds count")
    ceiling.add_argument("--no-monthly-ceiling", dest="monthly_ceiling_cents",
                         action="store_const", const=None, default=argparse.SUPPRESS,
                         help="remove the ceiling")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_tenant_set)
    p = tsub.add_parser("list", help="list tenants with their ceiling and this month's spend")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_tenant_list)

    key = sub.add_parser("key", help="tenant API keys (database access)")
    ksub = key.add_subparsers(dest="key_command", required=True)
    p = ksub.add_parser("create", help="create a key (printed once)")
    p.add_argument("--tenant", required=True, help="tenant id")
    p.add_argument("--scopes", help="comma-separated: cap:admin,cap:use (default: both)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_key_create)
    p = ksub.add_parser("list", help="list keys")
    p.add_argument("--tenant", help="only this tenant's keys")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_key_list)
    p = ksub.add_parser("revoke", help="revoke a key")
    p.add_argument("key_id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_key_revoke)
