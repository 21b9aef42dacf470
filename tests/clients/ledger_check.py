"""What every client test checks after its calls: the ledger charged what the provider billed."""

from __future__ import annotations

import asyncio
import math
import uuid

import asyncpg

from spendguard_proxy.testing.fake_provider import FakeProvider
from tests.invariants import assert_ledger_invariants

WAIT_S = 5.0


async def assert_charged_as_billed(
    pool: asyncpg.Pool, agent_id: uuid.UUID, fake: FakeProvider, calls: int
) -> list[asyncpg.Record]:
    """``calls`` charge rows, one per call the fake billed and in the same order, each with
    the fake's tokens and its exact price (genai-prices) rounded up to the µ¢; the ledger
    invariants hold. A stream settles just after its client read the end: wait briefly."""
    rows = await _settled(pool, agent_id, fake, calls)
    billed = list(fake.billed.calls)
    assert len(rows) == len(billed) == calls, (len(rows), len(billed))
    for row, call in zip(rows, billed, strict=True):
        assert row["termination_reason"] == "complete", row["termination_reason"]
        assert row["model"] == call.model
        assert (row["input_tokens"], row["output_tokens"]) == (
            call.input_tokens, call.output_tokens)
        assert call.output_tokens > 0
        assert call.cost_microcents is not None, f"genai-prices cannot price {call.model}"
        assert row["realized_microcents"] == math.ceil(call.cost_microcents)
        assert -row["delta_microcents"] == row["realized_microcents"] <= row["wcec_microcents"]
        assert row["overrun_microcents"] == 0
    await assert_ledger_invariants(pool, agent_id)
    return rows


async def charge_rows(pool: asyncpg.Pool, agent_id: uuid.UUID) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT * FROM ledger_entries WHERE agent_id = $1 AND kind = 'charge' ORDER BY id",
        agent_id)


async def _settled(pool, agent_id, fake, calls):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while True:
        rows = await charge_rows(pool, agent_id)
        done = all(call.done for call in fake.billed.calls)
        holds = await pool.fetchval("SELECT count(*) FROM holds WHERE agent_id = $1", agent_id)
        if (len(rows) >= calls and done and holds == 0) or loop.time() > deadline:
            return rows
        await asyncio.sleep(0.02)


async def route_hits(http, relay_url: str, route: str, at_least: int = 0) -> int:
    """Requests SpendGuard answered on ``route`` (its router pattern), from ``/metrics``: which
    path a client really called, whatever SpendGuard then sent upstream. A streamed answer is
    counted when its handler returns, just after the client read the end: wait for
    ``at_least`` briefly."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    needle = f'route="{route}"'
    while True:
        async with http.get(f"{relay_url}/metrics") as response:
            text = await response.text()
        hits = sum(int(float(line.rsplit(" ", 1)[1])) for line in text.splitlines()
                   if line.startswith("spendguard_http_requests_total{") and needle in line)
        if hits >= at_least or loop.time() > deadline:
            return hits
        await asyncio.sleep(0.02)
