"""A call for an unknown agent is refused before its body is read (issue: one tenant could
freeze the server with a huge body for a random agent id)."""

from __future__ import annotations

import asyncio
import io
import time
import uuid

import aiohttp

# 16 MiB of empty objects: parsing this takes seconds of event-loop time (GIL held).
HUGE = b'{"model": "gpt-4o-mini", "messages": [' + b"{}," * (16 * 2**20 // 3) + b"{}]}"


async def test_unknown_agent_is_404_before_the_body_is_parsed(relay_url, http):
    async def attack() -> tuple[int | None, float]:
        started = time.perf_counter()
        try:
            async with http.post(f"{relay_url}/v1/chat/completions", data=io.BytesIO(HUGE),
                                 headers={"x-cynsta-agent-id": str(uuid.uuid4()),
                                          "Content-Type": "application/json"}) as r:
                return r.status, time.perf_counter() - started
        except aiohttp.ClientError:  # the server may answer and hang up mid-upload
            return None, time.perf_counter() - started

    async def health_latency() -> float:
        await asyncio.sleep(0.05)
        started = time.perf_counter()
        async with aiohttp.ClientSession() as other, other.get(f"{relay_url}/health") as r:
            assert r.status == 200
        return time.perf_counter() - started

    (status, took), health_s = await asyncio.gather(attack(), health_latency())
    assert status in (404, None)
    assert took < 2.0 and health_s < 0.5, (took, health_s)
