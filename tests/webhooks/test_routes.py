"""/v1/webhooks over real HTTP: shapes, the secret shown once, tenants apart, clear 400s."""

from __future__ import annotations

import contextlib
import json
import uuid

import aiohttp
import pytest
from standardwebhooks import Webhook

from spendguard_proxy import tenants
from spendguard_proxy.ledger import LOCAL_TENANT_ID
from spendguard_proxy.server.app import build_app
from spendguard_proxy.server.runner import start_site
from spendguard_proxy.webhooks.events import EVENT_TYPES
from tests.webhooks.conftest import emit, running_receiver, wait_until

WEBHOOK_KEYS = {"webhook_id", "url", "events", "created_at"}


@contextlib.asynccontextmanager
async def _server(settings, dsn):
    runner, port = await start_site(build_app(settings, dsn), settings)
    try:
        async with aiohttp.ClientSession() as session:
            yield _Client(session, f"http://127.0.0.1:{port}")
    finally:
        await runner.cleanup()


class _Client:
    def __init__(self, session, base_url, key=None):
        self.session, self.base_url, self.key = session, base_url, key

    def as_tenant(self, key):
        return _Client(self.session, self.base_url, key)

    async def call(self, method, path, body=None, raw: bytes | None = None):
        headers = {"x-api-key": self.key} if self.key else {}
        kwargs = {"json": body} if raw is None else {
            "data": raw, "headers": {**headers, "Content-Type": "application/json"}}
        kwargs.setdefault("headers", headers)
        async with self.session.request(method, self.base_url + path, **kwargs) as resp:
            return resp.status, await resp.json()


@pytest.fixture(scope="module")
async def sidecar(wh_settings, wh_dsn):
    async with _server(wh_settings, wh_dsn) as client:
        yield client


@pytest.fixture(scope="module")
async def hosted(wh_hosted_settings, wh_dsn):
    async with _server(wh_hosted_settings, wh_dsn) as client:
        yield client


async def _tenant_key(pool) -> str:
    tenant = await tenants.create_tenant(pool, f"wh-{uuid.uuid4().hex[:8]}")
    key = await tenants.create_key(pool, uuid.UUID(tenant["tenant_id"]), list(tenants.SCOPES))
    return key["api_key"]


async def test_create_list_delete_and_the_secret_shown_once(sidecar, wh_pool):
    status, created = await sidecar.call("POST", "/v1/webhooks", {
        "url": "http://127.0.0.1:9/hook", "events": ["call.overrun", "budget.threshold"]})
    assert status == 200 and set(created) == WEBHOOK_KEYS | {"secret"}
    assert created["events"] == ["budget.threshold", "call.overrun"]  # known order, unique
    assert created["secret"].startswith("whsec_")
    Webhook(created["secret"])  # the format receivers' libraries take
    status, listing = await sidecar.call("GET", "/v1/webhooks")
    mine = [w for w in listing["webhooks"] if w["webhook_id"] == created["webhook_id"]]
    assert status == 200 and mine == [{k: created[k] for k in WEBHOOK_KEYS}]
    assert created["secret"] not in json.dumps(listing)
    status, deliveries = await sidecar.call(
        "GET", f"/v1/webhooks/{created['webhook_id']}/deliveries")
    assert (status, deliveries) == (200, {"webhook_id": created["webhook_id"],
                                          "deliveries": [], "next_before": None})
    status, deleted = await sidecar.call("DELETE", f"/v1/webhooks/{created['webhook_id']}")
    assert (status, deleted) == (200, {"webhook_id": created["webhook_id"], "deleted": True})
    status, again = await sidecar.call("DELETE", f"/v1/webhooks/{created['webhook_id']}")
    assert status == 404 and again["error"]["type"] == "not_found"
    status, listing = await sidecar.call("GET", "/v1/webhooks")
    assert created["webhook_id"] not in json.dumps(listing)
    ciphertext = await wh_pool.fetchval(
        "SELECT secret_ciphertext FROM webhooks WHERE id = $1", uuid.UUID(created["webhook_id"]))
    assert created["secret"].encode() not in ciphertext
    assert created["secret"][6:].encode() not in ciphertext


async def test_another_tenants_webhook_is_indistinguishable_from_a_random_id(hosted, wh_pool):
    a, b = hosted.as_tenant(await _tenant_key(wh_pool)), hosted.as_tenant(
        await _tenant_key(wh_pool))
    status, hook = await a.call("POST", "/v1/webhooks", {"url": "https://example.com/a"})
    assert status == 200 and hook["events"] is None
    random_id = str(uuid.uuid4())
    for method, suffix in (("DELETE", ""), ("GET", "/deliveries")):
        status, answer = await b.call(method, f"/v1/webhooks/{hook['webhook_id']}{suffix}")
        rstatus, ranswer = await b.call(method, f"/v1/webhooks/{random_id}{suffix}")
        assert status == rstatus == 404
        assert answer["detail"] == ranswer["detail"].replace(random_id, hook["webhook_id"])
    assert await b.call("GET", "/v1/webhooks") == (200, {"webhooks": []})
    status, listing = await a.call("GET", "/v1/webhooks")
    assert [w["webhook_id"] for w in listing["webhooks"]] == [hook["webhook_id"]]


async def test_hosted_without_a_secret_key_says_what_to_set(wh_hosted_settings, wh_dsn, wh_pool):
    settings = wh_hosted_settings.model_copy(update={"webhook_secret_key": None})
    async with _server(settings, wh_dsn) as client:
        tenant = client.as_tenant(await _tenant_key(wh_pool))
        status, answer = await tenant.call("POST", "/v1/webhooks",
                                           {"url": "https://example.com/a"})
    assert status == 400 and "CAP_WEBHOOK_SECRET_KEY" in answer["detail"]
    assert "spendguard webhook keygen" in answer["detail"]


BAD_BODIES = [
    ({}, "url: Field required"),
    ({"url": 5}, "url: Input should be a valid string"),
    ({"url": "ftp://example.com"}, "must start with https://"),
    ({"url": "https://u:p@example.com"}, "must not carry credentials"),
    ({"url": "https://example.com", "events": ["budget.nope"]},
     "Unknown event type(s) 'budget.nope'; known types: " + ", ".join(EVENT_TYPES)),
    ({"url": "https://example.com", "events": []}, "events is empty"),
    ({"url": "https://example.com", "events": "call.cutoff"},
     "events: Input should be a valid list"),
    ({"url": "https://example.com", "event": ["call.cutoff"]},
     "event: Extra inputs are not permitted"),
    ({"url": "https://example.com/" + "x" * 3000}, "url: String should have at most 2048"),
]


@pytest.mark.parametrize(("body", "message"), BAD_BODIES)
async def test_bad_bodies_are_400_with_what_to_fix(sidecar, body, message):
    status, answer = await sidecar.call("POST", "/v1/webhooks", body)
    assert status == 400, answer
    assert message in answer["detail"] and answer["error"]["type"] == "invalid_request"


HOSTED_BAD = [
    ({"url": "http://example.com"}, "https:// in hosted mode"),
    ({"url": "https://10.0.0.7/hook"}, "not a public address"),
]


@pytest.mark.parametrize(("body", "message"), HOSTED_BAD)
async def test_hosted_refuses_http_and_private_literals(hosted, wh_pool, body, message):
    tenant = hosted.as_tenant(await _tenant_key(wh_pool))
    status, answer = await tenant.call("POST", "/v1/webhooks", body)
    assert status == 400 and message in answer["detail"]


BAD_REQUESTS = [
    ("POST", "/v1/webhooks", b"{not json", "not valid JSON"),
    ("POST", "/v1/webhooks", b"[]", "must be a JSON object"),
    ("GET", "/v1/webhooks/nope/deliveries", None, "webhook_id must be a UUID"),
    ("DELETE", "/v1/webhooks/nope", None, "webhook_id must be a UUID"),
    ("GET", f"/v1/webhooks/{uuid.uuid4()}/deliveries?limit=0", None,
     "limit must be between 1 and 200"),
    ("GET", f"/v1/webhooks/{uuid.uuid4()}/deliveries?before=x", None,
     "before must be an integer"),
]


@pytest.mark.parametrize(("method", "path", "raw", "message"), BAD_REQUESTS)
async def test_bad_requests_are_400(sidecar, method, path, raw, message):
    status, answer = await sidecar.call(method, path, raw=raw)
    assert status == 400 and message in answer["detail"], answer


async def test_the_servers_own_worker_delivers_and_deliveries_show_attempts(
    wh_settings, wh_dsn, wh_pool
):
    """End to end through build_app's cleanup_ctx worker: create over HTTP, an event from
    sg_emit, a signed POST, then the deliveries route shows it with its attempts."""
    settings = wh_settings.model_copy(update={"webhook_delivery": True})
    async with running_receiver(script=[500], after=204) as receiver, \
            _server(settings, wh_dsn) as client:
        status, hook = await client.call("POST", "/v1/webhooks",
                                         {"url": receiver.base_url + "/e2e"})
        event = await emit(wh_pool, LOCAL_TENANT_ID, "budget.exhausted",
                           {"agent_id": "a", "group_id": None})
        await wait_until(lambda: _delivered(client, hook["webhook_id"]))
        status, page = await client.call(
            "GET", f"/v1/webhooks/{hook['webhook_id']}/deliveries?limit=5")
        await client.call("DELETE", f"/v1/webhooks/{hook['webhook_id']}")
    assert status == 200
    [d] = page["deliveries"]
    assert d["event_id"] == event and d["event_type"] == "budget.exhausted"
    assert d["state"] == "delivered" and d["next_attempt_at"] is None
    assert [a["status_code"] for a in d["attempts"]] == [500, 204]
    assert d["attempts"][0]["error"] == "HTTP 500" and d["attempts"][1]["error"] is None
    request = receiver.requests[-1]
    assert Webhook(hook["secret"]).verify(request.body, request.headers)["id"] == event


async def _delivered(client, webhook_id) -> bool:
    _, page = await client.call("GET", f"/v1/webhooks/{webhook_id}/deliveries")
    return bool(page["deliveries"]) and page["deliveries"][0]["state"] == "delivered"
