"""The admin HTTP API: reference shapes, and bad input always a clear 4xx."""

from __future__ import annotations

import io
import json
import uuid

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from tests.invariants import assert_ledger_invariants
from tests.ledger.helpers import BUDGET_FIELDS


async def _json(resp):
    return resp.status, await resp.json()


async def _agent(http, url, name="a1"):
    async with http.post(f"{url}/v1/agents", json={"name": name}) as r:
        assert r.status == 200
        return (await r.json())["agent_id"]


async def test_health_ready_and_agent_lifecycle(http, proxy_url, pool):
    async with http.get(f"{proxy_url}/health") as r:
        assert await _json(r) == (200, {"status": "ok"})
    async with http.get(f"{proxy_url}/ready") as r:
        status, body = await _json(r)
        assert status == 200 and body["checks"] == {"database": "ok", "pricing": "ok"}
    agent_id = await _agent(http, proxy_url)
    async with http.post(f"{proxy_url}/v1/agents/{agent_id}/budget",
                         json={"hard_limit_cents": 5000, "topup_cents": 5000}) as r:
        status, budget = await _json(r)
    assert status == 200 and set(budget) == BUDGET_FIELDS
    assert budget["remaining_cents"] == 5000 and budget["concurrency"] == "exclusive"
    async with http.patch(f"{proxy_url}/v1/agents/{agent_id}", json={"name": "b2"}) as r:
        assert (await r.json())["name"] == "b2"
    async with http.get(f"{proxy_url}/v1/agents") as r:
        assert agent_id in [a["agent_id"] for a in (await r.json())["agents"]]
    async with http.post(f"{proxy_url}/v1/agents/{agent_id}/runs") as r:
        uuid.UUID((await r.json())["run_id"])
    async with http.get(f"{proxy_url}/v1/agents/{agent_id}/usage?limit=10") as r:
        usage = await r.json()
        assert usage["entries"][0]["kind"] == "topup" and usage["next_before"] is None
    async with http.delete(f"{proxy_url}/v1/agents/{agent_id}") as r:
        assert await r.json() == {"agent_id": agent_id, "deleted": True}
    async with http.get(f"{proxy_url}/v1/agents/{agent_id}") as r:
        assert r.status == 404
    await assert_ledger_invariants(pool, uuid.UUID(agent_id))


BAD_BUDGETS = [
    (b"{not json", 400, "not valid JSON"),
    (b"[1, 2]", 400, "must be a JSON object"),
    (b'"text"', 400, "must be a JSON object"),
    (json.dumps({}).encode(), 400, "hard_limit_cents"),
    (json.dumps({"hard_limit_cents": True}).encode(), 400, "hard_limit_cents"),
    (json.dumps({"hard_limit_cents": "100"}).encode(), 400, "hard_limit_cents"),
    (json.dumps({"hard_limit_cents": 1.5}).encode(), 400, "hard_limit_cents"),
    (json.dumps({"hard_limit_cents": 0}).encode(), 400, "greater than or equal to 1"),
    (json.dumps({"hard_limit_cents": -5}).encode(), 400, "hard_limit_cents"),
    (json.dumps({"hard_limit_cents": 10**12 + 1}).encode(), 400, "less than or equal"),
    (json.dumps({"hard_limit_cents": 2**70}).encode(), 400, "integer out of range"),
    (json.dumps({"hard_limit_cents": 10**13}).encode(), 400, "hard_limit_cents"),
    (json.dumps({"hard_limit_cents": 5, "topup_cents": -1}).encode(), 400, "topup_cents"),
    (json.dumps({"hard_limit_cents": 5, "topup_cents": False}).encode(), 400, "topup_cents"),
    (json.dumps({"hard_limit_cents": 5, "concurrency": "both"}).encode(), 400, "concurrency"),
    (b"\xff\xfe garbage", 400, "not valid JSON"),
    (b"[" * 100_000, 400, "JSON"),
]


@pytest.mark.parametrize(("raw", "status", "needle"), BAD_BUDGETS)
async def test_bad_budget_bodies_get_a_clear_400(http, proxy_url, pool, raw, status, needle):
    agent_id = await _agent(http, proxy_url)
    async with http.post(f"{proxy_url}/v1/agents/{agent_id}/budget", data=raw,
                         headers={"Content-Type": "application/json"}) as r:
        body = await r.json()
    assert r.status == status
    assert needle in body["detail"]
    assert body["error"] == {"message": body["detail"], "type": "invalid_request",
                             "code": "invalid_request"}


BAD_AGENT_CALLS = [
    ("GET", "/v1/agents/not-a-uuid", None, 400, "agent_id must be a UUID"),
    ("GET", f"/v1/agents/{uuid.uuid4()}", None, 404, "Agent not found"),
    ("GET", f"/v1/agents/{uuid.uuid4()}/budget", None, 404, "Agent not found"),
    ("POST", "/v1/agents", {"name": ""}, 400, "name"),
    ("POST", "/v1/agents", {"name": "x" * 201}, 400, "name"),
    ("POST", "/v1/agents", {"name": 5}, 400, "name"),
    ("PATCH", f"/v1/agents/{uuid.uuid4()}", {}, 400, "name"),
    ("GET", f"/v1/agents/{uuid.uuid4()}/usage?limit=0", None, 400, "limit"),
    ("GET", f"/v1/agents/{uuid.uuid4()}/usage?limit=abc", None, 400, "limit"),
    ("GET", f"/v1/agents/{uuid.uuid4()}/usage?before=-1", None, 400, "before"),
    ("GET", "/v1/nothing-here", None, 404, "No such route"),
    ("PUT", "/v1/agents", {}, 405, ""),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "needle"), BAD_AGENT_CALLS)
async def test_bad_admin_calls(http, proxy_url, method, path, body, status, needle):
    async with http.request(method, proxy_url + path, json=body) as r:
        payload = await r.json()
    assert r.status == status
    assert needle in payload["detail"]


async def test_oversized_body_is_413(http, proxy_url, settings):
    raw = io.BytesIO(b'{"name": "' + b"x" * (settings.max_body_bytes + 10) + b'"}')
    async with http.post(f"{proxy_url}/v1/agents", data=raw,
                         headers={"Content-Type": "application/json"}) as r:
        assert r.status == 413
        assert "CAP_MAX_BODY_BYTES" in (await r.json())["detail"]


@hsettings(max_examples=60, deadline=None,
           suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["hard_limit_cents", "topup_cents", "concurrency", "name", "x"]),
        inner, max_size=4),
    max_leaves=8))
async def test_random_bodies_never_give_5xx(http, proxy_url, body):
    for path in ("/v1/agents", f"/v1/agents/{uuid.uuid4()}/budget"):
        async with http.post(proxy_url + path, json=body) as r:
            assert r.status < 500, await r.text()
