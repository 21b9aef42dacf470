"""Bodies a provider would choke on are a 400 before anything is reserved (no 500, no hold)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spendguard_proxy.errors import InvalidRequest
from spendguard_proxy.server.bodies import loads_strict
from tests.invariants import assert_ledger_invariants

CHAT = '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": %s}]%s}'
BAD_BODIES = [
    (CHAT % ('"\\ud800 alone"', ""), "lone UTF-16 surrogate"),
    (CHAT % ('"x"', ', "temperature": NaN'), "NaN, which is not a JSON number"),
    (CHAT % ('"x"', ', "temperature": Infinity'), "Infinity"),
    (CHAT % ('"x"', ', "top_p": -Infinity'), "-Infinity"),
    (CHAT % ('"x"', ', "n": 1000000000000000000000000000000'), "integer out of range"),
    (CHAT % ('"x"', ', "seed": 9223372036854775808'), "integer out of range"),
    (CHAT % ('"x"', ', "temperature": 1e400'), "number out of range"),
    (CHAT % ('"x"', ', "max_tokens": ' + "9" * 5000), "integer out of range"),
]


@pytest.mark.parametrize(("raw", "needle"), BAD_BODIES)
async def test_bad_json_is_a_400_and_reserves_nothing(http, relay_url, pool, budgeted_agent,
                                                      raw, needle):
    agent_id = await budgeted_agent()
    async with http.post(f"{relay_url}/v1/chat/completions", data=raw.encode(),
                         headers={"x-cynsta-agent-id": str(agent_id),
                                  "content-type": "application/json"}) as r:
        body = await r.json()
        assert r.status == 400, body
    assert needle in body["error"]["message"]
    assert await pool.fetchval("SELECT count(*) FROM ledger_entries WHERE agent_id = $1 "
                               "AND kind = 'charge'", agent_id) == 0
    await assert_ledger_invariants(pool, agent_id)


def test_surrogate_pairs_and_escaped_backslashes_are_fine() -> None:
    assert loads_strict(b'{"s": "\\ud83d\\ude00"}') == {"s": "\U0001F600"}
    assert loads_strict(b'{"s": "\\\\ud800"}') == {"s": "\\ud800"}
    assert loads_strict(b'{"n": -9223372036854775808, "f": 1.5e300}')["n"] == -(2**63)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_anything_json_like_parses_or_is_a_clear_400(value) -> None:
    raw = json.dumps(value).encode()  # may carry NaN, huge ints and lone surrogates
    try:
        parsed = loads_strict(raw)
    except InvalidRequest as exc:
        assert exc.message
        return
    json.dumps(parsed, ensure_ascii=False, allow_nan=False).encode("utf-8")  # forwardable


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain",
                                          "multipart/form-data; boundary=x", None])
async def test_only_json_bodies_are_read(http, relay_url, pool, budgeted_agent, content_type):
    # What a web page can send cross-site without a CORS preflight (or no type at all).
    agent_id = await budgeted_agent()
    headers = {"x-cynsta-agent-id": str(agent_id)}
    if content_type:
        headers["Content-Type"] = content_type
    async with http.post(f"{relay_url}/v1/chat/completions", headers=headers,
                         data=(CHAT % ('"x"', "")).encode(),
                         skip_auto_headers=("Content-Type",)) as r:
        assert r.status == 415
        assert "Content-Type must be application/json" in (await r.json())["error"]["message"]
    async with http.post(f"{relay_url}/v1/agents", headers=headers, data=b'{"name": "x"}',
                         skip_auto_headers=("Content-Type",)) as r:
        assert r.status == 415
    assert await pool.fetchval("SELECT count(*) FROM holds WHERE agent_id = $1", agent_id) == 0
