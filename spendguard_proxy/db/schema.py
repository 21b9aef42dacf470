"""The schema, defined once (SQLAlchemy Core). Alembic migrations create it; a test checks
that the migrated database matches these tables exactly.

Money columns are bigint microcents (1 cent = 1,000,000 µ¢). The CHECK constraints are the
database's last word on the ledger invariants: no negative balance, holds never above it.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, BYTEA, JSONB, UUID

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING)

NOW = sa.text("now()")

tenants = sa.Table(
    "tenants",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("tenant_id", UUID(as_uuid=True), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("digest", BYTEA, nullable=False, unique=True),
    sa.Column("prefix", sa.Text, nullable=False),
    sa.Column("scopes", ARRAY(sa.Text), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("last_used_at", sa.DateTime(timezone=True)),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
)

agents = sa.Table(
    "agents",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("tenant_id", UUID(as_uuid=True), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("name", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("deleted_at", sa.DateTime(timezone=True)),
    sa.Index("ix_agents_tenant_created", "tenant_id", "created_at"),
)

budgets = sa.Table(
    "budgets",
    metadata,
    sa.Column("agent_id", UUID(as_uuid=True), sa.ForeignKey("agents.id"), primary_key=True),
    sa.Column("hard_limit_microcents", sa.BigInteger, nullable=False),
    sa.Column("remaining_microcents", sa.BigInteger, nullable=False),
    # Sum and count of live holds, kept on the row so a reserve needs no aggregate.
    sa.Column("held_microcents", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("hold_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("concurrency", sa.Text, nullable=False, server_default="exclusive"),
    sa.Column("locked_run_id", UUID(as_uuid=True)),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.CheckConstraint("hard_limit_microcents > 0", name="limit_positive"),
    sa.CheckConstraint("remaining_microcents >= 0", name="remaining_non_negative"),
    sa.CheckConstraint("held_microcents >= 0 AND hold_count >= 0", name="holds_non_negative"),
    sa.CheckConstraint("held_microcents <= remaining_microcents", name="holds_within_remaining"),
    sa.CheckConstraint("concurrency IN ('exclusive', 'shared')", name="concurrency_kind"),
)

# Holds and ledger rows reference the budget row rather than the agent: the foreign-key check
# then locks a row the writer already holds FOR UPDATE, instead of taking KEY SHARE locks on
# the agent row from every concurrent call (MultiXacts on a hot agent).
holds = sa.Table(
    "holds",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column(
        "agent_id", UUID(as_uuid=True), sa.ForeignKey("budgets.agent_id"), nullable=False
    ),
    sa.Column("run_id", UUID(as_uuid=True), nullable=False),
    sa.Column("amount_microcents", sa.BigInteger, nullable=False),
    sa.Column("provider", sa.Text),
    sa.Column("model", sa.Text),
    sa.Column("input_tokens", sa.Integer),
    sa.Column("max_output_tokens", sa.Integer),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("amount_microcents > 0", name="amount_positive"),
    sa.Index("ix_holds_agent_expires", "agent_id", "expires_at"),
    sa.Index("ix_holds_expires", "expires_at"),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("agent_id", UUID(as_uuid=True), sa.ForeignKey("agents.id"), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
)

ledger_entries = sa.Table(
    "ledger_entries",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
    sa.Column(
        "agent_id", UUID(as_uuid=True), sa.ForeignKey("budgets.agent_id"), nullable=False
    ),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("delta_microcents", sa.BigInteger, nullable=False),
    sa.Column("balance_after_microcents", sa.BigInteger, nullable=False),
    sa.Column("run_id", UUID(as_uuid=True)),
    sa.Column("hold_id", UUID(as_uuid=True)),
    sa.Column("provider", sa.Text),
    sa.Column("model", sa.Text),
    sa.Column("input_tokens", sa.Integer),
    sa.Column("output_tokens", sa.Integer),
    sa.Column("wcec_microcents", sa.BigInteger),
    sa.Column("realized_microcents", sa.BigInteger),
    sa.Column("overrun_microcents", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("termination_reason", sa.Text),
    sa.Column("billing_breakdown", JSONB),
    sa.Column("request_sha256", sa.Text),
    sa.Column("content", JSONB),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.CheckConstraint(
        "kind IN ('topup', 'limit_change', 'charge', 'hold_expired')", name="kind_known"
    ),
    sa.CheckConstraint("balance_after_microcents >= 0", name="balance_non_negative"),
    sa.CheckConstraint("overrun_microcents >= 0", name="overrun_non_negative"),
    sa.CheckConstraint("realized_microcents >= 0", name="realized_non_negative"),
    sa.CheckConstraint(
        "kind NOT IN ('charge', 'hold_expired') OR delta_microcents <= 0", name="charges_debit"
    ),
    sa.Index("ix_ledger_agent_id", "agent_id", "id"),
    sa.Index("ix_ledger_hold", "hold_id"),
)
