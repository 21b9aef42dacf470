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
    # Operator ceiling on what the tenant's agents may spend per calendar month (UTC), hosted
    # mode; spent and held count only while a ceiling is set (DESIGN §13).
    sa.Column("monthly_ceiling_microcents", sa.BigInteger),
    sa.Column("month_starts_at", sa.DateTime(timezone=True)),
    sa.Column("month_spent_microcents", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("month_held_microcents", sa.BigInteger, nullable=False, server_default="0"),
    sa.CheckConstraint("monthly_ceiling_microcents > 0", name="ceiling_positive"),
    sa.CheckConstraint(
        "month_spent_microcents >= 0 AND month_held_microcents >= 0", name="month_non_negative"
    ),
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


def _period_columns() -> list:
    """Budget period and its alert state, shared by agent budgets and groups (DESIGN §11)."""
    return [
        sa.Column("period", sa.Text, nullable=False, server_default="none"),
        sa.Column("period_resets_at", sa.DateTime(timezone=True)),
        # Sum of charges since the period began: what thresholds compare with the limit.
        sa.Column("period_spent_microcents", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("alert_thresholds_pct", ARRAY(sa.SmallInteger)),
        # budget.exhausted is sent once per period (cleared by a reset or a top-up).
        sa.Column("exhausted_notified", sa.Boolean, nullable=False, server_default="false"),
        sa.CheckConstraint(
        "period IN ('none', 'daily', 'weekly', 'monthly')", name="period_kind"
    ),
    ]


budget_groups = sa.Table(
    "budget_groups",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("tenant_id", UUID(as_uuid=True), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("hard_limit_microcents", sa.BigInteger, nullable=False),
    sa.Column("remaining_microcents", sa.BigInteger, nullable=False),
    sa.Column("held_microcents", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("hold_count", sa.Integer, nullable=False, server_default="0"),
    *_period_columns(),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("deleted_at", sa.DateTime(timezone=True)),
    sa.CheckConstraint("hard_limit_microcents > 0", name="limit_positive"),
    sa.CheckConstraint("remaining_microcents >= 0", name="remaining_non_negative"),
    sa.CheckConstraint("held_microcents >= 0 AND hold_count >= 0", name="holds_non_negative"),
    sa.CheckConstraint("held_microcents <= remaining_microcents", name="holds_within_remaining"),
    sa.Index("ix_budget_groups_tenant", "tenant_id", "created_at"),
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
    sa.Column("group_id", UUID(as_uuid=True), sa.ForeignKey("budget_groups.id")),
    *_period_columns(),
    # Rate limits as GCRA: each *_tat is the theoretical arrival time of the next unit; a call
    # of n units fits while max(tat, now) + n·(60 s / limit) − now ≤ 60 s.
    sa.Column("rpm_limit", sa.Integer),
    sa.Column("tpm_limit", sa.Integer),
    sa.Column("rpm_tat", sa.DateTime(timezone=True)),
    sa.Column("tpm_tat", sa.DateTime(timezone=True)),
    sa.Column("allowed_models", ARRAY(sa.Text)),
    sa.CheckConstraint("rpm_limit > 0 AND tpm_limit > 0", name="rate_limits_positive"),
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
    sa.Column("group_id", UUID(as_uuid=True)),  # the group the hold was also placed in
    sa.Column("tenant_id", UUID(as_uuid=True)),  # set when it counts against a tenant ceiling
    sa.Column("tpm_tokens", sa.Integer),  # tokens taken from the TPM window at reserve
    sa.Column("worker_id", sa.Text),  # the serving process: its holds end when it dies
    sa.CheckConstraint("amount_microcents > 0", name="amount_positive"),
    sa.Index("ix_holds_agent_expires", "agent_id", "expires_at"),
    sa.Index("ix_holds_expires", "expires_at"),
    sa.Index("ix_holds_worker", "worker_id"),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("agent_id", UUID(as_uuid=True), sa.ForeignKey("agents.id"), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
)

LEDGER_KINDS = "kind IN ('topup', 'limit_change', 'charge', 'hold_expired', 'period_reset')"

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
    sa.Column("group_id", UUID(as_uuid=True)),
    sa.CheckConstraint(LEDGER_KINDS, name="kind_known"),
    sa.CheckConstraint("balance_after_microcents >= 0", name="balance_non_negative"),
    sa.CheckConstraint("overrun_microcents >= 0", name="overrun_non_negative"),
    sa.CheckConstraint("realized_microcents >= 0", name="realized_non_negative"),
    sa.CheckConstraint(
        "kind NOT IN ('charge', 'hold_expired') OR delta_microcents <= 0", name="charges_debit"
    ),
    sa.Index("ix_ledger_agent_id", "agent_id", "id"),
    sa.Index("ix_ledger_hold", "hold_id"),
)

# A group's own ledger: the same rule as an agent's (remaining == sum of deltas). A charge row
# names the agent and its agent ledger row.
group_ledger_entries = sa.Table(
    "group_ledger_entries",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
    sa.Column(
        "group_id", UUID(as_uuid=True), sa.ForeignKey("budget_groups.id"), nullable=False
    ),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("delta_microcents", sa.BigInteger, nullable=False),
    sa.Column("balance_after_microcents", sa.BigInteger, nullable=False),
    sa.Column("agent_id", UUID(as_uuid=True)),
    sa.Column("hold_id", UUID(as_uuid=True)),
    sa.Column("agent_entry_id", sa.BigInteger),
    sa.Column("overrun_microcents", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.CheckConstraint(LEDGER_KINDS, name="kind_known"),
    sa.CheckConstraint("balance_after_microcents >= 0", name="balance_non_negative"),
    sa.CheckConstraint("overrun_microcents >= 0", name="overrun_non_negative"),
    sa.Index("ix_group_ledger_group_id", "group_id", "id"),
)

# Webhooks (DESIGN §11). Events are written by the ledger functions in the transaction of the
# change that caused them (an outbox), with one delivery row per subscribed webhook.
webhooks = sa.Table(
    "webhooks",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("tenant_id", UUID(as_uuid=True), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("events", ARRAY(sa.Text)),  # null: every event type
    sa.Column("secret_ciphertext", BYTEA, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("deleted_at", sa.DateTime(timezone=True)),
    sa.Index("ix_webhooks_tenant", "tenant_id"),
)

webhook_events = sa.Table(
    "webhook_events",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),  # msg_<32 hex>: the webhook-id header
    sa.Column("tenant_id", UUID(as_uuid=True), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("type", sa.Text, nullable=False),
    sa.Column("data", JSONB, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Index("ix_webhook_events_tenant", "tenant_id", "created_at"),
)

webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
    sa.Column(
        "event_id", sa.Text, sa.ForeignKey("webhook_events.id"), nullable=False
    ),
    sa.Column("webhook_id", UUID(as_uuid=True), sa.ForeignKey("webhooks.id"), nullable=False),
    sa.Column("state", sa.Text, nullable=False, server_default="pending"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("last_status", sa.Integer),
    sa.Column("last_error", sa.Text),
    sa.Column("delivered_at", sa.DateTime(timezone=True)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.CheckConstraint("state IN ('pending', 'delivered', 'failed')", name="state_known"),
    sa.Index(
        "ix_webhook_deliveries_due", "next_attempt_at",
        postgresql_where=sa.text("state = 'pending'"),
    ),
    sa.Index("ix_webhook_deliveries_webhook", "webhook_id", "id"),
)

webhook_attempts = sa.Table(
    "webhook_attempts",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
    sa.Column(
        "delivery_id", sa.BigInteger, sa.ForeignKey("webhook_deliveries.id"), nullable=False
    ),
    sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("status_code", sa.Integer),
    sa.Column("error", sa.Text),
    sa.Column("duration_ms", sa.Integer, nullable=False),
    sa.Index("ix_webhook_attempts_delivery", "delivery_id", "id"),
)

# Operator console sessions (DESIGN §12): the cookie carries a random id, the table its SHA-256.
# Hosted sessions name the key they signed in with, so revoking the key ends them.
console_sessions = sa.Table(
    "console_sessions",
    metadata,
    sa.Column("id_digest", BYTEA, primary_key=True),
    sa.Column("tenant_id", UUID(as_uuid=True), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("key_id", UUID(as_uuid=True), sa.ForeignKey("api_keys.id")),
    sa.Column("csrf_token", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("ended_at", sa.DateTime(timezone=True)),
)
