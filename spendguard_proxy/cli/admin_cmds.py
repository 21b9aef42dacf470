"""tenant and key: operator commands on the database (hosted mode)."""

from __future__ import annotations

import argparse
import json

from rich.console import Console

from spendguard_proxy import tenants
from spendguard_proxy.cli import render
from spendguard_proxy.cli.backends import parse_uuid as _uuid
from spendguard_proxy.cli.session import run_on_db, settings_or_exit

KEY_COLUMNS = ["key_id", "tenant_id", "prefix", "scopes", "created_at", "last_used_at",
               "revoked_at"]


def _emit(args, data, show) -> int:
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        show(Console(), data)
    return 0


def _tenant_create(args):
    data = run_on_db(settings_or_exit(), lambda db: tenants.create_tenant(db, args.name))
    return _emit(args, data, lambda c, d: render.key_values(c, "Tenant", d))


def _tenant_list(args):
    data = run_on_db(settings_or_exit(), tenants.list_tenants)
    cols = ["tenant_id", "name", "created_at"]
    return _emit(args, data, lambda c, d: render.rows(c, "Tenants", d, cols))


def _key_create(args):
    tenant_id = _uuid(args.tenant, "tenant id")
    scopes = tenants.parse_scopes(args.scopes)
    data = run_on_db(settings_or_exit(), lambda db: tenants.create_key(db, tenant_id, scopes))

    def show(console: Console, d: dict) -> None:
        render.key_values(console, "API key", d)
        console.print("Store the api_key now: it is not shown again.", style="bold yellow")

    return _emit(args, data, show)


def _key_list(args):
    tenant_id = _uuid(args.tenant, "tenant id") if args.tenant else None
    data = run_on_db(settings_or_exit(), lambda db: tenants.list_keys(db, tenant_id))
    return _emit(args, data, lambda c, d: render.rows(c, "API keys", d, KEY_COLUMNS))


def _key_revoke(args):
    key_id = _uuid(args.key_id, "key id")
    data = run_on_db(settings_or_exit(), lambda db: tenants.revoke_key(db, key_id))
    return _emit(args, data, lambda c, d: render.key_values(c, "API key", d))


def register(sub: argparse._SubParsersAction) -> None:
    tenant = sub.add_parser("tenant", help="hosted-mode tenants (database access)")
    tsub = tenant.add_subparsers(dest="tenant_command", required=True)
    p = tsub.add_parser("create", help="create a tenant")
    p.add_argument("--name", required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_tenant_create)
    p = tsub.add_parser("list", help="list tenants")
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
