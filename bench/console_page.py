"""Server time of the console's agent page for an agent with 100,000 ledger rows.

    .venv/bin/python -m bench.console_page [--rows 100000] [--requests 30]

A fresh database (embedded PostgreSQL in a temp dir, or a new database on CAP_DATABASE_URL;
dropped at the end). One agent gets a budget through ``ledger.set_budget``, then ``--rows``
charge rows are written with COPY — balances kept consistent (each row's balance_after is the
running sum, and the budget's remaining is the last one), checked afterwards with the same
"remaining == Σ deltas" rule as the bench's ledger check. A sidecar app is started in this
process on 127.0.0.1 and the pages are fetched in turn; the figure is the server's own time
(the console's ``Server-Timing: app;dur=…`` header), with the client's wall time beside it.
Target: agent page under 200 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

import aiohttp
import asyncpg

from bench.database import fresh_database, ledger_check, make_agent
from spendguard_proxy.server.app import build_app
from spendguard_proxy.server.runner import start_site
from spendguard_proxy.settings import load_settings

TARGET_MS = 200.0
MODELS = ("gpt-4o-mini", "gpt-4.1-nano", "gpt-4o", "gpt-5-mini", "o4-mini")
RUNS = 1000
CHARGE_MICROCENTS = 1_234  # 0.001234 ¢ per call
COLUMNS = (
    "agent_id", "kind", "delta_microcents", "balance_after_microcents", "run_id", "provider",
    "model", "input_tokens", "output_tokens", "wcec_microcents", "realized_microcents",
    "overrun_microcents", "termination_reason", "created_at",
)


def _rows(agent_id: uuid.UUID, start_balance: int, count: int):
    """Charges spread evenly over the last 30 days, oldest first; balances a running sum."""
    runs = [uuid.uuid4() for _ in range(RUNS)]
    now = datetime.now(UTC)
    step = timedelta(days=30) / count
    balance = start_balance
    for i in range(count):
        balance -= CHARGE_MICROCENTS
        cutoff = i % 500 == 0
        yield (
            agent_id, "charge", -CHARGE_MICROCENTS, balance, runs[i % RUNS], "openai",
            MODELS[i % len(MODELS)], 120 + i % 50, 40 + i % 30, 5 * CHARGE_MICROCENTS,
            CHARGE_MICROCENTS, 0, "budget_cutoff" if cutoff else "complete",
            now - timedelta(days=30) + step * i,
        )


async def _fill(dsn: str, rows: int) -> uuid.UUID:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    try:
        agent_id = await make_agent(pool, "bench-console-100k")
        start = await pool.fetchval(
            "SELECT remaining_microcents FROM budgets WHERE agent_id = $1", agent_id)
        async with pool.acquire() as conn, conn.transaction():
            await conn.copy_records_to_table(
                "ledger_entries", records=_rows(agent_id, start, rows), columns=COLUMNS)
            await conn.execute(
                "UPDATE budgets SET remaining_microcents = $2 WHERE agent_id = $1",
                agent_id, start - rows * CHARGE_MICROCENTS)
        await pool.execute("ANALYZE ledger_entries")
        return agent_id
    finally:
        await pool.close()


async def _time(session: aiohttp.ClientSession, url: str, requests: int) -> dict[str, float]:
    server, wall = [], []
    for i in range(requests + 3):
        started = time.perf_counter()
        async with session.get(url) as resp:
            await resp.read()
            assert resp.status == 200, (url, resp.status)
            timing = resp.headers["Server-Timing"]
        if i >= 3:  # warm-up: the first requests compile templates and fill caches
            wall.append((time.perf_counter() - started) * 1000)
            server.append(float(timing.split("dur=")[1]))
    return {
        "server_p50_ms": statistics.median(server),
        "server_p95_ms": statistics.quantiles(server, n=20)[18],
        "server_max_ms": max(server),
        "wall_p50_ms": statistics.median(wall),
    }


async def _measure(dsn: str, rows: int, requests: int) -> int:
    print(f"writing {rows:,} ledger rows …", flush=True)
    started = time.perf_counter()
    agent_id = await _fill(dsn, rows)
    print(f"  done in {time.perf_counter() - started:.1f} s")
    check = await ledger_check(dsn, [agent_id])
    assert check["mismatched"] == 0, check
    settings = load_settings(_env_file=None, sweep_interval_seconds=3600, access_log=False)
    runner, port = await start_site(build_app(settings, dsn), settings)
    base = f"http://127.0.0.1:{port}/ui"
    pages = {
        "agent page": f"{base}/agents/{agent_id}",
        "agent page, older ledger page": f"{base}/agents/{agent_id}?before={rows // 2}",
        "overview": f"{base}/",
        "agents list": f"{base}/agents",
    }
    failed = 0
    try:
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as session:
            print(f"\n{'page':32} {'server p50':>11} {'p95':>8} {'max':>8} {'wall p50':>9}")
            for name, url in pages.items():
                t = await _time(session, url, requests)
                print(f"{name:32} {t['server_p50_ms']:9.1f}ms {t['server_p95_ms']:6.1f}ms "
                      f"{t['server_max_ms']:6.1f}ms {t['wall_p50_ms']:7.1f}ms")
                if name == "agent page" and t["server_p95_ms"] >= TARGET_MS:
                    failed = 1
    finally:
        await runner.cleanup()
    print(f"\ntarget: agent page p95 < {TARGET_MS:.0f} ms ->",
          "missed" if failed else "met")
    return failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.console_page",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args(argv)
    with fresh_database(os.environ.get("CAP_DATABASE_URL")) as (dsn, where):
        print(f"database: {where}")
        return asyncio.run(_measure(dsn, args.rows, args.requests))


if __name__ == "__main__":
    raise SystemExit(main())
