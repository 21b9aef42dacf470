"""Batched reserve and settle; holds and ledger rows reference the budget row.

Under load one hot agent's budget row is the bottleneck: each transaction holds its lock
until its commit is flushed, and every waiting backend must be woken in turn. The *_many
functions apply a whole batch of reserves (or settles) in one transaction — one lock
acquisition and one WAL flush per agent per batch — in agent-id order, so concurrent batches
from several replicas lock budget rows in the same order and cannot deadlock.

Two CHECKs make sure a charge can only ever take money. The foreign keys move from agents to budgets: the check then touches the budget row the
writer already holds FOR UPDATE, instead of taking KEY SHARE locks on the agent row from
every concurrent call.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

RESERVE_MANY = """
CREATE FUNCTION sg_reserve_many(
    p_agents uuid[], p_tenants uuid[], p_runs uuid[], p_holds uuid[],
    p_fixed bigint[], p_rate_num bigint[], p_rate_den bigint[],
    p_max_tokens integer[], p_min_tokens integer[], p_ttl_s integer,
    p_providers text[], p_models text[], p_input_tokens integer[])
RETURNS TABLE (idx integer, status text, max_tokens integer, hold_microcents bigint,
               remaining_microcents bigint, available_microcents bigint, locked_run_id uuid)
LANGUAGE plpgsql AS $$
DECLARE
    i integer;
    r record;
BEGIN
    FOR i IN SELECT s.i FROM generate_subscripts(p_agents, 1) AS s(i)
              ORDER BY p_agents[s.i], s.i LOOP
        SELECT * INTO r FROM sg_reserve(
            p_agents[i], p_tenants[i], p_runs[i], p_holds[i], p_fixed[i], p_rate_num[i],
            p_rate_den[i], p_max_tokens[i], p_min_tokens[i], p_ttl_s, p_providers[i],
            p_models[i], p_input_tokens[i]);
        idx := i;
        status := r.status;
        max_tokens := r.max_tokens;
        hold_microcents := r.hold_microcents;
        remaining_microcents := r.remaining_microcents;
        available_microcents := r.available_microcents;
        locked_run_id := r.locked_run_id;
        RETURN NEXT;
    END LOOP;
END $$;
"""

SETTLE_MANY = """
CREATE FUNCTION sg_settle_many(
    p_agents uuid[], p_holds uuid[], p_realized bigint[], p_input_tokens integer[],
    p_output_tokens integer[], p_reasons text[], p_breakdowns jsonb[],
    p_request_sha256 text[], p_contents jsonb[])
RETURNS TABLE (idx integer, status text, charged_microcents bigint,
               overrun_microcents bigint, remaining_microcents bigint, entry_id bigint)
LANGUAGE plpgsql AS $$
DECLARE
    i integer;
    r record;
BEGIN
    FOR i IN SELECT s.i FROM generate_subscripts(p_agents, 1) AS s(i)
              ORDER BY p_agents[s.i], s.i LOOP
        SELECT * INTO r FROM sg_settle(
            p_agents[i], p_holds[i], p_realized[i], p_input_tokens[i], p_output_tokens[i],
            p_reasons[i], p_breakdowns[i], p_request_sha256[i], p_contents[i]);
        idx := i;
        status := r.status;
        charged_microcents := r.charged_microcents;
        overrun_microcents := r.overrun_microcents;
        remaining_microcents := r.remaining_microcents;
        entry_id := r.entry_id;
        RETURN NEXT;
    END LOOP;
END $$;
"""

MANY_SIGNATURES = (
    "sg_reserve_many(uuid[], uuid[], uuid[], uuid[], bigint[], bigint[], bigint[], integer[], "
    "integer[], integer, text[], text[], integer[])",
    "sg_settle_many(uuid[], uuid[], bigint[], integer[], integer[], text[], jsonb[], text[], "
    "jsonb[])",
)


def _point_agent_fk(table: str, to_table: str, to_column: str) -> None:
    op.drop_constraint(f"fk_{table}_agent_id_{'budgets' if to_table == 'agents' else 'agents'}",
                       table, type_="foreignkey")
    op.create_foreign_key(f"fk_{table}_agent_id_{to_table}", table, to_table, ["agent_id"],
                          [to_column])


# A charge can only take money: a negative "realized" figure must never credit an agent.
CHECKS = {
    "realized_non_negative": "realized_microcents >= 0",
    "charges_debit": "kind NOT IN ('charge', 'hold_expired') OR delta_microcents <= 0",
}


def upgrade() -> None:
    for table in ("holds", "ledger_entries"):
        _point_agent_fk(table, "budgets", "agent_id")
    for name, condition in CHECKS.items():
        op.create_check_constraint(op.f(f"ck_ledger_entries_{name}"), "ledger_entries", condition)
    op.execute(RESERVE_MANY)
    op.execute(SETTLE_MANY)


def downgrade() -> None:
    for name in CHECKS:
        op.drop_constraint(op.f(f"ck_ledger_entries_{name}"), "ledger_entries", type_="check")
    for signature in MANY_SIGNATURES:
        op.execute(f"DROP FUNCTION {signature}")
    for table in ("holds", "ledger_entries"):
        _point_agent_fk(table, "agents", "id")
