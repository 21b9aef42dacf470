"""Budget policies: periods, groups, rate limits, model allowlists, alerts; tenant ceilings;
holds that name their worker; webhook outbox; console sessions (DESIGN §11–13).

The money rules stay in the database. New functions take the current time as a parameter
(``p_now``; NULL means ``now()``) so tests drive the clock, and the worker that placed a hold:

- ``sg_reserve_v2`` / ``sg_settle_v2`` / ``sg_expire_holds_v2`` / ``sg_sweep_agent_v2`` and the
  batched ``*_many_v2``. The 0002–0005 signatures stay and call them, so replicas of the
  previous release keep working on this schema during a rolling upgrade.
- One lock order on every money path: the tenant row (where a ceiling applies or holds count
  against one), then budget groups by id, then budget rows by agent id. Rows another path may
  reference by foreign key are locked ``FOR NO KEY UPDATE`` so inserts elsewhere are not
  blocked. Batches take the tenant and group locks of the whole batch first, sorted, before the
  budget rows in agent order: two batches on replicas cannot deadlock.
- Periods reset lazily under the lock (``sg_roll_*``) by reserve, settle, the sweeper and reads:
  remaining becomes ``max(hard_limit, live holds)`` with a ``period_reset`` ledger row, once per
  period however many replicas race, because the second one finds ``period_resets_at`` moved.
- Rate limits are GCRA on the budget row: a call of n units (1 request; input + clamped max
  output tokens) fits while ``max(tat, now) + n·60 s/limit − now ≤ 60 s``, i.e. at most
  ``limit`` units in any rolling 60 s, with bursts up to the limit. Settle gives back the tokens
  reserved but not used.
- Events (``sg_emit``) are written in the transaction of the change that caused them, one
  delivery row per subscribed webhook; nothing is written when no webhook listens.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

import importlib
import re

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

UUID = sa.UUID()
TS = sa.DateTime(timezone=True)
NOW = sa.text("now()")
LEDGER_KINDS = "kind IN ('topup', 'limit_change', 'charge', 'hold_expired', 'period_reset')"
OLD_LEDGER_KINDS = "kind IN ('topup', 'limit_change', 'charge', 'hold_expired')"


def _period_columns() -> list[sa.Column]:
    return [
        sa.Column("period", sa.Text(), server_default="none", nullable=False),
        sa.Column("period_resets_at", TS, nullable=True),
        sa.Column("period_spent_microcents", sa.BigInteger(), server_default="0",
                  nullable=False),
        sa.Column("alert_thresholds_pct", postgresql.ARRAY(sa.SmallInteger()), nullable=True),
        sa.Column("exhausted_notified", sa.Boolean(), server_default="false", nullable=False),
    ]


PERIOD_CHECK = "period IN ('none', 'daily', 'weekly', 'monthly')"

# ---------------------------------------------------------------- helpers

HELPERS = r"""
CREATE FUNCTION sg_period_end(p_period text, p_now timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE p_period
        WHEN 'daily' THEN (date_trunc('day', p_now AT TIME ZONE 'UTC') + interval '1 day')
        WHEN 'weekly' THEN (date_trunc('week', p_now AT TIME ZONE 'UTC') + interval '7 days')
        WHEN 'monthly' THEN (date_trunc('month', p_now AT TIME ZONE 'UTC') + interval '1 month')
    END AT TIME ZONE 'UTC'
$$;

-- Shell-style globs (* and ?) as LIKE patterns, everything else literal.
CREATE FUNCTION sg_model_allowed(p_model text, p_patterns text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT p_patterns IS NULL OR EXISTS (
        SELECT 1 FROM unnest(p_patterns) AS p
         WHERE p_model LIKE replace(replace(replace(replace(replace(p,
                   '\', '\\'), '%', '\%'), '_', '\_'), '*', '%'), '?', '_'))
$$;

-- The thresholds (percent of the limit) that spending from p_before to p_after crossed.
CREATE FUNCTION sg_crossed(p_before bigint, p_after bigint, p_limit bigint,
                           p_thresholds smallint[]) RETURNS smallint[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(array_agg(t ORDER BY t), '{}') FROM unnest(p_thresholds) AS t
     WHERE p_before::numeric * 100 < t::numeric * p_limit
       AND t::numeric * p_limit <= p_after::numeric * 100
$$;

CREATE FUNCTION sg_emit(p_tenant uuid, p_type text, p_data jsonb, p_now timestamptz)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    event_id text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM webhooks WHERE tenant_id = p_tenant AND deleted_at IS NULL
                      AND (events IS NULL OR p_type = ANY(events))) THEN
        RETURN;
    END IF;
    event_id := 'msg_' || replace(gen_random_uuid()::text, '-', '');
    INSERT INTO webhook_events (id, tenant_id, type, data, created_at)
    VALUES (event_id, p_tenant, p_type, p_data, p_now);
    INSERT INTO webhook_deliveries (event_id, webhook_id, next_attempt_at, created_at)
    SELECT event_id, w.id, p_now, p_now FROM webhooks w
     WHERE w.tenant_id = p_tenant AND w.deleted_at IS NULL
       AND (w.events IS NULL OR p_type = ANY(w.events));
END $$;

-- Caller holds the budget row lock. Starts a new period when the current one is over.
CREATE FUNCTION sg_roll_budget(p_agent uuid, p_now timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    b budgets%ROWTYPE;
    fresh bigint;
BEGIN
    SELECT * INTO b FROM budgets WHERE agent_id = p_agent;
    IF b.period = 'none' OR b.period_resets_at > p_now THEN
        RETURN;
    END IF;
    fresh := GREATEST(b.hard_limit_microcents, b.held_microcents);
    UPDATE budgets SET remaining_microcents = fresh, period_spent_microcents = 0,
                       exhausted_notified = false,
                       period_resets_at = sg_period_end(b.period, p_now), updated_at = p_now
     WHERE agent_id = p_agent;
    INSERT INTO ledger_entries (agent_id, kind, delta_microcents, balance_after_microcents,
                                group_id, created_at)
    VALUES (p_agent, 'period_reset', fresh - b.remaining_microcents, fresh, b.group_id, p_now);
END $$;

-- Caller holds the group row lock.
CREATE FUNCTION sg_roll_group(p_group uuid, p_now timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    g budget_groups%ROWTYPE;
    fresh bigint;
BEGIN
    SELECT * INTO g FROM budget_groups WHERE id = p_group;
    IF g.period = 'none' OR g.period_resets_at > p_now THEN
        RETURN;
    END IF;
    fresh := GREATEST(g.hard_limit_microcents, g.held_microcents);
    UPDATE budget_groups SET remaining_microcents = fresh, period_spent_microcents = 0,
                             exhausted_notified = false,
                             period_resets_at = sg_period_end(g.period, p_now), updated_at = p_now
     WHERE id = p_group;
    INSERT INTO group_ledger_entries (group_id, kind, delta_microcents, balance_after_microcents,
                                      created_at)
    VALUES (p_group, 'period_reset', fresh - g.remaining_microcents, fresh, p_now);
END $$;

-- Caller holds the tenant row lock. A calendar month (UTC) of spending against the ceiling.
CREATE FUNCTION sg_roll_tenant(p_tenant uuid, p_now timestamptz) RETURNS void
LANGUAGE sql AS $$
    UPDATE tenants SET month_spent_microcents = 0,
                       month_starts_at = date_trunc('month', p_now AT TIME ZONE 'UTC')
                                         AT TIME ZONE 'UTC'
     WHERE id = p_tenant
       AND (month_starts_at IS NULL
            OR month_starts_at + interval '1 month' <= p_now)
$$;

-- Lock what a money path on this agent needs, in the one order: tenant, group, budget.
-- Returns the budget's group id (NULL: none); NULL tenant_locked when the agent is unknown.
CREATE FUNCTION sg_lock_agent(p_agent uuid, p_now timestamptz,
                              OUT group_id uuid, OUT tenant_locked boolean)
LANGUAGE plpgsql AS $$
DECLARE
    tenant uuid;
    locked uuid;
BEGIN
    SELECT bu.group_id, a.tenant_id INTO group_id, tenant
      FROM budgets bu JOIN agents a ON a.id = bu.agent_id WHERE bu.agent_id = p_agent;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    PERFORM 1 FROM tenants t WHERE t.id = tenant
       AND (t.monthly_ceiling_microcents IS NOT NULL OR t.month_held_microcents > 0)
       FOR NO KEY UPDATE;
    tenant_locked := FOUND;
    IF tenant_locked THEN
        PERFORM sg_roll_tenant(tenant, p_now);
    END IF;
    IF group_id IS NOT NULL THEN
        PERFORM 1 FROM budget_groups g WHERE g.id = group_id FOR NO KEY UPDATE;
    END IF;
    SELECT bu.group_id INTO locked FROM budgets bu WHERE bu.agent_id = p_agent FOR UPDATE;
    IF locked IS DISTINCT FROM group_id THEN
        -- Moved to another group between the read and the lock (an operator's change that
        -- has committed): lock that one too. Out of order, but only on this rare path.
        group_id := locked;
        IF group_id IS NOT NULL THEN
            PERFORM 1 FROM budget_groups g WHERE g.id = group_id FOR NO KEY UPDATE;
        END IF;
    END IF;
    IF group_id IS NOT NULL THEN
        PERFORM sg_roll_group(group_id, p_now);
    END IF;
    PERFORM sg_roll_budget(p_agent, p_now);
END $$;

-- Caller holds the locks and has just charged p_charged to the agent (and its group): a
-- budget.threshold event for each of their thresholds that this charge crossed.
CREATE FUNCTION sg_alert_thresholds(p_tenant uuid, p_agent uuid, p_group uuid,
                                    p_charged bigint, p_now timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    b budgets%ROWTYPE;
    g budget_groups%ROWTYPE;
    pct smallint;
BEGIN
    IF p_charged <= 0 THEN
        RETURN;
    END IF;
    SELECT * INTO b FROM budgets WHERE agent_id = p_agent;
    FOREACH pct IN ARRAY sg_crossed(b.period_spent_microcents - p_charged,
                                    b.period_spent_microcents, b.hard_limit_microcents,
                                    b.alert_thresholds_pct) LOOP
        PERFORM sg_emit(p_tenant, 'budget.threshold', jsonb_build_object(
            'scope', 'agent', 'agent_id', p_agent, 'group_id', p_group,
            'threshold_pct', pct, 'period', b.period,
            'spent_cents', b.period_spent_microcents / 1000000.0,
            'hard_limit_cents', b.hard_limit_microcents / 1000000), p_now);
    END LOOP;
    IF p_group IS NULL THEN
        RETURN;
    END IF;
    SELECT * INTO g FROM budget_groups WHERE id = p_group;
    FOREACH pct IN ARRAY sg_crossed(g.period_spent_microcents - p_charged,
                                    g.period_spent_microcents, g.hard_limit_microcents,
                                    g.alert_thresholds_pct) LOOP
        PERFORM sg_emit(p_tenant, 'budget.threshold', jsonb_build_object(
            'scope', 'group', 'agent_id', p_agent, 'group_id', p_group,
            'threshold_pct', pct, 'period', g.period,
            'spent_cents', g.period_spent_microcents / 1000000.0,
            'hard_limit_cents', g.hard_limit_microcents / 1000000), p_now);
    END LOOP;
END $$;

-- Caller holds the locks of sg_lock_agent. Charges every expired hold of the agent in full.
CREATE FUNCTION sg_expire_holds_v2(p_agent uuid, p_now timestamptz) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    h holds%ROWTYPE;
    bal bigint;
    tenant uuid;
    entry bigint;
    gbal bigint;
    n integer := 0;
BEGIN
    FOR h IN DELETE FROM holds WHERE agent_id = p_agent AND expires_at < p_now RETURNING * LOOP
        UPDATE budgets
           SET remaining_microcents = remaining_microcents - h.amount_microcents,
               held_microcents = held_microcents - h.amount_microcents,
               hold_count = hold_count - 1,
               period_spent_microcents = period_spent_microcents + h.amount_microcents,
               locked_run_id = CASE WHEN hold_count = 1 THEN NULL ELSE locked_run_id END,
               updated_at = p_now
         WHERE agent_id = p_agent
        RETURNING remaining_microcents INTO bal;
        INSERT INTO ledger_entries (agent_id, kind, delta_microcents, balance_after_microcents,
                                    run_id, hold_id, provider, model, input_tokens,
                                    wcec_microcents, realized_microcents, termination_reason,
                                    group_id, created_at)
        VALUES (p_agent, 'hold_expired', -h.amount_microcents, bal, h.run_id, h.id, h.provider,
                h.model, h.input_tokens, h.amount_microcents, h.amount_microcents,
                'hold_expired', h.group_id, p_now)
        RETURNING id INTO entry;
        IF h.group_id IS NOT NULL THEN
            UPDATE budget_groups
               SET remaining_microcents = remaining_microcents - h.amount_microcents,
                   held_microcents = held_microcents - h.amount_microcents,
                   hold_count = hold_count - 1,
                   period_spent_microcents = period_spent_microcents + h.amount_microcents,
                   updated_at = p_now
             WHERE id = h.group_id
            RETURNING remaining_microcents INTO gbal;
            INSERT INTO group_ledger_entries (group_id, kind, delta_microcents,
                                              balance_after_microcents, agent_id, hold_id,
                                              agent_entry_id, created_at)
            VALUES (h.group_id, 'hold_expired', -h.amount_microcents, gbal, p_agent, h.id,
                    entry, p_now);
        END IF;
        IF h.tenant_id IS NOT NULL THEN
            UPDATE tenants
               SET month_held_microcents = month_held_microcents - h.amount_microcents,
                   month_spent_microcents = month_spent_microcents + h.amount_microcents
             WHERE id = h.tenant_id;
        END IF;
        SELECT a.tenant_id INTO tenant FROM agents a WHERE a.id = p_agent;
        PERFORM sg_emit(tenant, 'hold.expired', jsonb_build_object(
            'agent_id', p_agent, 'group_id', h.group_id, 'hold_id', h.id, 'run_id', h.run_id,
            'model', h.model, 'charged_microcents', h.amount_microcents), p_now);
        PERFORM sg_alert_thresholds(tenant, p_agent, h.group_id, h.amount_microcents, p_now);
        n := n + 1;
    END LOOP;
    RETURN n;
END $$;

CREATE FUNCTION sg_sweep_agent_v2(p_agent uuid, p_now timestamptz) RETURNS integer
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('synchronous_commit', 'on', true);
    p_now := coalesce(p_now, now());
    IF (sg_lock_agent(p_agent, p_now)).tenant_locked IS NULL THEN
        RETURN 0;
    END IF;
    RETURN sg_expire_holds_v2(p_agent, p_now);
END $$;
"""

# ---------------------------------------------------------------- reserve

# status: ok | not_found | no_budget | locked | insufficient | rate_limited | model_not_allowed
# limited_by: agent | group | tenant (insufficient); rpm | tpm | tpm_size (rate_limited)
RESERVE = r"""
CREATE FUNCTION sg_reserve_v2(
    p_agent uuid, p_tenant uuid, p_run uuid, p_hold uuid,
    p_fixed_microcents bigint, p_rate_num bigint, p_rate_den bigint,
    p_max_tokens integer, p_min_tokens integer, p_ttl_s integer,
    p_provider text, p_model text, p_input_tokens integer,
    p_now timestamptz, p_worker text,
    OUT status text, OUT max_tokens integer, OUT hold_microcents bigint,
    OUT remaining_microcents bigint, OUT available_microcents bigint,
    OUT locked_run_id uuid, OUT limited_by text, OUT retry_after_s integer)
LANGUAGE plpgsql AS $$
DECLARE
    b budgets%ROWTYPE;
    g budget_groups%ROWTYPE;
    t tenants%ROWTYPE;
    h holds%ROWTYPE;
    lk record;
    room bigint;
    affordable numeric;
    lag_s numeric;
    tpm_room numeric;
    rpm_start timestamptz;
    tpm_start timestamptz;
    tokens integer;
BEGIN
    PERFORM set_config('synchronous_commit', 'on', true);
    p_now := coalesce(p_now, now());
    IF NOT EXISTS (SELECT 1 FROM agents WHERE id = p_agent AND tenant_id = p_tenant
                      AND deleted_at IS NULL) THEN
        status := 'not_found';
        RETURN;
    END IF;
    SELECT * INTO lk FROM sg_lock_agent(p_agent, p_now);
    IF lk.tenant_locked IS NULL THEN
        status := 'no_budget';
        RETURN;
    END IF;
    SELECT * INTO b FROM budgets WHERE agent_id = p_agent;
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
    IF b.hold_count > 0 AND sg_expire_holds_v2(p_agent, p_now) > 0 THEN
        SELECT * INTO b FROM budgets WHERE agent_id = p_agent;
    END IF;
    remaining_microcents := b.remaining_microcents;
    available_microcents := b.remaining_microcents - b.held_microcents;
    locked_run_id := b.locked_run_id;
    IF NOT sg_model_allowed(p_model, b.allowed_models) THEN
        status := 'model_not_allowed';
        RETURN;
    END IF;
    IF b.concurrency = 'exclusive' AND b.hold_count > 0 AND b.locked_run_id <> p_run THEN
        status := 'locked';
        RETURN;
    END IF;
    -- Rate limits (GCRA, see the module docstring).
    IF b.rpm_limit IS NOT NULL THEN
        rpm_start := GREATEST(coalesce(b.rpm_tat, p_now), p_now);
        lag_s := extract(epoch FROM rpm_start - p_now) + 60.0 / b.rpm_limit;
        IF lag_s > 60 THEN
            status := 'rate_limited';
            limited_by := 'rpm';
            retry_after_s := GREATEST(ceil(lag_s - 60), 1);
            RETURN;
        END IF;
    END IF;
    max_tokens := p_max_tokens;
    IF b.tpm_limit IS NOT NULL THEN
        tpm_start := GREATEST(coalesce(b.tpm_tat, p_now), p_now);
        lag_s := extract(epoch FROM tpm_start - p_now);
        tpm_room := floor((60 - lag_s) * b.tpm_limit / 60.0) - coalesce(p_input_tokens, 0);
        IF coalesce(p_input_tokens, 0) + p_min_tokens > b.tpm_limit THEN
            status := 'rate_limited';
            limited_by := 'tpm_size';
            RETURN;
        END IF;
        IF tpm_room < p_min_tokens THEN
            status := 'rate_limited';
            limited_by := 'tpm';
            retry_after_s := GREATEST(ceil(lag_s + (coalesce(p_input_tokens, 0) + p_min_tokens)
                                           * 60.0 / b.tpm_limit - 60), 1);
            RETURN;
        END IF;
        max_tokens := LEAST(max_tokens::numeric, tpm_room)::integer;
    END IF;
    -- Money: the call must fit the agent, its group and the tenant's monthly ceiling.
    room := available_microcents;
    limited_by := 'agent';
    IF lk.group_id IS NOT NULL THEN
        SELECT * INTO g FROM budget_groups WHERE id = lk.group_id;
        IF g.remaining_microcents - g.held_microcents < room THEN
            room := g.remaining_microcents - g.held_microcents;
            limited_by := 'group';
        END IF;
    END IF;
    IF lk.tenant_locked THEN
        SELECT * INTO t FROM tenants WHERE id = p_tenant;
        IF t.monthly_ceiling_microcents IS NOT NULL AND t.monthly_ceiling_microcents
               - t.month_spent_microcents - t.month_held_microcents < room THEN
            room := GREATEST(t.monthly_ceiling_microcents - t.month_spent_microcents
                             - t.month_held_microcents, 0);
            limited_by := 'tenant';
        END IF;
    END IF;
    available_microcents := room;
    IF room >= p_fixed_microcents AND p_rate_num > 0 THEN
        affordable := div((room - p_fixed_microcents)::numeric * p_rate_den, p_rate_num);
        max_tokens := LEAST(max_tokens::numeric, affordable)::integer;
    END IF;
    hold_microcents := GREATEST(p_fixed_microcents
        + div(max_tokens::numeric * p_rate_num + p_rate_den - 1, p_rate_den)::bigint, 1);
    IF room < p_fixed_microcents OR max_tokens < p_min_tokens OR hold_microcents > room THEN
        status := 'insufficient';
        PERFORM sg_note_exhausted(p_tenant, p_agent, lk.group_id, limited_by, p_now);
        RETURN;
    END IF;
    limited_by := NULL;
    tokens := CASE WHEN b.tpm_limit IS NOT NULL
                   THEN coalesce(p_input_tokens, 0) + max_tokens END;
    INSERT INTO holds (id, agent_id, run_id, amount_microcents, provider, model, input_tokens,
                       max_output_tokens, created_at, expires_at, group_id, tenant_id,
                       tpm_tokens, worker_id)
    VALUES (p_hold, p_agent, p_run, hold_microcents, p_provider, p_model, p_input_tokens,
            max_tokens, p_now, p_now + make_interval(secs => p_ttl_s), lk.group_id,
            CASE WHEN t.monthly_ceiling_microcents IS NOT NULL THEN p_tenant END, tokens,
            p_worker);
    UPDATE budgets
       SET held_microcents = budgets.held_microcents + hold_microcents,
           hold_count = budgets.hold_count + 1,
           locked_run_id = CASE WHEN budgets.concurrency = 'exclusive' THEN p_run
                                ELSE budgets.locked_run_id END,
           rpm_tat = CASE WHEN b.rpm_limit IS NOT NULL
                          THEN rpm_start + make_interval(secs => 60.0 / b.rpm_limit) END,
           tpm_tat = CASE WHEN b.tpm_limit IS NOT NULL
                          THEN tpm_start + make_interval(secs => tokens * 60.0 / b.tpm_limit)
                     END,
           updated_at = p_now
     WHERE agent_id = p_agent;
    IF lk.group_id IS NOT NULL THEN
        UPDATE budget_groups
           SET held_microcents = held_microcents + hold_microcents,
               hold_count = hold_count + 1, updated_at = p_now
         WHERE id = lk.group_id;
    END IF;
    IF t.monthly_ceiling_microcents IS NOT NULL THEN
        UPDATE tenants SET month_held_microcents = month_held_microcents + hold_microcents
         WHERE id = p_tenant;
    END IF;
    available_microcents := room - hold_microcents;
    status := 'ok';
END $$;
"""

# Caller holds the locks. budget.exhausted once per period of the budget that said no.
NOTE_EXHAUSTED = """
CREATE FUNCTION sg_note_exhausted(p_tenant uuid, p_agent uuid, p_group uuid, p_which text,
                                  p_now timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    lim bigint;
BEGIN
    IF p_which = 'agent' THEN
        UPDATE budgets SET exhausted_notified = true
         WHERE agent_id = p_agent AND NOT exhausted_notified
        RETURNING hard_limit_microcents INTO lim;
    ELSIF p_which = 'group' THEN
        UPDATE budget_groups SET exhausted_notified = true
         WHERE id = p_group AND NOT exhausted_notified
        RETURNING hard_limit_microcents INTO lim;
    ELSE
        RETURN;  -- the tenant ceiling is the operator's, not the tenant's webhooks' business
    END IF;
    IF lim IS NOT NULL THEN
        PERFORM sg_emit(p_tenant, 'budget.exhausted', jsonb_build_object(
            'scope', p_which, 'agent_id', p_agent, 'group_id', p_group,
            'hard_limit_cents', lim / 1000000), p_now);
    END IF;
END $$;
"""

# ---------------------------------------------------------------- settle

# status: settled | late (hold had expired and was charged) | already_settled | not_found
SETTLE = """
CREATE FUNCTION sg_settle_v2(
    p_agent uuid, p_hold uuid, p_realized_microcents bigint,
    p_input_tokens integer, p_output_tokens integer, p_reason text,
    p_breakdown jsonb, p_request_sha256 text, p_content jsonb, p_now timestamptz,
    OUT status text, OUT charged_microcents bigint, OUT overrun_microcents bigint,
    OUT remaining_microcents bigint, OUT entry_id bigint)
LANGUAGE plpgsql AS $$
DECLARE
    b budgets%ROWTYPE;
    g budget_groups%ROWTYPE;
    t tenants%ROWTYPE;
    h holds%ROWTYPE;
    prior ledger_entries%ROWTYPE;
    lk record;
    room bigint;
    tenant uuid;
    used integer;
BEGIN
    PERFORM set_config('synchronous_commit', 'on', true);
    p_now := coalesce(p_now, now());
    SELECT * INTO lk FROM sg_lock_agent(p_agent, p_now);
    IF lk.tenant_locked IS NULL THEN
        status := 'not_found';
        RETURN;
    END IF;
    SELECT * INTO b FROM budgets WHERE agent_id = p_agent;
    DELETE FROM holds WHERE id = p_hold AND agent_id = p_agent RETURNING * INTO h;
    IF FOUND THEN
        -- Never more than this hold plus money nobody else has reserved, in every budget
        -- the hold was placed in.
        room := b.remaining_microcents - b.held_microcents;
        IF h.group_id IS NOT NULL THEN
            SELECT * INTO g FROM budget_groups WHERE id = h.group_id;
            room := LEAST(room, g.remaining_microcents - g.held_microcents);
        END IF;
        IF h.tenant_id IS NOT NULL THEN
            SELECT * INTO t FROM tenants WHERE id = h.tenant_id;
            IF t.monthly_ceiling_microcents IS NOT NULL THEN
                room := LEAST(room, GREATEST(t.monthly_ceiling_microcents
                    - t.month_spent_microcents - t.month_held_microcents, 0));
            END IF;
        END IF;
        charged_microcents := LEAST(p_realized_microcents, h.amount_microcents + room);
        overrun_microcents := p_realized_microcents - charged_microcents;
        used := coalesce(p_input_tokens, 0) + coalesce(p_output_tokens, 0);
        UPDATE budgets
           SET remaining_microcents = budgets.remaining_microcents - charged_microcents,
               held_microcents = budgets.held_microcents - h.amount_microcents,
               hold_count = budgets.hold_count - 1,
               period_spent_microcents = budgets.period_spent_microcents + charged_microcents,
               locked_run_id = CASE WHEN budgets.hold_count = 1 THEN NULL
                                    ELSE budgets.locked_run_id END,
               -- Give back (or take) the difference between the reserved and used tokens.
               tpm_tat = CASE WHEN h.tpm_tokens IS NOT NULL AND budgets.tpm_limit IS NOT NULL
                              THEN budgets.tpm_tat - make_interval(
                                  secs => (h.tpm_tokens - used) * 60.0 / budgets.tpm_limit)
                              ELSE budgets.tpm_tat END,
               updated_at = p_now
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
        h.group_id := prior.group_id;
        h.amount_microcents := -prior.delta_microcents;
        charged_microcents := 0;
        overrun_microcents := GREATEST(p_realized_microcents - h.amount_microcents, 0);
        remaining_microcents := b.remaining_microcents;
        status := 'late';
    END IF;
    INSERT INTO ledger_entries (agent_id, kind, delta_microcents, balance_after_microcents, run_id,
                                hold_id, provider, model, input_tokens, output_tokens,
                                wcec_microcents, realized_microcents, overrun_microcents,
                                termination_reason, billing_breakdown, request_sha256, content,
                                group_id, created_at)
    VALUES (p_agent, 'charge', -charged_microcents, remaining_microcents, h.run_id, p_hold,
            h.provider, h.model, p_input_tokens, p_output_tokens, h.amount_microcents,
            p_realized_microcents, overrun_microcents, p_reason, p_breakdown, p_request_sha256,
            p_content, h.group_id, p_now)
    RETURNING id INTO entry_id;
    IF h.group_id IS NOT NULL THEN
        UPDATE budget_groups
           SET remaining_microcents = budget_groups.remaining_microcents - charged_microcents,
               held_microcents = budget_groups.held_microcents
                   - CASE WHEN status = 'settled' THEN h.amount_microcents ELSE 0 END,
               hold_count = hold_count - CASE WHEN status = 'settled' THEN 1 ELSE 0 END,
               period_spent_microcents = period_spent_microcents + charged_microcents,
               updated_at = p_now
         WHERE id = h.group_id
        RETURNING * INTO g;
        INSERT INTO group_ledger_entries (group_id, kind, delta_microcents,
                                          balance_after_microcents, agent_id, hold_id,
                                          agent_entry_id, overrun_microcents, created_at)
        VALUES (h.group_id, 'charge', -charged_microcents, g.remaining_microcents, p_agent,
                p_hold, entry_id, overrun_microcents, p_now);
    END IF;
    IF status = 'settled' AND h.tenant_id IS NOT NULL THEN
        UPDATE tenants
           SET month_held_microcents = month_held_microcents - h.amount_microcents,
               month_spent_microcents = month_spent_microcents + charged_microcents
         WHERE id = h.tenant_id;
    END IF;
    -- Events, in this transaction (outbox).
    IF b.alert_thresholds_pct IS NULL AND g.alert_thresholds_pct IS NULL
       AND overrun_microcents = 0 AND p_reason IS DISTINCT FROM 'budget_cutoff' THEN
        RETURN;
    END IF;
    SELECT a.tenant_id INTO tenant FROM agents a WHERE a.id = p_agent;
    PERFORM sg_alert_thresholds(tenant, p_agent, h.group_id, charged_microcents, p_now);
    IF p_reason = 'budget_cutoff' THEN
        PERFORM sg_emit(tenant, 'call.cutoff', jsonb_build_object(
            'agent_id', p_agent, 'group_id', h.group_id, 'hold_id', p_hold,
            'run_id', h.run_id, 'model', h.model, 'output_tokens', p_output_tokens,
            'charged_microcents', charged_microcents), p_now);
    END IF;
    IF overrun_microcents > 0 THEN
        PERFORM sg_emit(tenant, 'call.overrun', jsonb_build_object(
            'agent_id', p_agent, 'group_id', h.group_id, 'hold_id', p_hold,
            'run_id', h.run_id, 'model', h.model, 'charged_microcents', charged_microcents,
            'overrun_microcents', overrun_microcents), p_now);
    END IF;
END $$;
"""

# ---------------------------------------------------------------- batches

# Tenant and group locks of the whole batch first, sorted; then budget rows in agent order.
RESERVE_MANY = """
CREATE FUNCTION sg_reserve_many_v2(
    p_agents uuid[], p_tenants uuid[], p_runs uuid[], p_holds uuid[],
    p_fixed bigint[], p_rate_num bigint[], p_rate_den bigint[],
    p_max_tokens integer[], p_min_tokens integer[], p_ttl_s integer,
    p_providers text[], p_models text[], p_input_tokens integer[],
    p_now timestamptz, p_worker text)
RETURNS TABLE (idx integer, status text, max_tokens integer, hold_microcents bigint,
               remaining_microcents bigint, available_microcents bigint, locked_run_id uuid,
               limited_by text, retry_after_s integer)
LANGUAGE plpgsql AS $$
DECLARE
    i integer;
    r record;
BEGIN
    PERFORM sg_lock_batch(p_agents, coalesce(p_now, now()));
    FOR i IN SELECT s.i FROM generate_subscripts(p_agents, 1) AS s(i)
              ORDER BY p_agents[s.i], s.i LOOP
        SELECT * INTO r FROM sg_reserve_v2(
            p_agents[i], p_tenants[i], p_runs[i], p_holds[i], p_fixed[i], p_rate_num[i],
            p_rate_den[i], p_max_tokens[i], p_min_tokens[i], p_ttl_s, p_providers[i],
            p_models[i], p_input_tokens[i], p_now, p_worker);
        idx := i;
        status := r.status;
        max_tokens := r.max_tokens;
        hold_microcents := r.hold_microcents;
        remaining_microcents := r.remaining_microcents;
        available_microcents := r.available_microcents;
        locked_run_id := r.locked_run_id;
        limited_by := r.limited_by;
        retry_after_s := r.retry_after_s;
        RETURN NEXT;
    END LOOP;
END $$;
"""

LOCK_BATCH = """
CREATE FUNCTION sg_lock_batch(p_agents uuid[], p_now timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    tenant uuid;
BEGIN
    FOR tenant IN SELECT t.id FROM tenants t
                   WHERE t.id IN (SELECT a.tenant_id FROM agents a WHERE a.id = ANY(p_agents))
                     AND (t.monthly_ceiling_microcents IS NOT NULL
                          OR t.month_held_microcents > 0)
                   ORDER BY t.id FOR NO KEY UPDATE LOOP
        PERFORM sg_roll_tenant(tenant, p_now);
    END LOOP;
    PERFORM 1 FROM budget_groups g
     WHERE g.id IN (SELECT bu.group_id FROM budgets bu WHERE bu.agent_id = ANY(p_agents))
     ORDER BY g.id FOR NO KEY UPDATE;
END $$;
"""

SETTLE_MANY = """
CREATE FUNCTION sg_settle_many_v2(
    p_agents uuid[], p_holds uuid[], p_realized bigint[], p_input_tokens integer[],
    p_output_tokens integer[], p_reasons text[], p_breakdowns jsonb[],
    p_request_sha256 text[], p_contents jsonb[], p_now timestamptz)
RETURNS TABLE (idx integer, status text, charged_microcents bigint,
               overrun_microcents bigint, remaining_microcents bigint, entry_id bigint)
LANGUAGE plpgsql AS $$
DECLARE
    i integer;
    r record;
BEGIN
    PERFORM sg_lock_batch(p_agents, coalesce(p_now, now()));
    FOR i IN SELECT s.i FROM generate_subscripts(p_agents, 1) AS s(i)
              ORDER BY p_agents[s.i], s.i LOOP
        SELECT * INTO r FROM sg_settle_v2(
            p_agents[i], p_holds[i], p_realized[i], p_input_tokens[i], p_output_tokens[i],
            p_reasons[i], p_breakdowns[i], p_request_sha256[i], p_contents[i], p_now);
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

# ---------------------------------------------------------------- the old signatures

# What replicas of the previous release call: the same arguments and results, new rules.
OLD_SIGNATURES = r"""
CREATE OR REPLACE FUNCTION sg_expire_holds(p_agent uuid) RETURNS integer
LANGUAGE sql AS $$ SELECT sg_expire_holds_v2(p_agent, now()) $$;

CREATE OR REPLACE FUNCTION sg_sweep_agent(p_agent uuid) RETURNS integer
LANGUAGE sql AS $$ SELECT sg_sweep_agent_v2(p_agent, now()) $$;

CREATE OR REPLACE FUNCTION sg_reserve(
    p_agent uuid, p_tenant uuid, p_run uuid, p_hold uuid,
    p_fixed_microcents bigint, p_rate_num bigint, p_rate_den bigint,
    p_max_tokens integer, p_min_tokens integer, p_ttl_s integer,
    p_provider text, p_model text, p_input_tokens integer,
    OUT status text, OUT max_tokens integer, OUT hold_microcents bigint,
    OUT remaining_microcents bigint, OUT available_microcents bigint,
    OUT locked_run_id uuid)
LANGUAGE sql AS $$
    SELECT r.status, r.max_tokens, r.hold_microcents, r.remaining_microcents,
           r.available_microcents, r.locked_run_id
      FROM sg_reserve_v2(p_agent, p_tenant, p_run, p_hold, p_fixed_microcents, p_rate_num,
                         p_rate_den, p_max_tokens, p_min_tokens, p_ttl_s, p_provider, p_model,
                         p_input_tokens, now(), NULL) AS r
$$;

CREATE OR REPLACE FUNCTION sg_settle(
    p_agent uuid, p_hold uuid, p_realized_microcents bigint,
    p_input_tokens integer, p_output_tokens integer, p_reason text,
    p_breakdown jsonb, p_request_sha256 text, p_content jsonb,
    OUT status text, OUT charged_microcents bigint, OUT overrun_microcents bigint,
    OUT remaining_microcents bigint, OUT entry_id bigint)
LANGUAGE sql AS $$
    SELECT * FROM sg_settle_v2(p_agent, p_hold, p_realized_microcents, p_input_tokens,
                               p_output_tokens, p_reason, p_breakdown, p_request_sha256,
                               p_content, now())
$$;

CREATE OR REPLACE FUNCTION sg_reserve_many(
    p_agents uuid[], p_tenants uuid[], p_runs uuid[], p_holds uuid[],
    p_fixed bigint[], p_rate_num bigint[], p_rate_den bigint[],
    p_max_tokens integer[], p_min_tokens integer[], p_ttl_s integer,
    p_providers text[], p_models text[], p_input_tokens integer[])
RETURNS TABLE (idx integer, status text, max_tokens integer, hold_microcents bigint,
               remaining_microcents bigint, available_microcents bigint, locked_run_id uuid)
LANGUAGE sql AS $$
    SELECT r.idx, r.status, r.max_tokens, r.hold_microcents, r.remaining_microcents,
           r.available_microcents, r.locked_run_id
      FROM sg_reserve_many_v2(p_agents, p_tenants, p_runs, p_holds, p_fixed, p_rate_num,
                              p_rate_den, p_max_tokens, p_min_tokens, p_ttl_s, p_providers,
                              p_models, p_input_tokens, now(), NULL) AS r
$$;

CREATE OR REPLACE FUNCTION sg_settle_many(
    p_agents uuid[], p_holds uuid[], p_realized bigint[], p_input_tokens integer[],
    p_output_tokens integer[], p_reasons text[], p_breakdowns jsonb[],
    p_request_sha256 text[], p_contents jsonb[])
RETURNS TABLE (idx integer, status text, charged_microcents bigint,
               overrun_microcents bigint, remaining_microcents bigint, entry_id bigint)
LANGUAGE sql AS $$
    SELECT * FROM sg_settle_many_v2(p_agents, p_holds, p_realized, p_input_tokens,
                                    p_output_tokens, p_reasons, p_breakdowns, p_request_sha256,
                                    p_contents, now())
$$;
"""

# Dropped by name (each is the only function of its name), callers before callees.
NEW_FUNCTIONS = (
    "sg_settle_many_v2", "sg_reserve_many_v2", "sg_lock_batch", "sg_settle_v2", "sg_reserve_v2",
    "sg_note_exhausted", "sg_sweep_agent_v2", "sg_expire_holds_v2", "sg_alert_thresholds",
    "sg_lock_agent",
    "sg_roll_tenant", "sg_roll_group", "sg_roll_budget", "sg_emit", "sg_crossed",
    "sg_model_allowed", "sg_period_end",
)


def _module(name: str):
    return importlib.import_module(f"spendguard_proxy.migrations.versions.{name}")


def _create_tables() -> None:
    op.add_column("tenants", sa.Column("monthly_ceiling_microcents", sa.BigInteger()))
    op.add_column("tenants", sa.Column("month_starts_at", TS))
    for name in ("month_spent_microcents", "month_held_microcents"):
        op.add_column("tenants", sa.Column(name, sa.BigInteger(), server_default="0",
                                           nullable=False))
    op.create_check_constraint(op.f("ck_tenants_ceiling_positive"), "tenants",
                               "monthly_ceiling_microcents > 0")
    op.create_check_constraint(op.f("ck_tenants_month_non_negative"), "tenants",
                               "month_spent_microcents >= 0 AND month_held_microcents >= 0")

    op.create_table(
        "budget_groups",
        sa.Column("id", UUID, nullable=False),
        sa.Column("tenant_id", UUID, nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("hard_limit_microcents", sa.BigInteger(), nullable=False),
        sa.Column("remaining_microcents", sa.BigInteger(), nullable=False),
        sa.Column("held_microcents", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("hold_count", sa.Integer(), server_default="0", nullable=False),
        *_period_columns(),
        sa.Column("created_at", TS, server_default=NOW, nullable=False),
        sa.Column("updated_at", TS, server_default=NOW, nullable=False),
        sa.Column("deleted_at", TS, nullable=True),
        sa.CheckConstraint(PERIOD_CHECK, name=op.f("ck_budget_groups_period_kind")),
        sa.CheckConstraint("hard_limit_microcents > 0",
                           name=op.f("ck_budget_groups_limit_positive")),
        sa.CheckConstraint("remaining_microcents >= 0",
                           name=op.f("ck_budget_groups_remaining_non_negative")),
        sa.CheckConstraint("held_microcents >= 0 AND hold_count >= 0",
                           name=op.f("ck_budget_groups_holds_non_negative")),
        sa.CheckConstraint("held_microcents <= remaining_microcents",
                           name=op.f("ck_budget_groups_holds_within_remaining")),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"],
                                name=op.f("fk_budget_groups_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_budget_groups")),
    )
    op.create_index("ix_budget_groups_tenant", "budget_groups", ["tenant_id", "created_at"])

    op.add_column("budgets", sa.Column("group_id", UUID))
    op.create_foreign_key(op.f("fk_budgets_group_id_budget_groups"), "budgets",
                          "budget_groups", ["group_id"], ["id"])
    for column in _period_columns():
        op.add_column("budgets", column)
    for name in ("rpm_limit", "tpm_limit"):
        op.add_column("budgets", sa.Column(name, sa.Integer()))
    for name in ("rpm_tat", "tpm_tat"):
        op.add_column("budgets", sa.Column(name, TS))
    op.add_column("budgets", sa.Column("allowed_models", postgresql.ARRAY(sa.Text())))
    op.create_check_constraint(op.f("ck_budgets_period_kind"), "budgets", PERIOD_CHECK)
    op.create_check_constraint(op.f("ck_budgets_rate_limits_positive"), "budgets",
                               "rpm_limit > 0 AND tpm_limit > 0")

    op.add_column("holds", sa.Column("group_id", UUID))
    op.add_column("holds", sa.Column("tenant_id", UUID))
    op.add_column("holds", sa.Column("tpm_tokens", sa.Integer()))
    op.add_column("holds", sa.Column("worker_id", sa.Text()))
    op.create_index("ix_holds_worker", "holds", ["worker_id"])

    op.add_column("ledger_entries", sa.Column("group_id", UUID))
    op.drop_constraint(op.f("ck_ledger_entries_kind_known"), "ledger_entries", type_="check")
    op.create_check_constraint(op.f("ck_ledger_entries_kind_known"), "ledger_entries",
                               LEDGER_KINDS)

    op.create_table(
        "group_ledger_entries",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("group_id", UUID, nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("delta_microcents", sa.BigInteger(), nullable=False),
        sa.Column("balance_after_microcents", sa.BigInteger(), nullable=False),
        sa.Column("agent_id", UUID, nullable=True),
        sa.Column("hold_id", UUID, nullable=True),
        sa.Column("agent_entry_id", sa.BigInteger(), nullable=True),
        sa.Column("overrun_microcents", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("created_at", TS, server_default=NOW, nullable=False),
        sa.CheckConstraint(LEDGER_KINDS, name=op.f("ck_group_ledger_entries_kind_known")),
        sa.CheckConstraint("balance_after_microcents >= 0",
                           name=op.f("ck_group_ledger_entries_balance_non_negative")),
        sa.CheckConstraint("overrun_microcents >= 0",
                           name=op.f("ck_group_ledger_entries_overrun_non_negative")),
        sa.ForeignKeyConstraint(["group_id"], ["budget_groups.id"],
                                name=op.f("fk_group_ledger_entries_group_id_budget_groups")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_group_ledger_entries")),
    )
    op.create_index("ix_group_ledger_group_id", "group_ledger_entries", ["group_id", "id"])

    op.create_table(
        "webhooks",
        sa.Column("id", UUID, nullable=False),
        sa.Column("tenant_id", UUID, nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("events", postgresql.ARRAY(sa.Text()), nullable=True),
        sa.Column("secret_ciphertext", postgresql.BYTEA(), nullable=False),
        sa.Column("created_at", TS, server_default=NOW, nullable=False),
        sa.Column("deleted_at", TS, nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"],
                                name=op.f("fk_webhooks_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhooks")),
    )
    op.create_index("ix_webhooks_tenant", "webhooks", ["tenant_id"])
    op.create_table(
        "webhook_events",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("tenant_id", UUID, nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("data", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", TS, server_default=NOW, nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"],
                                name=op.f("fk_webhook_events_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_events")),
    )
    op.create_index("ix_webhook_events_tenant", "webhook_events", ["tenant_id", "created_at"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("webhook_id", UUID, nullable=False),
        sa.Column("state", sa.Text(), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", TS, server_default=NOW, nullable=False),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_at", TS, nullable=True),
        sa.Column("created_at", TS, server_default=NOW, nullable=False),
        sa.CheckConstraint("state IN ('pending', 'delivered', 'failed')",
                           name=op.f("ck_webhook_deliveries_state_known")),
        sa.ForeignKeyConstraint(["event_id"], ["webhook_events.id"],
                                name=op.f("fk_webhook_deliveries_event_id_webhook_events")),
        sa.ForeignKeyConstraint(["webhook_id"], ["webhooks.id"],
                                name=op.f("fk_webhook_deliveries_webhook_id_webhooks")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
    )
    op.create_index("ix_webhook_deliveries_due", "webhook_deliveries", ["next_attempt_at"],
                    postgresql_where=sa.text("state = 'pending'"))
    op.create_index("ix_webhook_deliveries_webhook", "webhook_deliveries", ["webhook_id", "id"])
    op.create_table(
        "webhook_attempts",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("delivery_id", sa.BigInteger(), nullable=False),
        sa.Column("attempted_at", TS, server_default=NOW, nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["delivery_id"], ["webhook_deliveries.id"],
                                name=op.f("fk_webhook_attempts_delivery_id_webhook_deliveries")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_attempts")),
    )
    op.create_index("ix_webhook_attempts_delivery", "webhook_attempts", ["delivery_id", "id"])

    op.create_table(
        "console_sessions",
        sa.Column("id_digest", postgresql.BYTEA(), nullable=False),
        sa.Column("tenant_id", UUID, nullable=False),
        sa.Column("key_id", UUID, nullable=True),
        sa.Column("csrf_token", sa.Text(), nullable=False),
        sa.Column("created_at", TS, server_default=NOW, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("ended_at", TS, nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"],
                                name=op.f("fk_console_sessions_tenant_id_tenants")),
        sa.ForeignKeyConstraint(["key_id"], ["api_keys.id"],
                                name=op.f("fk_console_sessions_key_id_api_keys")),
        sa.PrimaryKeyConstraint("id_digest", name=op.f("pk_console_sessions")),
    )


def _statements(block: str) -> list[str]:
    """One CREATE per statement: the driver runs each as a prepared statement."""
    return [s for s in re.split(r"\n(?=(?:--[^\n]*\n)*CREATE )", block) if s.strip()]


def upgrade() -> None:
    _create_tables()
    for block in (HELPERS, NOTE_EXHAUSTED, RESERVE, SETTLE, LOCK_BATCH, RESERVE_MANY,
                  SETTLE_MANY, OLD_SIGNATURES):
        for statement in _statements(block):
            op.execute(statement)


def downgrade() -> None:
    # The previous bodies of the old signatures (0005's durable versions, 0003's batches).
    v3, v5 = _module("0003_batched_ledger"), _module("0005_durable_commits")
    for signature in v3.MANY_SIGNATURES:
        op.execute(f"DROP FUNCTION {signature}")
    op.execute(v3.RESERVE_MANY)
    op.execute(v3.SETTLE_MANY)
    for body in v5._bodies():
        op.execute(v5._durable(body))
    for name in NEW_FUNCTIONS:
        op.execute(f"DROP FUNCTION {name}")
    op.execute("DELETE FROM ledger_entries WHERE kind = 'period_reset'")
    for table in ("console_sessions", "webhook_attempts", "webhook_deliveries",
                  "webhook_events", "webhooks", "group_ledger_entries"):
        op.drop_table(table)
    op.drop_constraint(op.f("ck_ledger_entries_kind_known"), "ledger_entries", type_="check")
    op.create_check_constraint(op.f("ck_ledger_entries_kind_known"), "ledger_entries",
                               OLD_LEDGER_KINDS)
    op.drop_column("ledger_entries", "group_id")
    op.drop_index("ix_holds_worker", table_name="holds")
    for name in ("group_id", "tenant_id", "tpm_tokens", "worker_id"):
        op.drop_column("holds", name)
    op.drop_constraint(op.f("ck_budgets_period_kind"), "budgets", type_="check")
    op.drop_constraint(op.f("ck_budgets_rate_limits_positive"), "budgets", type_="check")
    op.drop_constraint(op.f("fk_budgets_group_id_budget_groups"), "budgets", type_="foreignkey")
    for name in ("group_id", "period", "period_resets_at", "period_spent_microcents",
                 "alert_thresholds_pct", "exhausted_notified", "rpm_limit", "tpm_limit",
                 "rpm_tat", "tpm_tat", "allowed_models"):
        op.drop_column("budgets", name)
    op.drop_table("budget_groups")
    op.drop_constraint(op.f("ck_tenants_ceiling_positive"), "tenants", type_="check")
    op.drop_constraint(op.f("ck_tenants_month_non_negative"), "tenants", type_="check")
    for name in ("monthly_ceiling_microcents", "month_starts_at", "month_spent_microcents",
                 "month_held_microcents"):
        op.drop_column("tenants", name)

