"""The only code that changes money.

Every balance change is one transaction holding ``SELECT … FOR UPDATE`` on the agent's budget
row and appends a ledger row with its delta and the balance after it. Reserve, settle and
expiry run as single-statement database functions (migrations/versions/0002) so the row lock
lasts one server-side step; the rules are documented there and on each function here.

Every write here commits durably (``synchronous_commit`` on: a hold lost in a crash would let a
billed call go uncounted) whatever the server's, database's or role's default, and leaves no
session state behind, so it works unchanged through a transaction-pooling PgBouncer: the
database functions ``SET LOCAL`` it inside their own transaction (migration 0005), the other
writes run in ``durable_transaction``.

Amounts are integer microcents (1 cent = 1,000,000 µ¢); cents appear only at the API edge.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any

import asyncpg

from spendguard_proxy.errors import (
    BudgetLocked,
    InsufficientBudget,
    ModelNotAllowed,
    NotFound,
    RateLimited,
    format_cents,
)

MICROCENTS_PER_CENT = 1_000_000
LOCAL_TENANT_ID = uuid.UUID(int=0)

Db = asyncpg.Pool | asyncpg.Connection


def to_cents_floor(microcents: int) -> int:
    return microcents // MICROCENTS_PER_CENT


def to_cents_ceil(microcents: int) -> int:
    return -(-microcents // MICROCENTS_PER_CENT)


def iso_time(ts: datetime | None) -> str | None:
    return ts.isoformat().replace("+00:00", "Z") if ts is not None else None


DURABLE_SQL = "SET LOCAL synchronous_commit = on"


@contextlib.asynccontextmanager
async def durable_transaction(db: Db) -> AsyncIterator[asyncpg.Connection]:
    """A transaction whose COMMIT waits for the WAL flush. ``SET LOCAL``, not a connection
    setting: it ends with the transaction, and a pooler cannot drop it (on a connection
    already in a transaction this is a savepoint, and the setting still reaches its COMMIT)."""
    async with contextlib.AsyncExitStack() as stack:
        conn = await stack.enter_async_context(db.acquire()) if isinstance(db, asyncpg.Pool) else db
        await stack.enter_async_context(conn.transaction())
        await conn.execute(DURABLE_SQL)
        yield conn


# ---------------------------------------------------------------- agents


def _agent_json(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "agent_id": str(row["id"]),
        "name": row["name"],
        "created_at": iso_time(row["created_at"]),
    }


def _agent_not_found(agent_id: uuid.UUID) -> NotFound:
    return NotFound(f"Agent not found: {agent_id}")


async def create_agent(db: Db, tenant_id: uuid.UUID, name: str | None) -> dict[str, Any]:
    async with durable_transaction(db) as conn:
        row = await conn.fetchrow(
            "INSERT INTO agents (id, tenant_id, name) VALUES ($1, $2, $3)"
            " RETURNING id, name, created_at",
            uuid.uuid4(),
            tenant_id,
            name,
        )
    return _agent_json(row)


async def list_agents(db: Db, tenant_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT id, name, created_at FROM agents WHERE tenant_id = $1 AND deleted_at IS NULL"
        " ORDER BY created_at, id",
        tenant_id,
    )
    return [_agent_json(r) for r in rows]


async def get_agent(db: Db, tenant_id: uuid.UUID, agent_id: uuid.UUID) -> dict[str, Any]:
    row = await db.fetchrow(
        "SELECT id, name, created_at FROM agents"
        " WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL",
        agent_id,
        tenant_id,
    )
    if row is None:
        raise _agent_not_found(agent_id)
    return _agent_json(row)


async def rename_agent(
    db: Db, tenant_id: uuid.UUID, agent_id: uuid.UUID, name: str
) -> dict[str, Any]:
    async with durable_transaction(db) as conn:
        row = await conn.fetchrow(
            "UPDATE agents SET name = $3 WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL"
            " RETURNING id, name, created_at",
            agent_id,
            tenant_id,
            name,
        )
    if row is None:
        raise _agent_not_found(agent_id)
    return _agent_json(row)


async def delete_agent(db: Db, tenant_id: uuid.UUID, agent_id: uuid.UUID) -> dict[str, Any]:
    """Hide the agent; its budget and ledger stay for audit, and calls in flight still settle."""
    async with durable_transaction(db) as conn:
        row = await conn.fetchrow(
            "UPDATE agents SET deleted_at = now()"
            " WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL RETURNING id",
            agent_id,
            tenant_id,
        )
    if row is None:
        raise _agent_not_found(agent_id)
    return {"agent_id": str(agent_id), "deleted": True}


async def create_run(db: Db, tenant_id: uuid.UUID, agent_id: uuid.UUID) -> dict[str, Any]:
    async with durable_transaction(db) as conn:
        run_id = await conn.fetchval(
            "INSERT INTO runs (id, agent_id) SELECT $1, id FROM agents"
            " WHERE id = $2 AND tenant_id = $3 AND deleted_at IS NULL RETURNING id",
            uuid.uuid4(),
            agent_id,
            tenant_id,
        )
    if run_id is None:
        raise _agent_not_found(agent_id)
    return {"run_id": str(run_id)}


# ---------------------------------------------------------------- budgets

_BUDGET_SQL = """
SELECT b.agent_id, b.hard_limit_microcents, b.remaining_microcents, b.held_microcents,
       b.concurrency, b.locked_run_id, b.group_id, b.period, b.period_resets_at,
       b.period_spent_microcents, b.rpm_limit, b.tpm_limit, b.allowed_models,
       b.alert_thresholds_pct,
       (SELECT max(expires_at) FROM holds h WHERE h.agent_id = b.agent_id) AS locked_expires_at
  FROM budgets b JOIN agents a ON a.id = b.agent_id
 WHERE b.agent_id = $1 AND a.tenant_id = $2 AND a.deleted_at IS NULL
"""


def _budget_json(row: asyncpg.Record) -> dict[str, Any]:
    remaining = row["remaining_microcents"]
    held = row["held_microcents"]
    return {
        "agent_id": str(row["agent_id"]),
        "hard_limit_cents": to_cents_floor(row["hard_limit_microcents"]),
        "remaining_cents": to_cents_floor(remaining),
        "remaining_microcents": remaining,
        "available_cents": to_cents_floor(remaining - held),
        "concurrency": row["concurrency"],
        "locked_run_id": str(row["locked_run_id"]) if row["locked_run_id"] else None,
        "locked_cents": to_cents_ceil(held),
        "locked_expires_at": iso_time(row["locked_expires_at"]),
        **policy_json(row),
        "rpm_limit": row["rpm_limit"],
        "tpm_limit": row["tpm_limit"],
        "allowed_models": row["allowed_models"],
        "group_id": str(row["group_id"]) if row["group_id"] else None,
    }


def policy_json(row: asyncpg.Record) -> dict[str, Any]:
    """The period and alert fields agent budgets and groups share."""
    return {
        "period": row["period"],
        "period_resets_at": iso_time(row["period_resets_at"]),
        "period_spent_cents": to_cents_ceil(row["period_spent_microcents"]),
        "period_spent_microcents": row["period_spent_microcents"],
        "alert_thresholds_pct": row["alert_thresholds_pct"],
    }


def period_overdue(row: asyncpg.Record, now: datetime | None) -> bool:
    resets_at = row["period_resets_at"]
    return resets_at is not None and resets_at <= (now or datetime.now(UTC))


async def get_budget(
    db: Db, tenant_id: uuid.UUID, agent_id: uuid.UUID, *, now: datetime | None = None
) -> dict[str, Any]:
    row = await db.fetchrow(_BUDGET_SQL, agent_id, tenant_id)
    if row is not None and period_overdue(row, now):
        # A read starts the new period too (the sweeper's function: locks, rolls, expires).
        await db.fetchval(SWEEP_AGENT_SQL, agent_id, now)
        row = await db.fetchrow(_BUDGET_SQL, agent_id, tenant_id)
    if row is None:
        await get_agent(db, tenant_id, agent_id)  # 404 for a missing agent comes first
        raise NotFound(
            f"No budget set for agent {agent_id}; set one with"
            f" POST /v1/agents/{agent_id}/budget or `spendguard budget set`"
        )
    return _budget_json(row)


POLICY_FIELDS = (
    "period", "rpm_limit", "tpm_limit", "allowed_models", "alert_thresholds_pct", "group_id",
)


async def set_budget(
    db: Db,
    tenant_id: uuid.UUID,
    agent_id: uuid.UUID,
    *,
    hard_limit_cents: int,
    topup_cents: int | None = None,
    concurrency: str | None = None,
    policy: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Create or change a budget (reference rules, DESIGN §3) and its policies (§11).

    New budget: remaining = min(limit, topup or limit). Existing: remaining becomes
    min(remaining + topup, limit) but never less than the live holds, so a limit change
    cannot take back money already promised to calls in flight. ``policy`` holds the
    POLICY_FIELDS to change; a None value clears one. Moving an agent between groups while it
    has calls in flight is a BudgetLocked (409): their holds are in the old group.
    """
    policy = policy or {}
    limit = hard_limit_cents * MICROCENTS_PER_CENT
    topup = (topup_cents or 0) * MICROCENTS_PER_CENT
    async with durable_transaction(db) as conn:
        now = now or await conn.fetchval("SELECT now()")
        # NO KEY UPDATE serialises budget changes per agent yet leaves the agent row open to
        # the KEY SHARE locks that foreign-key checks of concurrent reserves and settles take
        # (plain FOR UPDATE here deadlocks against them: agents->budgets vs budgets->agents).
        agent = await conn.fetchval(
            "SELECT id FROM agents WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL"
            " FOR NO KEY UPDATE",
            agent_id,
            tenant_id,
        )
        if agent is None:
            raise _agent_not_found(agent_id)
        old_group = await conn.fetchval(
            "SELECT group_id FROM budgets WHERE agent_id = $1", agent_id
        )
        new_group = policy.get("group_id", old_group)
        await _lock_for_budget_change(conn, tenant_id, {old_group, new_group} - {None}, now)
        if new_group is not None and new_group != old_group:
            await _require_group(conn, tenant_id, new_group)
        row = await conn.fetchrow(
            "SELECT * FROM budgets WHERE agent_id = $1 FOR UPDATE", agent_id
        )
        if row is None:
            start = min(limit, topup or limit)
            await conn.execute(
                "INSERT INTO budgets (agent_id, hard_limit_microcents, remaining_microcents,"
                " concurrency, updated_at) VALUES ($1, $2, $3, $4, $5)",
                agent_id,
                limit,
                start,
                concurrency or "exclusive",
                now,
            )
            await _append(conn, agent_id, "topup", start, start, now)
        else:
            await conn.execute("SELECT sg_roll_budget($1, $2)", agent_id, now)
            if row["hold_count"]:
                await conn.fetchval("SELECT sg_expire_holds_v2($1, $2)", agent_id, now)
            row = await conn.fetchrow("SELECT * FROM budgets WHERE agent_id = $1", agent_id)
            if new_group != old_group and row["hold_count"]:
                raise BudgetLocked(
                    f"Agent {agent_id} has {row['hold_count']} call(s) in flight holding money"
                    " in its group; change its group once they have settled"
                )
            old = row["remaining_microcents"]
            new = max(min(old + topup, limit), row["held_microcents"])
            await conn.execute(
                "UPDATE budgets SET hard_limit_microcents = $2, remaining_microcents = $3,"
                " concurrency = COALESCE($4, concurrency), updated_at = $5,"
                " exhausted_notified = exhausted_notified AND $3 <= remaining_microcents"
                " WHERE agent_id = $1",
                agent_id,
                limit,
                new,
                concurrency,
                now,
            )
            if new != old or limit != row["hard_limit_microcents"]:
                kind = "topup" if new > old else "limit_change"
                await _append(conn, agent_id, kind, new - old, new, now)
        if policy:
            await _apply_policy(conn, agent_id, policy, now)
        return _budget_json(await conn.fetchrow(_BUDGET_SQL, agent_id, tenant_id))


async def _lock_for_budget_change(
    conn: asyncpg.Connection, tenant_id: uuid.UUID, groups: set[uuid.UUID], now: datetime
) -> None:
    """The money paths' lock order, before the budget row: the tenant row (expiring a hold
    may count against its ceiling), then the groups by id, each rolled into its period."""
    await conn.execute(
        "SELECT sg_roll_tenant(id, $2) FROM tenants WHERE id = $1"
        " AND (monthly_ceiling_microcents IS NOT NULL OR month_held_microcents > 0)"
        " FOR NO KEY UPDATE",
        tenant_id,
        now,
    )
    for group_id in sorted(groups):
        await conn.execute(
            "SELECT sg_roll_group(id, $2) FROM budget_groups WHERE id = $1 FOR NO KEY UPDATE",
            group_id,
            now,
        )


async def _require_group(conn: asyncpg.Connection, tenant_id: uuid.UUID, group_id) -> None:
    found = await conn.fetchval(
        "SELECT 1 FROM budget_groups WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL",
        group_id,
        tenant_id,
    )
    if found is None:
        raise NotFound(f"Group not found: {group_id}")


async def _apply_policy(
    conn: asyncpg.Connection, agent_id: uuid.UUID, policy: dict[str, Any], now: datetime
) -> None:
    """Set the given POLICY_FIELDS (None clears). A new period starts now; a changed rate
    limit starts from an empty window."""
    unknown = set(policy) - set(POLICY_FIELDS)
    assert not unknown, f"not policy fields: {unknown}"
    sets, args = [], [agent_id, now]
    for field, value in policy.items():
        args.append(value or "none" if field == "period" else value)
        n = f"${len(args)}"
        if field == "period":
            sets.append(f"period_resets_at = CASE WHEN period = {n} THEN period_resets_at"
                        f" ELSE sg_period_end({n}, $2) END")
        elif field in ("rpm_limit", "tpm_limit"):
            tat = f"{field[:3]}_tat"
            sets.append(f"{tat} = CASE WHEN {field} = {n} THEN {tat} END")
        sets.append(f"{field} = {n}")
    await conn.execute(
        f"UPDATE budgets SET {', '.join(sets)}, updated_at = $2 WHERE agent_id = $1", *args
    )


async def _append(
    conn: asyncpg.Connection,
    agent_id: uuid.UUID,
    kind: str,
    delta: int,
    balance: int,
    now: datetime,
) -> None:
    await conn.execute(
        "INSERT INTO ledger_entries (agent_id, kind, delta_microcents, balance_after_microcents,"
        " created_at) VALUES ($1, $2, $3, $4, $5)",
        agent_id,
        kind,
        delta,
        balance,
        now,
    )


# ---------------------------------------------------------------- usage

_USAGE_COLUMNS = (
    "id, kind, delta_microcents, balance_after_microcents, run_id, provider, model,"
    " input_tokens, output_tokens, wcec_microcents, realized_microcents, overrun_microcents,"
    " termination_reason, billing_breakdown, created_at"
)


async def list_usage(
    db: Db, tenant_id: uuid.UUID, agent_id: uuid.UUID, *, limit: int, before: int | None
) -> dict[str, Any]:
    """Ledger rows, newest first; ``next_before`` pages further back (null at the end)."""
    await get_agent(db, tenant_id, agent_id)
    rows = await db.fetch(
        f"SELECT {_USAGE_COLUMNS} FROM ledger_entries"
        " WHERE agent_id = $1 AND ($2::bigint IS NULL OR id < $2) ORDER BY id DESC LIMIT $3",
        agent_id,
        before,
        limit,
    )
    entries = []
    for row in rows:
        entry = dict(row)
        entry["run_id"] = str(row["run_id"]) if row["run_id"] else None
        entry["created_at"] = iso_time(row["created_at"])
        entries.append(entry)
    next_before = entries[-1]["id"] if len(entries) == limit else None
    return {"agent_id": str(agent_id), "entries": entries, "next_before": next_before}


# ---------------------------------------------------------------- reserve / settle


@dataclass(frozen=True, slots=True)
class ReserveRequest:
    tenant_id: uuid.UUID
    agent_id: uuid.UUID
    run_id: uuid.UUID
    fixed_microcents: int  # worst-case input + fees
    output_rate: Fraction  # worst-case µ¢ per output token
    max_tokens: int  # the most output the call may ask for (client value or model cap)
    min_tokens: int = 1  # fewer affordable tokens than this is a 402
    provider: str | None = None
    model: str | None = None
    input_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class Reservation:
    hold_id: uuid.UUID
    run_id: uuid.UUID
    agent_id: uuid.UUID
    max_tokens: int  # the clamp: what the budget can pay for
    hold_microcents: int
    remaining_microcents: int
    available_microcents: int


RESERVE_SQL = (
    "SELECT * FROM sg_reserve_v2($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15)"
)
RESERVE_ARGS = 13  # the per-call arguments; then the time (NULL: now()) and the worker id


def reserve_args(req: ReserveRequest, hold_id: uuid.UUID, ttl_s: int) -> tuple:
    """sg_reserve_v2's per-call arguments, in order (ledger_batch passes them as columns)."""
    return (
        req.agent_id,
        req.tenant_id,
        req.run_id,
        hold_id,
        req.fixed_microcents,
        req.output_rate.numerator,
        req.output_rate.denominator,
        req.max_tokens,
        req.min_tokens,
        ttl_s,
        req.provider,
        req.model,
        req.input_tokens,
    )


async def reserve(
    db: Db,
    req: ReserveRequest,
    *,
    ttl_s: int,
    now: datetime | None = None,
    worker_id: str | None = None,
) -> Reservation:
    """Hold the worst-case cost of a call, clamping its output to what the agent's budget, its
    group, its tenant's monthly ceiling and its TPM limit allow.

    Raises NotFound (agent unknown to this tenant), InsufficientBudget (402: no budget, or not
    even the input and ``min_tokens`` of output fit the available money), BudgetLocked (409:
    an exclusive budget held by another run), ModelNotAllowed (403), RateLimited (429). The
    hold is committed before this returns.
    """
    hold_id = uuid.uuid4()
    row = await db.fetchrow(RESERVE_SQL, *reserve_args(req, hold_id, ttl_s), now, worker_id)
    return reservation_from_row(req, hold_id, row)


def reservation_from_row(req: ReserveRequest, hold_id: uuid.UUID, row) -> Reservation:
    """A Reservation from an sg_reserve result, or the error its status stands for."""
    status = row["status"]
    if status == "ok":
        return Reservation(
            hold_id=hold_id,
            run_id=req.run_id,
            agent_id=req.agent_id,
            max_tokens=row["max_tokens"],
            hold_microcents=row["hold_microcents"],
            remaining_microcents=row["remaining_microcents"],
            available_microcents=row["available_microcents"],
        )
    if status == "not_found":
        raise _agent_not_found(req.agent_id)
    if status == "no_budget":
        raise InsufficientBudget(
            f"Agent {req.agent_id} has no budget; set one with"
            f" POST /v1/agents/{req.agent_id}/budget or `spendguard budget set`"
        )
    if status == "locked":
        raise BudgetLocked()
    if status == "model_not_allowed":
        raise ModelNotAllowed(
            f"Model {req.model} is not in agent {req.agent_id}'s allowed_models; add a pattern"
            " for it with `spendguard budget set --allow-model` or call an allowed model"
        )
    if status == "rate_limited":
        raise _rate_limited(req, row["limited_by"], row["retry_after_s"])
    where = _SHORT_BUDGET[row["limited_by"] or "agent"]
    raise InsufficientBudget(
        f"Insufficient budget: this call needs at least"
        f" {format_cents(req.fixed_microcents + _min_output(req))}"
        f" (input and {req.min_tokens} output tokens at worst-case rates);"
        f" {format_cents(row['available_microcents'])} available {where}"
    )


_SHORT_BUDGET = {
    "agent": "in the agent's budget. Top up with `spendguard budget set`.",
    "group": "in the agent's budget group. Top up with `spendguard group set`.",
    "tenant": "under this tenant's monthly ceiling; the operator can raise it.",
}


def _rate_limited(req: ReserveRequest, limited_by: str, retry_after_s: int | None):
    tokens = (req.input_tokens or 0) + req.min_tokens
    if limited_by == "rpm":
        what = "its rpm_limit (requests per rolling minute)"
    elif limited_by == "tpm":
        what = f"its tpm_limit (tokens per rolling minute; this call needs {tokens})"
    else:
        return RateLimited(
            f"This call needs {tokens} tokens (input and {req.min_tokens} output), more than"
            f" agent {req.agent_id}'s whole tpm_limit: raise the limit or send less input",
            None,
        )
    return RateLimited(
        f"Agent {req.agent_id} is over {what}; retry in {retry_after_s} s", retry_after_s
    )


def _min_output(req: ReserveRequest) -> int:
    product = req.output_rate * req.min_tokens
    return -(-product.numerator // product.denominator)


@dataclass(frozen=True, slots=True)
class Settlement:
    status: str  # settled | late | already_settled
    charged_microcents: int
    overrun_microcents: int
    remaining_microcents: int
    entry_id: int | None


SETTLE_SQL = "SELECT * FROM sg_settle_v2($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)"


def settle_args(
    agent_id: uuid.UUID,
    hold_id: uuid.UUID,
    *,
    realized_microcents: int,
    input_tokens: int | None,
    output_tokens: int | None,
    termination_reason: str,
    billing_breakdown: dict[str, Any] | None = None,
    request_sha256: str | None = None,
    content: Any = None,
) -> tuple:
    """sg_settle's arguments, in order (ledger_batch passes them as columns)."""
    return (
        agent_id,
        hold_id,
        realized_microcents,
        input_tokens,
        output_tokens,
        termination_reason,
        billing_breakdown,
        request_sha256,
        content,
    )


async def settle(
    db: Db,
    agent_id: uuid.UUID,
    hold_id: uuid.UUID,
    *,
    realized_microcents: int,
    input_tokens: int | None,
    output_tokens: int | None,
    termination_reason: str,
    billing_breakdown: dict[str, Any] | None = None,
    request_sha256: str | None = None,
    content: Any = None,
    now: datetime | None = None,
) -> Settlement:
    """Release a hold and charge what the call really cost, capped at the hold plus money no
    other call has reserved; the uncovered rest is recorded as ``overrun_microcents``.

    Settling twice is harmless (``already_settled``); settling a hold that expired meanwhile
    charges nothing more and records the real figures (``late``).
    """
    row = await db.fetchrow(
        SETTLE_SQL,
        *settle_args(
            agent_id,
            hold_id,
            realized_microcents=realized_microcents,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            termination_reason=termination_reason,
            billing_breakdown=billing_breakdown,
            request_sha256=request_sha256,
            content=content,
        ),
        now,
    )
    return settlement_from_row(hold_id, row)


def settlement_from_row(hold_id: uuid.UUID, row) -> Settlement:
    if row["status"] == "not_found":
        raise NotFound(f"Hold not found: {hold_id}")
    return Settlement(
        status=row["status"],
        charged_microcents=row["charged_microcents"] or 0,
        overrun_microcents=row["overrun_microcents"] or 0,
        remaining_microcents=row["remaining_microcents"] or 0,
        entry_id=row["entry_id"],
    )


async def heartbeat(db: Db, hold_id: uuid.UUID, *, ttl_s: int) -> bool:
    """Extend a live hold's expiry; False when it is gone (settled or expired and charged)."""
    async with durable_transaction(db) as conn:
        expires = await conn.fetchval(
            "UPDATE holds SET expires_at = now() + make_interval(secs => $2) WHERE id = $1"
            " RETURNING expires_at",
            hold_id,
            ttl_s,
        )
    return expires is not None


SWEEP_AGENT_SQL = "SELECT sg_sweep_agent_v2($1, $2)"


async def sweep_expired_holds(
    db: Db, *, max_agents: int = 100, now: datetime | None = None
) -> int:
    """Charge the expired holds of dead proxies in full, and start the new period of budgets
    and groups nobody has called since theirs ended; returns how many holds it charged."""
    agents = await db.fetch(
        "SELECT DISTINCT agent_id FROM holds WHERE expires_at < coalesce($2, now())"
        " UNION SELECT agent_id FROM budgets WHERE period_resets_at <= coalesce($2, now())"
        " LIMIT $1",
        max_agents,
        now,
    )
    charged = 0
    for row in agents:
        charged += await db.fetchval(SWEEP_AGENT_SQL, row["agent_id"], now)
    groups = await db.fetch(
        "SELECT id FROM budget_groups WHERE period_resets_at <= coalesce($2, now())"
        " AND deleted_at IS NULL LIMIT $1",
        max_agents,
        now,
    )
    for row in groups:
        async with durable_transaction(db) as conn:
            await conn.execute(
                "SELECT sg_roll_group(id, coalesce($2, now())) FROM budget_groups"
                " WHERE id = $1 FOR NO KEY UPDATE",
                row["id"],
                now,
            )
    return charged


async def end_worker_holds(db: Db, worker_id: str, *, now: datetime | None = None) -> int:
    """Charge in full, at once, the holds of a serving process that died (as at expiry)
    instead of leaving its agents locked until the holds' TTL; returns how many."""
    async with durable_transaction(db) as conn:
        agents = await conn.fetch(
            "UPDATE holds SET expires_at = coalesce($2, now()) - interval '1 millisecond'"
            " WHERE worker_id = $1 RETURNING agent_id",
            worker_id,
            now,
        )
    charged = 0
    for agent_id in sorted({row["agent_id"] for row in agents}):
        charged += await db.fetchval(SWEEP_AGENT_SQL, agent_id, now)
    return charged
