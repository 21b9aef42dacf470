"""Malformed bodies, headers and ids against every route (DESIGN §3): never a 5xx.

Two real servers (sidecar and hosted) take Hypothesis-generated requests: random bytes, random
JSON, valid bodies with fields swapped for odd values, garbage ids in paths and headers, odd
content types and keys. Some requests are valid enough to reach the fake provider (a budgeted
agent's id is among the ids), so the relay's paths are exercised too. Afterwards both servers
are healthy, serve a normal call, and logged no unhandled error.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from spendguard_proxy import ledger, tenants
from tests.faults.conftest import agent_headers, chat_body, server_env, start_server
from tests.invariants import assert_ledger_invariants

EXAMPLES = 400


@dataclass
class Target:
    url: str
    api_key: str | None  # hosted mode: a valid tenant key
    agent_id: uuid.UUID  # budgeted, in this target's tenant
    log_text: Callable[[], str]


@pytest.fixture(scope="module")
async def targets(dsn, fake, faults_pool, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    started = []
    try:
        sidecar = await start_server(server_env(dsn, fake, tmp / "data"), tmp, "sidecar")
        started.append(sidecar)
        hosted = await start_server(
            server_env(dsn, fake, tmp / "data", CAP_MODE="hosted", CAP_KEY_CACHE_TTL_S="5"),
            tmp, "hosted")
        started.append(hosted)
        tenant = await tenants.create_tenant(faults_pool, f"fuzz-{uuid.uuid4().hex[:8]}")
        tenant_id = uuid.UUID(tenant["tenant_id"])
        key = await tenants.create_key(faults_pool, tenant_id, list(tenants.SCOPES))
        out = []
        for server, tid, api_key in ((sidecar, ledger.LOCAL_TENANT_ID, None),
                                     (hosted, tenant_id, key["api_key"])):
            agent = await ledger.create_agent(faults_pool, tid, "fuzz")
            agent_id = uuid.UUID(agent["agent_id"])
            await ledger.set_budget(faults_pool, tid, agent_id, hard_limit_cents=10_000,
                                    topup_cents=None, concurrency="shared")
            out.append(Target(server.url, api_key, agent_id, server.log_text))
        yield out
    finally:
        for server in started:
            await server.stop()


# ---------------------------------------------------------------- strategies

ODD_NUMBERS = st.sampled_from([0, -1, 1, 2**31, 2**63, -(2**63) - 1, 10**30, 1e308, -0.0, 0.5,
                               math.inf, math.nan, True, False])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), ODD_NUMBERS,
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30))
JSON = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=12)
ID_TEXT = st.one_of(
    st.uuids().map(str), st.text(max_size=40), st.just(""), st.just("null"),
    st.just("00000000-0000-0000-0000-000000000000"), st.just("x" * 300),
    st.uuids().map(lambda u: str(u).upper()), st.uuids().map(lambda u: "{" + str(u) + "}"),
    st.uuids().map(lambda u: u.hex), st.uuids().map(lambda u: f" {u} "))
HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60)

MESSAGES = st.one_of(
    st.just([{"role": "user", "content": "hi"}]), JSON,
    st.lists(st.fixed_dictionaries({"role": st.one_of(st.sampled_from(["user", "system",
                                                                         "assistant", "tool"]),
                                                       JSON),
                                    "content": st.one_of(st.text(max_size=40), JSON)}),
             max_size=3))
MODELS = st.one_of(st.sampled_from(["gpt-4o-mini", "grok-3-mini", "claude-3-5-haiku",
                                    "gemini-2.0-flash", "o3-mini", "no-such-model", ""]), JSON)
FIELDS = {
    "model": MODELS,
    "messages": MESSAGES,
    "input": st.one_of(st.text(max_size=40), JSON),
    "contents": JSON,
    "prompt": st.one_of(st.text(max_size=40), JSON),
    "system": JSON,
    "max_tokens": st.one_of(ODD_NUMBERS, JSON),
    "max_completion_tokens": ODD_NUMBERS,
    "max_output_tokens": ODD_NUMBERS,
    "generationConfig": st.one_of(st.fixed_dictionaries({"maxOutputTokens": ODD_NUMBERS}), JSON),
    "stream": st.one_of(st.booleans(), JSON),
    "stream_options": JSON,
    "n": ODD_NUMBERS,
    "tools": JSON,
    "thinking": st.one_of(st.fixed_dictionaries({"type": st.just("enabled"),
                                                 "budget_tokens": ODD_NUMBERS}), JSON),
    "name": JSON,
    "hard_limit_cents": st.one_of(ODD_NUMBERS, JSON),
    "topup_cents": st.one_of(ODD_NUMBERS, JSON),
    "concurrency": st.one_of(st.sampled_from(["shared", "exclusive", "SHARED"]), JSON),
}


CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 16}
TEMPLATES = {
    "/v1/chat/completions": CHAT,
    "/v1/responses": {"model": "gpt-4o-mini", "input": "hi", "max_output_tokens": 16},
    "/v1/messages": {"model": "claude-3-5-haiku", "max_tokens": 16,
                     "messages": [{"role": "user", "content": "hi"}]},
    "gemini": {"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
               "generationConfig": {"maxOutputTokens": 16}},
    "openai/chat/completions": CHAT,
    "openai/responses": {"model": "gpt-4o-mini", "input": "hi", "max_output_tokens": 16},
    "grok/chat/completions": {**CHAT, "model": "grok-3-mini"},
    "grok/responses": {"model": "grok-3-mini", "input": "hi", "max_output_tokens": 16},
    "anthropic/messages": {"model": "claude-3-5-haiku", "max_tokens": 16,
                           "messages": [{"role": "user", "content": "hi"}]},
    "gemini/generateContent": {"model": "gemini-2.0-flash", "prompt": "hi", "max_tokens": 16},
    "budget": {"hard_limit_cents": 10_000, "topup_cents": 10_000, "concurrency": "shared"},
    "/v1/agents": {"name": "fuzz"},
}


def _template(path: str) -> dict:
    for key, body in TEMPLATES.items():
        if path.endswith(key) or (key == "gemini" and path.startswith("/v1beta/")):
            return body
    return {"name": "fuzz"}


@st.composite
def bodies(draw, path: str) -> bytes | None:
    kind = draw(st.sampled_from(["none", "bytes", "json"] + ["template"] * 5))
    if kind == "none":
        return None
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "json":
        return json.dumps(draw(JSON)).encode()
    body = dict(_template(path))
    for _ in range(draw(st.integers(0, 3))):  # 0: a valid call that reaches the provider
        name = draw(st.sampled_from(sorted(FIELDS)))
        if draw(st.integers(0, 4)) == 0:
            body.pop(name, None)
        else:
            body[name] = draw(FIELDS[name])
    return json.dumps(body).encode()


ROUTES = [
    ("GET", "/health"), ("GET", "/ready"), ("GET", "/metrics"), ("GET", "/v1/public/pricing"),
    ("POST", "/v1/agents"), ("GET", "/v1/agents"),
    ("GET", "/v1/agents/{agent}"), ("PATCH", "/v1/agents/{agent}"),
    ("DELETE", "/v1/agents/{other}"),
    ("POST", "/v1/agents/{agent}/budget"), ("GET", "/v1/agents/{agent}/budget"),
    ("POST", "/v1/agents/{agent}/runs"), ("GET", "/v1/agents/{agent}/usage{query}"),
    ("POST", "/v1/chat/completions"), ("POST", "/v1/responses"), ("POST", "/v1/messages"),
    ("POST", "/v1beta/models/{model}:generateContent"),
    ("POST", "/v1beta/models/{model}:streamGenerateContent"),
    ("POST", "/v1beta/models/{model}"),
    ("POST", "/v1/agents/{agent}/runs/{run}/openai/chat/completions"),
    ("POST", "/v1/agents/{agent}/runs/{run}/openai/responses"),
    ("POST", "/v1/agents/{agent}/runs/{run}/grok/chat/completions"),
    ("POST", "/v1/agents/{agent}/runs/{run}/grok/responses"),
    ("POST", "/v1/agents/{agent}/runs/{run}/anthropic/messages"),
    ("POST", "/v1/agents/{agent}/runs/{run}/gemini/generateContent"),
    ("PUT", "/v1/chat/completions"), ("GET", "/v1/messages"), ("POST", "/no/such/route"),
]
# Provider routes are where the money is: draw them more often.
WEIGHTED_ROUTES = ROUTES + [r for r in ROUTES if r[0] == "POST" and "agents/{agent}/b" not in
                            r[1] and r[1] != "/v1/agents"] * 2


@st.composite
def requests(draw):
    method, template = draw(st.sampled_from(WEIGHTED_ROUTES))
    target_index = draw(st.integers(0, 1))
    real_ids = draw(st.integers(0, 3)) > 0
    agent = None if real_ids else draw(ID_TEXT)  # None: the target's budgeted agent
    other = draw(ID_TEXT)
    run = draw(st.uuids().map(str)) if real_ids else draw(ID_TEXT)
    model = draw(st.one_of(st.sampled_from(["gemini-2.0-flash", "gemini-2.5-pro", "x"]),
                           st.text(max_size=20)))
    query = draw(st.one_of(st.just(""), st.builds(
        lambda limit, before: f"?limit={quote(limit)}&before={quote(before)}",
        st.one_of(st.integers(-5, 2000).map(str), st.text(max_size=8)),
        st.one_of(st.integers(-5, 2**64).map(str), st.text(max_size=8)))))
    headers = {}
    if real_ids:
        headers["x-cynsta-agent-id"] = None  # the target's budgeted agent
    elif draw(st.booleans()):
        headers["x-cynsta-agent-id"] = draw(st.one_of(HEADER_TEXT, st.uuids().map(str)))
    if draw(st.booleans()):
        headers["x-cynsta-run-id"] = draw(st.one_of(HEADER_TEXT, st.uuids().map(str)))
    auth = draw(st.sampled_from(["valid", "valid", "valid", "none", "garbage", "prefix"]))
    content_type = draw(st.sampled_from(["application/json"] * 3 + [
        "text/plain", "", None, "application/json; charset=latin-1",
        "multipart/form-data; boundary=x"]))
    extra = draw(st.dictionaries(st.sampled_from(["anthropic-version", "anthropic-beta",
                                                  "openai-beta", "x-api-key", "x-goog-api-key",
                                                  "Accept-Encoding"]),
                                 HEADER_TEXT, max_size=2))
    return {
        "method": method, "template": template, "target": target_index, "agent": agent,
        "other": other, "run": run, "model": model, "query": query, "headers": headers,
        "auth": auth, "content_type": content_type, "extra": extra,
        "body": draw(bodies(template)),
    }


def _build(req: dict, target: Target) -> tuple[str, URL, dict[str, str], bytes | None]:
    agent = str(target.agent_id) if req["agent"] is None else req["agent"]
    path = req["template"].format(
        agent=quote(agent, safe=""), other=quote(req["other"], safe=""),
        run=quote(req["run"], safe=""), model=quote(req["model"], safe=""), query=req["query"])
    headers = {k: v for k, v in req["extra"].items()}
    for name, value in req["headers"].items():
        headers[name] = str(target.agent_id) if value is None else value
    if req["auth"] == "valid" and target.api_key:
        headers["Authorization"] = f"Bearer {target.api_key}"
    elif req["auth"] == "garbage":
        headers["Authorization"] = "Bearer not-a-key"
    elif req["auth"] == "prefix":
        headers["x-api-key"] = "sk_cynsta_live_" + "x" * 32
    if req["content_type"] is not None:
        headers["Content-Type"] = req["content_type"]
    return req["method"], URL(target.url + path, encoded=True), headers, req["body"]


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(req=requests())
async def test_malformed_requests_never_get_a_5xx(targets, req):
    target = targets[req["target"]]
    method, url, headers, body = _build(req, target)
    timeout = aiohttp.ClientTimeout(total=20)
    async with (
        aiohttp.ClientSession(timeout=timeout, auto_decompress=False) as session,
        session.request(method, url, headers=headers, data=body,
                        skip_auto_headers=("Content-Type",)) as response,
    ):
        raw = await response.read()
    assert response.status < 500, (response.status, raw[:500], method, str(url), headers)


async def test_servers_healthy_after_fuzzing(targets, faults_pool):
    """Runs after the fuzz test (file order): every server answers and logged no crash."""
    async with aiohttp.ClientSession() as session:
        for target in targets:
            async with session.get(target.url + "/health") as response:
                assert response.status == 200
            headers = agent_headers(target.agent_id)
            if target.api_key:
                headers["Authorization"] = f"Bearer {target.api_key}"
            await session.post(f"{target.url}/v1/agents/{target.agent_id}/budget",
                               json={"hard_limit_cents": 10_000, "topup_cents": 10_000},
                               headers=headers)
            async with session.post(target.url + "/v1/chat/completions",
                                    json=chat_body(max_tokens=8), headers=headers) as response:
                assert response.status == 200, await response.text()
            await assert_ledger_invariants(faults_pool, target.agent_id)
            log = target.log_text()
            assert "Error handling request" not in log, log[-3000:]
            assert "Traceback" not in log, log[-3000:]
