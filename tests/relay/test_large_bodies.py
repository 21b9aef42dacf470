"""A hostile body from a known agent cannot stall the server for everyone else (issue 11):
bodies that may hold more than CAP_MAX_JSON_VALUES values are counted in a separate process,
and refused there without the event loop ever parsing them."""

from __future__ import annotations

import asyncio
import io
import json
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spendguard_proxy.server.json_vetting import count_values, might_exceed
from tests.invariants import assert_ledger_invariants
from tests.relay.helpers import agent_headers, chat_body

LIMIT = 200_000  # the default
BAD = "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"


@pytest.mark.parametrize(("raw", "expected"), [
    (b'{"a": 1}', ("ok", 1)),
    (b'{"a": [1, 2, {"b": [3, 4]}], "c": [[1], [2, 3]]}', ("ok", 13)),
    (b"[" + b",".join([b"{}"] * 300_000) + b"]", ("too_many", None)),
    (b"[" + b",".join([b"1"] * 300_000) + b"]", ("too_many", None)),
    (b'{"m": [' + b",".join([b'""'] * 300_000) + b"]}", ("too_many", None)),
    (b"[" * 10 + b"]" * 10, ("ok", 9)),
    (b"{bad", ("invalid", BAD)),
])
def test_count_values(raw, expected):
    assert count_values(raw, LIMIT) == expected


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner,
                                                                max_size=4),
    max_leaves=30)


@given(value=JSON)
def test_the_byte_bound_is_never_below_the_count(value):
    """What lets the loop skip the count: a body under the limit by the byte bound is."""
    raw = json.dumps(value).encode()
    verdict, counted = count_values(raw, 10**9)
    assert verdict == "ok"
    assert might_exceed(raw, counted)


async def test_ten_million_objects_are_refused_while_health_stays_fast(
    relay_url, http, budgeted_agent, pool
):
    agent_id = await budgeted_agent(limit_cents=100)
    hostile = (b'{"model": "gpt-4o-mini", "max_tokens": 5, "messages": ['
               + b",".join([b"{}"] * 3_000_000) + b"]}")  # 8.6 MiB
    slowest = 0.0

    async def probe_health(stop: asyncio.Event) -> None:
        nonlocal slowest
        while not stop.is_set():
            started = time.perf_counter()
            async with http.get(f"{relay_url}/health") as r:
                assert r.status == 200
            slowest = max(slowest, time.perf_counter() - started)
            await asyncio.sleep(0.02)

    stop = asyncio.Event()
    prober = asyncio.create_task(probe_health(stop))
    await asyncio.sleep(0.1)
    async with http.post(f"{relay_url}/v1/chat/completions", data=io.BytesIO(hostile),
                         headers={**agent_headers(agent_id),
                                  "Content-Type": "application/json"}) as r:
        body = await r.json()
    stop.set()
    await prober
    assert r.status == 413 and "CAP_MAX_JSON_VALUES" in body["detail"]
    assert slowest < 0.25, f"/health took {slowest:.3f} s while the body was vetted"
    figures = await assert_ledger_invariants(pool, agent_id)
    assert figures["entries"] == 1  # the top-up: nothing was reserved


async def test_a_large_legitimate_body_still_goes_through(relay_url, http, budgeted_agent, pool):
    agent_id = await budgeted_agent(limit_cents=1000)
    prose = "word, " * 250_000  # 250k commas: over the byte bound, far under the limit
    body = chat_body(max_tokens=5, messages=[{"role": "user", "content": prose}])
    async with http.post(f"{relay_url}/v1/chat/completions",
                         data=io.BytesIO(json.dumps(body).encode()),
                         headers={**agent_headers(agent_id),
                                  "Content-Type": "application/json"}) as r:
        assert r.status == 200, await r.text()
    await assert_ledger_invariants(pool, agent_id)
