"""Budget groups and policy fields over HTTP (DESIGN §11): the round trip, and bad input as a
clear 400 — from a table and from random bodies."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from tests.invariants import assert_group_invariants


async def _post(http, url, body, method="POST"):
    async with http.request(method, url, json=body) as r:
        return r.status, await r.json()


async def _agent(http, url):
    status, body = await _post(http, f"{url}/v1/agents", {"name": "member"})
    assert status == 200
    return body["agent_id"]


async def test_group_round_trip(http, proxy_url, pool):
    status, group = await _post(http, f"{proxy_url}/v1/groups", {
        "name": "research", "hard_limit_cents": 500, "topup_cents": 200, "period": "monthly",
        "alert_thresholds_pct": [90, 50]})
    assert status == 200, group
    group_id = group["group_id"]
    assert group["remaining_cents"] == 200 and group["alert_thresholds_pct"] == [50, 90]
    assert group["period"] == "monthly" and group["period_resets_at"].endswith("T00:00:00Z")
    agent_id = await _agent(http, proxy_url)
    status, budget = await _post(http, f"{proxy_url}/v1/agents/{agent_id}/budget", {
        "hard_limit_cents": 100, "group_id": group_id, "rpm_limit": 60,
        "allowed_models": ["gpt-5*"]})
    assert status == 200 and budget["group_id"] == group_id and budget["rpm_limit"] == 60
    # Fields left out stay; an explicit null clears.
    status, budget = await _post(http, f"{proxy_url}/v1/agents/{agent_id}/budget", {
        "hard_limit_cents": 100, "allowed_models": None})
    assert budget["group_id"] == group_id and budget["rpm_limit"] == 60
    assert budget["allowed_models"] is None
    status, group = await _post(http, f"{proxy_url}/v1/groups/{group_id}",
                                {"topup_cents": 1000, "name": "R&D"}, method="PATCH")
    assert status == 200 and group["remaining_cents"] == 500 and group["name"] == "R&D"
    assert group["agent_ids"] == [agent_id]
    async with http.get(f"{proxy_url}/v1/groups") as r:
        assert group_id in [g["group_id"] for g in (await r.json())["groups"]]
    await assert_group_invariants(pool, uuid.UUID(group_id))
    async with http.delete(f"{proxy_url}/v1/groups/{group_id}") as r:
        assert (await r.json()) == {"group_id": group_id, "deleted": True}
    async with http.get(f"{proxy_url}/v1/agents/{agent_id}/budget") as r:
        assert (await r.json())["group_id"] is None
    async with http.get(f"{proxy_url}/v1/groups/{group_id}") as r:
        assert r.status == 404


GOOD_BUDGET = {"hard_limit_cents": 100}
BAD_POLICIES = [
    ({"period": "hourly"}, "period"),
    ({"period": 1}, "period"),
    ({"rpm_limit": 0}, "rpm_limit"),
    ({"tpm_limit": -1}, "tpm_limit"),
    ({"rpm_limit": 1.5}, "rpm_limit"),
    ({"tpm_limit": 10**10}, "tpm_limit"),
    ({"allowed_models": "gpt-5*"}, "allowed_models"),
    ({"allowed_models": []}, "allowed_models"),
    ({"allowed_models": ["gpt 5"]}, "allowed_models.0"),
    ({"allowed_models": ["gpt-%"]}, "allowed_models.0"),
    ({"allowed_models": ["x" * 201]}, "allowed_models.0"),
    ({"alert_thresholds_pct": [0]}, "alert_thresholds_pct.0"),
    ({"alert_thresholds_pct": [101]}, "alert_thresholds_pct.0"),
    ({"alert_thresholds_pct": list(range(1, 12))}, "alert_thresholds_pct"),
    ({"alert_thresholds_pct": 50}, "alert_thresholds_pct"),
    ({"group_id": "not-a-uuid"}, "group_id"),
]


@pytest.mark.parametrize(("extra", "needle"), BAD_POLICIES)
async def test_bad_policy_fields_are_a_clear_400(http, proxy_url, extra, needle):
    agent_id = await _agent(http, proxy_url)
    status, body = await _post(http, f"{proxy_url}/v1/agents/{agent_id}/budget",
                               {**GOOD_BUDGET, **extra})
    assert status == 400 and needle in body["detail"], body


BAD_GROUP_CALLS = [
    ("POST", "/v1/groups", {"hard_limit_cents": 5}, 400, "name"),
    ("POST", "/v1/groups", {"name": "g"}, 400, "hard_limit_cents"),
    ("POST", "/v1/groups", {"name": "g", "hard_limit_cents": 0}, 400, "hard_limit_cents"),
    ("POST", "/v1/groups", {"name": "", "hard_limit_cents": 5}, 400, "name"),
    ("POST", "/v1/groups", {"name": "g", "hard_limit_cents": 5, "period": "yearly"}, 400,
     "period"),
    ("PATCH", f"/v1/groups/{uuid.uuid4()}", {"name": None}, 400, "name cannot be null"),
    ("PATCH", f"/v1/groups/{uuid.uuid4()}", {"hard_limit_cents": None}, 400,
     "hard_limit_cents cannot be null"),
    ("PATCH", f"/v1/groups/{uuid.uuid4()}", {"name": "x"}, 404, "Group not found"),
    ("GET", "/v1/groups/nope", None, 400, "group_id must be a UUID"),
    ("DELETE", f"/v1/groups/{uuid.uuid4()}", None, 404, "Group not found"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "needle"), BAD_GROUP_CALLS)
async def test_bad_group_calls(http, proxy_url, method, path, body, status, needle):
    got, payload = await _post(http, proxy_url + path, body, method=method)
    assert got == status and needle in payload["detail"], payload


async def test_an_unknown_group_id_in_a_budget_is_a_404(http, proxy_url):
    agent_id = await _agent(http, proxy_url)
    status, body = await _post(http, f"{proxy_url}/v1/agents/{agent_id}/budget",
                               {**GOOD_BUDGET, "group_id": str(uuid.uuid4())})
    assert status == 404 and "Group not found" in body["detail"]


FIELDS = ["name", "hard_limit_cents", "topup_cents", "period", "alert_thresholds_pct",
          "rpm_limit", "tpm_limit", "allowed_models", "group_id"]


@hsettings(max_examples=60, deadline=None,
           suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.dictionaries(
    st.sampled_from(FIELDS),
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
    | st.lists(st.integers() | st.text(max_size=8), max_size=3),
    max_size=5))
async def test_random_policy_bodies_never_give_5xx(http, proxy_url, body):
    agent_id = await _agent(http, proxy_url)
    for method, path in (("POST", f"/v1/agents/{agent_id}/budget"), ("POST", "/v1/groups")):
        async with http.request(method, proxy_url + path, json=body) as r:
            assert r.status < 500, await r.text()
