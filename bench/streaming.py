"""Streaming: what SpendGuard adds to the time to first chunk and to each chunk's arrival.

The fake provider streams ``words`` events ``delay_ms`` apart. The same stream is read
directly and through SpendGuard, one at a time; every SSE event's arrival time is taken on
the client as soon as its bytes arrive.
"""

from __future__ import annotations

import asyncio
import statistics
import time

import aiohttp

from bench.loadgen import Target


async def _one(session: aiohttp.ClientSession, target: Target) -> tuple[float, list[float]]:
    """(time to first event, arrival times of every event after the first, from the first)."""
    started = time.perf_counter()
    arrivals: list[float] = []
    async with session.post(target.url, data=target.body, headers=target.headers) as response:
        if response.status != 200:
            raise RuntimeError(f"stream answered {response.status}: {await response.text()}")
        async for chunk in response.content.iter_any():
            now = time.perf_counter()
            arrivals.extend([now] * chunk.count(b"data:"))
    if not arrivals:
        raise RuntimeError("stream had no events")
    first = arrivals[0]
    return first - started, [t - first for t in arrivals[1:]]


async def measure(target: Target, streams: int) -> dict:
    ttfc: list[float] = []
    gaps: list[float] = []
    totals: list[float] = []
    async with aiohttp.ClientSession() as session:
        await _one(session, target)  # warm the connections
        for _ in range(streams):
            first, offsets = await _one(session, target)
            ttfc.append(first)
            previous = 0.0
            for offset in offsets:
                gaps.append(offset - previous)
                previous = offset
            totals.append(first + (offsets[-1] if offsets else 0.0))
    gaps.sort()
    return {
        "streams": streams,
        "events_per_stream": len(gaps) // streams + 1,
        "ttfc_p50_ms": round(statistics.median(ttfc) * 1000, 3),
        "ttfc_max_ms": round(max(ttfc) * 1000, 3),
        "gap_mean_ms": round(statistics.fmean(gaps) * 1000, 3),
        "gap_p50_ms": round(statistics.median(gaps) * 1000, 3),
        "gap_p99_ms": round(gaps[min(len(gaps) - 1, int(0.99 * len(gaps)))] * 1000, 3),
        "total_p50_ms": round(statistics.median(totals) * 1000, 3),
    }


def compare(direct: Target, proxied: Target, streams: int) -> dict:
    d = asyncio.run(measure(direct, streams))
    s = asyncio.run(measure(proxied, streams))
    return {
        "direct": d,
        "spendguard": s,
        "added_ttfc_ms": round(s["ttfc_p50_ms"] - d["ttfc_p50_ms"], 3),
        "added_per_chunk_ms": round(s["gap_mean_ms"] - d["gap_mean_ms"], 3),
        "added_gap_p99_ms": round(s["gap_p99_ms"] - d["gap_p99_ms"], 3),
    }
