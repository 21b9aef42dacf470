"""Reserve and settle answer a retry the same way instead of acting twice.

A batch whose connection dies after COMMIT but before the reply has an unknown outcome; the
batcher retries it. With these versions a retried reserve finds its hold (same hold id) and
returns it, and a retried settle returns the charge it already made with the current
balance, so a retry can never double a hold or a charge. The rest of both functions is as in
0002.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

import importlib

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

RESERVE = """
CREATE OR REPLACE FUNCTION sg_reserve(
    p_agent uuid, p_tenant uuid, p_run uuid, p_hold uuid,
    p_fixed_microcents bigint, p_rate_num bigint, p_rate_den bigint,
    p_max_tokens integer, p_min_tokens integer, p_ttl_s integer,
    p_provider text, p_model text, p_input_tokens integer,
    OUT status text, OUT max_tokens integer, OUT hold_microcents bigint,
    OUT remaining_microcents bigint, OUT available_microcents bigint,
    OUT locked_run_id uuid)
LANGUAGE plpgsql AS $$
DECLARE
    b budgets%ROWTYPE;
    h holds%ROWTYPE;
    affordable numeric;
BEGIN
    SELECT bu.* INTO b FROM budgets bu JOIN agents a ON a.id = bu.agent_id
     WHERE bu.agent_id = p_agent AND a.tenant_id = p_tenant AND a.deleted_at IS NULL
       FOR UPDATE OF bu;
    IF NOT FOUND THEN
        status := CASE WHEN EXISTS (SELECT 1 FROM agents WHERE id = p_agent
                                     AND tenant_id = p_tenant AND deleted_at IS NULL)
                       THEN 'no_budget' ELSE 'not_found' END;
        RETURN;
    END IF;
    SELECT * INTO h FROM holds WHERE id = p_hold AND agent_id = p_agent;
    IF FOUND THEN  -- a retry of a reserve that committed: the same answer, no second hold
        status := 'ok';
        max_tokens := h.max_output_tokens;
        hold_microcents := h.amount_microcents;
        remaining_microcents := b.remaining_microcents;
        available_microcents := b.remaining_microcents - b.held_microcents;
        locked_run_id := b.locked_run_id;
        RETURN;
    END IF;
    IF b.hold_count > 0 AND sg_expire_holds(p_agent) > 0 THEN
        SELECT * INTO b FROM budgets WHERE agent_id = p_agent;
    END IF;
    remaining_microcents := b.remaining_microcents;
    available_microcents := b.remaining_microcents - b.held_microcents;
    locked_run_id := b.locked_run_id;
    IF b.concurrency = 'exclusive' AND b.hold_count > 0 AND b.locked_run_id <> p_run THEN
        status := 'locked';
        RETURN;
    END IF;
    IF available_microcents < p_fixed_microcents THEN
        status := 'insufficient';
        RETURN;
    END IF;
    IF p_rate_num = 0 THEN
        max_tokens := p_max_tokens;
    ELSE
        affordable := div((available_microcents - p_fixed_microcents)::numeric * p_rate_den,
                          p_rate_num);
        max_tokens := LEAST(p_max_tokens::numeric, affordable)::integer;
    END IF;
    hold_microcents := GREATEST(p_fixed_microcents
        + div(max_tokens::numeric * p_rate_num + p_rate_den - 1, p_rate_den)::bigint, 1);
    IF max_tokens < p_min_tokens OR hold_microcents > available_microcents THEN
        status := 'insufficient';
        RETURN;
    END IF;
    INSERT INTO holds (id, agent_id, run_id, amount_microcents, provider, model, input_tokens,
                       max_output_tokens, expires_at)
    VALUES (p_hold, p_agent, p_run, hold_microcents, p_provider, p_model, p_input_tokens,
            max_tokens, now() + make_interval(secs => p_ttl_s));
    UPDATE budgets
       SET held_microcents = budgets.held_microcents + hold_microcents,
           hold_count = budgets.hold_count + 1,
           locked_run_id = CASE WHEN budgets.concurrency = 'exclusive' THEN p_run
                                ELSE budgets.locked_run_id END,
           updated_at = now()
     WHERE agent_id = p_agent;
    available_microcents := available_microcents - hold_microcents;
    status := 'ok';
END $$;
"""

SETTLE = """
CREATE OR REPLACE FUNCTION sg_settle(
    p_agent uuid, p_hold uuid, p_realized_microcents bigint,
    p_input_tokens integer, p_output_tokens integer, p_reason text,
    p_breakdown jsonb, p_request_sha256 text, p_content jsonb,
    OUT status text, OUT charged_microcents bigint, OUT overrun_microcents bigint,
    OUT remaining_microcents bigint, OUT entry_id bigint)
LANGUAGE plpgsql AS $$
DECLARE
    b budgets%ROWTYPE;
    h holds%ROWTYPE;
    prior ledger_entries%ROWTYPE;
BEGIN
    SELECT * INTO b FROM budgets WHERE agent_id = p_agent FOR UPDATE;
    IF NOT FOUND THEN
        status := 'not_found';
        RETURN;
    END IF;
    DELETE FROM holds WHERE id = p_hold AND agent_id = p_agent RETURNING * INTO h;
    IF FOUND THEN
        -- Never more than this hold plus money nobody else has reserved.
        charged_microcents := LEAST(p_realized_microcents,
                                    h.amount_microcents
                                    + b.remaining_microcents - b.held_microcents);
        overrun_microcents := p_realized_microcents - charged_microcents;
        UPDATE budgets
           SET remaining_microcents = budgets.remaining_microcents - charged_microcents,
               held_microcents = budgets.held_microcents - h.amount_microcents,
               hold_count = budgets.hold_count - 1,
               locked_run_id = CASE WHEN budgets.hold_count = 1 THEN NULL
                                    ELSE budgets.locked_run_id END,
               updated_at = now()
         WHERE agent_id = p_agent
        RETURNING budgets.remaining_microcents INTO remaining_microcents;
        status := 'settled';
    ELSE
        SELECT * INTO prior FROM ledger_entries
         WHERE hold_id = p_hold AND agent_id = p_agent AND kind = 'charge';
        IF FOUND THEN  -- a retry of a settle that committed: the same answer
            status := 'already_settled';
            entry_id := prior.id;
            charged_microcents := -prior.delta_microcents;
            overrun_microcents := prior.overrun_microcents;
            remaining_microcents := b.remaining_microcents;
            RETURN;
        END IF;
        SELECT * INTO prior FROM ledger_entries
         WHERE hold_id = p_hold AND agent_id = p_agent AND kind = 'hold_expired';
        IF NOT FOUND THEN
            status := 'not_found';
            RETURN;
        END IF;
        -- The expired hold was charged in full already; record the real figures only.
        h.run_id := prior.run_id;
        h.provider := prior.provider;
        h.model := prior.model;
        h.amount_microcents := -prior.delta_microcents;
        charged_microcents := 0;
        overrun_microcents := GREATEST(p_realized_microcents - h.amount_microcents, 0);
        remaining_microcents := b.remaining_microcents;
        status := 'late';
    END IF;
    INSERT INTO ledger_entries (agent_id, kind, delta_microcents, balance_after_microcents, run_id,
                                hold_id, provider, model, input_tokens, output_tokens,
                                wcec_microcents, realized_microcents, overrun_microcents,
                                termination_reason, billing_breakdown, request_sha256, content)
    VALUES (p_agent, 'charge', -charged_microcents, remaining_microcents, h.run_id, p_hold,
            h.provider, h.model, p_input_tokens, p_output_tokens, h.amount_microcents,
            p_realized_microcents, overrun_microcents, p_reason, p_breakdown, p_request_sha256,
            p_content)
    RETURNING id INTO entry_id;
END $$;
"""


def _previous():
    return importlib.import_module(
        "spendguard_proxy.migrations.versions.0002_ledger_functions"
    )


def upgrade() -> None:
    op.execute(RESERVE)
    op.execute(SETTLE)


def downgrade() -> None:
    previous = _previous()
    for body in (previous.RESERVE, previous.SETTLE):
        op.execute(body.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION"))
