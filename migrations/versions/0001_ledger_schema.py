"""Ledger schema: tenants, API keys, agents, budgets, holds, runs, ledger entries.

Revision ID: 0001
Revises:
Create Date: 2026-11-23 20:44:36.243397
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('tenants',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tenants'))
    )
    op.create_table('agents',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('tenant_id', sa.UUID(), nullable=False),
    sa.Column('name', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_agents_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agents'))
    )
    op.create_index('ix_agents_tenant_created', 'agents', ['tenant_id', 'created_at'], unique=False)
    op.create_table('api_keys',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('tenant_id', sa.UUID(), nullable=False),
    sa.Column('digest', postgresql.BYTEA(), nullable=False),
    sa.Column('prefix', sa.Text(), nullable=False),
    sa.Column('scopes', postgresql.ARRAY(sa.Text()), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_api_keys_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_keys')),
    sa.UniqueConstraint('digest', name=op.f('uq_api_keys_digest'))
    )
    op.create_table('budgets',
    sa.Column('agent_id', sa.UUID(), nullable=False),
    sa.Column('hard_limit_microcents', sa.BigInteger(), nullable=False),
    sa.Column('remaining_microcents', sa.BigInteger(), nullable=False),
    sa.Column('held_microcents', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('hold_count', sa.Integer(), server_default='0', nullable=False),
    sa.Column('concurrency', sa.Text(), server_default='exclusive', nullable=False),
    sa.Column('locked_run_id', sa.UUID(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("concurrency IN ('exclusive', 'shared')", name=op.f('ck_budgets_concurrency_kind')),
    sa.CheckConstraint('hard_limit_microcents > 0', name=op.f('ck_budgets_limit_positive')),
    sa.CheckConstraint('held_microcents <= remaining_microcents', name=op.f('ck_budgets_holds_within_remaining')),
    sa.CheckConstraint('held_microcents >= 0 AND hold_count >= 0', name=op.f('ck_budgets_holds_non_negative')),
    sa.CheckConstraint('remaining_microcents >= 0', name=op.f('ck_budgets_remaining_non_negative')),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_budgets_agent_id_agents')),
    sa.PrimaryKeyConstraint('agent_id', name=op.f('pk_budgets'))
    )
    op.create_table('holds',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('agent_id', sa.UUID(), nullable=False),
    sa.Column('run_id', sa.UUID(), nullable=False),
    sa.Column('amount_microcents', sa.BigInteger(), nullable=False),
    sa.Column('provider', sa.Text(), nullable=True),
    sa.Column('model', sa.Text(), nullable=True),
    sa.Column('input_tokens', sa.Integer(), nullable=True),
    sa.Column('max_output_tokens', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('amount_microcents > 0', name=op.f('ck_holds_amount_positive')),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_holds_agent_id_agents')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_holds'))
    )
    op.create_index('ix_holds_agent_expires', 'holds', ['agent_id', 'expires_at'], unique=False)
    op.create_index('ix_holds_expires', 'holds', ['expires_at'], unique=False)
    op.create_table('ledger_entries',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=True), nullable=False),
    sa.Column('agent_id', sa.UUID(), nullable=False),
    sa.Column('kind', sa.Text(), nullable=False),
    sa.Column('delta_microcents', sa.BigInteger(), nullable=False),
    sa.Column('balance_after_microcents', sa.BigInteger(), nullable=False),
    sa.Column('run_id', sa.UUID(), nullable=True),
    sa.Column('hold_id', sa.UUID(), nullable=True),
    sa.Column('provider', sa.Text(), nullable=True),
    sa.Column('model', sa.Text(), nullable=True),
    sa.Column('input_tokens', sa.Integer(), nullable=True),
    sa.Column('output_tokens', sa.Integer(), nullable=True),
    sa.Column('wcec_microcents', sa.BigInteger(), nullable=True),
    sa.Column('realized_microcents', sa.BigInteger(), nullable=True),
    sa.Column('overrun_microcents', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('termination_reason', sa.Text(), nullable=True),
    sa.Column('billing_breakdown', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('request_sha256', sa.Text(), nullable=True),
    sa.Column('content', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("kind IN ('topup', 'limit_change', 'charge', 'hold_expired')", name=op.f('ck_ledger_entries_kind_known')),
    sa.CheckConstraint('balance_after_microcents >= 0', name=op.f('ck_ledger_entries_balance_non_negative')),
    sa.CheckConstraint('overrun_microcents >= 0', name=op.f('ck_ledger_entries_overrun_non_negative')),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_ledger_entries_agent_id_agents')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_entries'))
    )
    op.create_index('ix_ledger_agent_id', 'ledger_entries', ['agent_id', 'id'], unique=False)
    op.create_index('ix_ledger_hold', 'ledger_entries', ['hold_id'], unique=False)
    op.create_table('runs',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('agent_id', sa.UUID(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_runs_agent_id_agents')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_runs'))
    )
    op.execute(
        "INSERT INTO tenants (id, name) VALUES ('00000000-0000-0000-0000-000000000000', 'local')"
    )


def downgrade() -> None:
    op.drop_table('runs')
    op.drop_index('ix_ledger_hold', table_name='ledger_entries')
    op.drop_index('ix_ledger_agent_id', table_name='ledger_entries')
    op.drop_table('ledger_entries')
    op.drop_index('ix_holds_expires', table_name='holds')
    op.drop_index('ix_holds_agent_expires', table_name='holds')
    op.drop_table('holds')
    op.drop_table('budgets')
    op.drop_table('api_keys')
    op.drop_index('ix_agents_tenant_created', table_name='agents')
    op.drop_table('agents')
    op.drop_table('tenants')
