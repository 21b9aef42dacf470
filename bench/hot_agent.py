"""One hot ``shared`` agent at the ledger level: reserve then settle, from many tasks at once.

Two ways, with the server's pool settings (``synchronous_commit`` on): ``direct`` calls
``spendguard_proxy.ledger.reserve`` and ``settle`` (the plpgsql functions, one round trip and
one commit each); ``batched`` goes through ``spendguard_proxy.ledger_batch.LedgerBatcher``,
as the server does, which groups the calls waiting at the same moment into one transaction.
Every reserve/settle pair is one settled call.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from fractions import Fraction

from spendguard_proxy import ledger
from spendguard_proxy.db.pool import create_pool
from spendguard_proxy.settings import load_settings


def _request(agent_id: uuid.UUID, tenant_id: uuid.UUID) -> ledger.ReserveRequest:
    # gpt-4o-mini: 15 ¢ / 1M input, 60 ¢ / 1M output; 20 input tokens, at most 32 output.
    return ledger.ReserveRequest(
        tenant_id=tenant_id,
        agent_id=agent_id,
        run_id=uuid.uuid4(),
        fixed_microcents=300,
        output_rate=Fraction(60),
        max_tokens=32,
        provider="openai",
        model="gpt-4o-mini",
        input_tokens=20,
    )


class _Direct:
    def __init__(self, pool) -> None:
        self.pool = pool

    async def reserve(self, req):
        return await ledger.reserve(self.pool, req, ttl_s=TTL_S)

    async def settle(self, agent_id, hold_id, **kw):
        return await ledger.settle(self.pool, agent_id, hold_id, **kw)

    async def close(self) -> None:
        pass


TTL_S = 300


def _api(mode: str, pool):
    if mode == "direct":
        return _Direct(pool)
    from spendguard_proxy.ledger_batch import LedgerBatcher

    return LedgerBatcher(pool, TTL_S)


async def _run(dsn: str, agent_id: uuid.UUID, tasks: int, duration_s: float,
               pool_size: int, mode: str, tenant_id: uuid.UUID) -> dict:
    settings = load_settings(_env_file=None, db_pool_min_size=pool_size,
                             db_pool_max_size=pool_size)
    pool = await create_pool(dsn, settings)
    api = _api(mode, pool)
    cycles: list[float] = []
    failures = 0
    try:
        deadline = time.perf_counter() + duration_s

        async def worker() -> None:
            nonlocal failures
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                try:
                    res = await api.reserve(_request(agent_id, tenant_id))
                    await api.settle(agent_id, res.hold_id, realized_microcents=1500,
                                     input_tokens=20, output_tokens=20,
                                     termination_reason="complete")
                except Exception:  # noqa: BLE001 — counted and reported, never hidden
                    failures += 1
                    continue
                cycles.append(time.perf_counter() - t0)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(tasks)))
        elapsed = time.perf_counter() - started
    finally:
        await api.close()
        await pool.close()
    cycles.sort()
    n = len(cycles)
    return {
        "mode": mode,
        "tasks": tasks,
        "pool_size": pool_size,
        "duration_s": round(elapsed, 2),
        "settled": n,
        "failures": failures,
        "settled_per_s": round(n / elapsed, 1),
        "cycle_p50_ms": round(cycles[n // 2] * 1000, 3) if n else None,
        "cycle_p99_ms": round(cycles[min(n - 1, int(0.99 * n))] * 1000, 3) if n else None,
    }


def run(dsn: str, agent_id: uuid.UUID, tasks: int, duration_s: float, pool_size: int,
        mode: str = "direct", tenant_id: uuid.UUID = ledger.LOCAL_TENANT_ID) -> dict:
    """``tenant_id``: the agent's tenant (one with a monthly ceiling measures what the ceiling's
    tenant-row lock costs)."""
    return asyncio.run(_run(dsn, agent_id, tasks, duration_s, pool_size, mode, tenant_id))
