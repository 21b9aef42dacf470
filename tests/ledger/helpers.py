from __future__ import annotations

import uuid
from fractions import Fraction

from spendguard_proxy import ledger

T = ledger.LOCAL_TENANT_ID

# The budget object's fields (DESIGN §3, and §11's policy fields, which the reference CLI and
# SDK ignore).
BUDGET_FIELDS = {
    "agent_id", "hard_limit_cents", "remaining_cents", "remaining_microcents", "available_cents",
    "concurrency", "locked_run_id", "locked_cents", "locked_expires_at",
    "period", "period_resets_at", "period_spent_cents", "period_spent_microcents",
    "rpm_limit", "tpm_limit", "allowed_models", "alert_thresholds_pct", "group_id",
}


async def new_agent(pool, *, limit_cents: int = 100, concurrency: str = "shared", topup=None):
    agent = await ledger.create_agent(pool, T, "test")
    agent_id = uuid.UUID(agent["agent_id"])
    await ledger.set_budget(
        pool, T, agent_id, hard_limit_cents=limit_cents, topup_cents=topup,
        concurrency=concurrency,
    )
    return agent_id


def request(agent_id, run_id=None, *, fixed=10_000, rate=Fraction(35, 2), max_tokens=1000):
    return ledger.ReserveRequest(
        tenant_id=T, agent_id=agent_id, run_id=run_id or uuid.uuid4(), fixed_microcents=fixed,
        output_rate=rate, max_tokens=max_tokens, provider="openai", model="test",
        input_tokens=100,
    )


def cost_of(fixed: int, rate: Fraction, output_tokens: int) -> int:
    exact = fixed + rate * output_tokens
    return -(-exact.numerator // exact.denominator)
