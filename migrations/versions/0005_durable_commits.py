"""The ledger functions make their own transaction's commit durable.

A hold must be on disk before the provider is called. Until now that rested on the pool's
``synchronous_commit=on`` startup parameter, which a transaction pooler (PgBouncer 1.18)
refuses — or, listed in ``ignore_startup_parameters``, drops without a word, so a database or
role default of ``off`` would quietly make holds asynchronous. Each function that changes money
now starts with ``set_config('synchronous_commit', 'on', true)``, i.e. ``SET LOCAL``: it lasts
until the end of the calling transaction, so the COMMIT of that transaction — the implicit one
of a single-statement call, or the caller's explicit one — waits for the WAL flush, whatever
the connection's or the server's setting, and nothing outlives the transaction on a pooled
connection. (A ``SET`` clause on the function itself would not do: its value is restored at
function exit, before the COMMIT.) ``sg_reserve_many``/``sg_settle_many`` call ``sg_reserve``/
``sg_settle`` and inherit it. The bodies are otherwise those of 0002 and 0004.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

import importlib

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

DURABLE = (
    "\nBEGIN\n"
    "    -- SET LOCAL: this transaction's COMMIT waits for the WAL flush (migration 0005).\n"
    "    PERFORM set_config('synchronous_commit', 'on', true);\n"
)


def _module(name: str):
    return importlib.import_module(f"spendguard_proxy.migrations.versions.{name}")


def _bodies() -> list[str]:
    """The current definitions (0002's expiry functions, 0004's reserve and settle)."""
    v2, v4 = _module("0002_ledger_functions"), _module("0004_idempotent_retries")
    return [v2.EXPIRE_HOLDS, v2.SWEEP_AGENT, v4.RESERVE, v4.SETTLE]


def _replaceable(body: str) -> str:
    return body.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)


def _durable(body: str) -> str:
    assert body.count("\nBEGIN\n") == 1, "one top-level block per function"
    return _replaceable(body).replace("\nBEGIN\n", DURABLE, 1)


def upgrade() -> None:
    for body in _bodies():
        op.execute(_durable(body))


def downgrade() -> None:
    for body in _bodies():
        op.execute(_replaceable(body))
