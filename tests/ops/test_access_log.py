"""The access log on a real server: one JSON line per request, after settlement, and never a
key or a byte of a body in any log record of any logger."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import signal
import uuid

import aiohttp
import pytest
from aiohttp import web

from spendguard_proxy import ledger
from spendguard_proxy.ledger import Settlement
from spendguard_proxy.providers.registry import get_adapter
from spendguard_proxy.server import telemetry
from spendguard_proxy.server.app import build_app
from spendguard_proxy.server.keys import SETTINGS
from spendguard_proxy.server.relay import Call, Outcome
from spendguard_proxy.server.telemetry import ACCESS_LOGGER
from tests.ops.conftest import SPENDGUARD, _start, clean_env, new_tenant

# What must never reach a log: a provider key the client brings, a Gemini key in a query
# string, a tenant key (hosted), a key-looking string inside a broken body, and prompt text.
BYO_KEY = "sk-proj-BYOSECRETbyosecret0123456789"
QUERY_KEY = "AIzaQUERYSECRETquerysecret012345"
BODY_KEY = "sk-ant-api03-BODYSECRETbodysecret0123"
PROMPT = "the purple giraffe prompt that must stay private"
SECRETS = (BYO_KEY, QUERY_KEY, BODY_KEY, PROMPT, "purple giraffe")
LINE_WAIT_S = 5.0

CALL_FIELDS = {"agent", "run", "provider", "model", "stream", "max_tokens",
               "reserved_microcents", "charged_microcents", "overrun_microcents",
               "input_tokens", "output_tokens", "termination"}


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def access_lines(caplog):
    """The access logger's records (it does not propagate), and every other logger's at DEBUG
    through caplog; the logger's own set-up is put back afterwards."""
    caplog.set_level(logging.DEBUG)
    logger = logging.getLogger(ACCESS_LOGGER)
    saved = logger.handlers[:], logger.level, logger.propagate
    lines = _Lines()
    logger.handlers[:] = [lines]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield lines
    finally:
        logger.handlers[:], logger.level, logger.propagate = saved


async def _one_line(lines: _Lines) -> dict:
    """The single line the last request wrote (a stream's comes after its last byte)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + LINE_WAIT_S
    while not lines.records and loop.time() < deadline:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)  # a second line would have come by now
    assert len(lines.records) == 1, [r.getMessage() for r in lines.records]
    record = lines.records.pop()
    text = record.getMessage()
    assert "\n" not in text
    return json.loads(text)


def _assert_no_secrets(records: list[logging.LogRecord], *extra: str) -> None:
    assert records, "nothing was captured"
    for record in records:
        seen = [record.getMessage(), repr(record.args), str(record.exc_info or ""),
                record.exc_text or "", str(getattr(record, "__dict__", ""))]
        for secret in (*SECRETS, *extra):
            assert not any(secret in text for text in seen), (secret, record.name, seen[0])


def _chat(*, stream: bool = False, model: str = "gpt-4o-mini", repeat: int = 1) -> dict:
    body = {"model": model, "max_tokens": 16,
            "messages": [{"role": "user", "content": " ".join([PROMPT] * repeat)}]}
    if stream:
        body["stream"] = True
    return body


@pytest.fixture
async def logged_sidecar(dsn, settings, fake):
    """A sidecar relaying to the fake provider: OpenAI with the client's own key (none
    configured), Anthropic and Gemini with configured ones; the access log on."""
    relay = settings.model_copy(update={
        "access_log": True,
        "openai_api_key": None, "openai_base_url": fake.base_url_openai,
        "anthropic_api_key": "sk-ant-test", "anthropic_base_url": fake.base_url_anthropic,
        "gemini_api_key": "gem-test", "gemini_base_url": fake.base_url_gemini,
    })
    runner, server = await _start(relay, dsn)
    yield server
    await server.session.close()
    await runner.cleanup()


async def test_one_json_line_per_request_with_the_settled_money(
        logged_sidecar, access_lines, caplog, pool):
    s = logged_sidecar
    agent = uuid.UUID((await ledger.create_agent(pool, ledger.LOCAL_TENANT_ID, "log"))["agent_id"])
    byo = {"x-cynsta-agent-id": str(agent), "Authorization": f"Bearer {BYO_KEY}"}

    # Admin: set a budget; the agent comes from the path, the route is the pattern.
    async with s.session.post(s.url(f"/v1/agents/{agent}/budget"),
                              json={"hard_limit_cents": 100}) as resp:
        assert resp.status == 200, await resp.text()
    line = await _one_line(access_lines)
    assert line["route"] == "/v1/agents/{agent_id}/budget"
    assert (line["method"], line["status"], line["agent"]) == ("POST", 200, str(agent))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"])
    assert line["ms"] >= 0 and "reserved_microcents" not in line

    # Provider call, whole answer, with the client's own key.
    run = uuid.uuid4()
    async with s.session.post(s.url("/v1/chat/completions"), json=_chat(),
                              headers={**byo, "x-cynsta-run-id": str(run)}) as resp:
        assert resp.status == 200, await resp.text()
        remaining_cents = int(resp.headers["x-spendguard-remaining-cents"])
    line = await _one_line(access_lines)
    assert set(line) >= CALL_FIELDS | {"time", "method", "route", "status", "ms"}
    assert line["route"] == "/v1/chat/completions" and line["status"] == 200
    assert (line["agent"], line["run"], line["provider"]) == (str(agent), str(run), "openai")
    assert (line["model"], line["stream"], line["termination"]) == ("gpt-4o-mini", False,
                                                                   "complete")
    assert line["reserved_microcents"] > line["charged_microcents"] > 0
    assert line["overrun_microcents"] == 0 and line["max_tokens"] == 16
    assert line["input_tokens"] > 0 and line["output_tokens"] > 0
    charged = line["charged_microcents"]

    # Stream: settled after the last byte went out, and still logged with the settled charge.
    async with s.session.post(s.url("/v1/chat/completions"), json=_chat(stream=True),
                              headers=byo) as resp:
        assert resp.status == 200
        assert b"[DONE]" in await resp.read()
    line = await _one_line(access_lines)
    assert (line["stream"], line["termination"], line["status"]) == (True, "complete", 200)
    assert line["charged_microcents"] > 0 and line["output_tokens"] > 0
    charged += line["charged_microcents"]
    budget = await ledger.get_budget(pool, ledger.LOCAL_TENANT_ID, agent)
    assert budget["remaining_microcents"] == 100_000_000 - charged  # what the ledger charged
    assert remaining_cents >= 0

    # Anthropic, streamed, with the configured key.
    body = {"model": "claude-haiku-4-5", "max_tokens": 16, "stream": True,
            "messages": [{"role": "user", "content": PROMPT}]}
    async with s.session.post(s.url("/v1/messages"), json=body,
                              headers={"x-cynsta-agent-id": str(agent)}) as resp:
        assert resp.status == 200, await resp.text()
        await resp.read()
    line = await _one_line(access_lines)
    assert (line["provider"], line["termination"], line["stream"]) == ("anthropic", "complete",
                                                                      True)

    # Gemini with a key in the query string: the route pattern, never the URL.
    async with s.session.post(
            s.url(f"/v1beta/models/gemini-2.5-flash:generateContent?key={QUERY_KEY}"),
            json={"contents": [{"parts": [{"text": PROMPT}]}]},
            headers={"x-cynsta-agent-id": str(agent)}) as resp:
        assert resp.status == 200, await resp.text()
    line = await _one_line(access_lines)
    assert line["route"] == "/v1beta/models/{model_action}"
    assert (line["provider"], line["model"]) == ("gemini", "gemini-2.5-flash")

    # 402: not even the input fits (~10k tokens of gpt-4o > 1 ¢); who, which model, and
    # nothing reserved or charged.
    poor = uuid.UUID((await ledger.create_agent(pool, ledger.LOCAL_TENANT_ID, "poor"))["agent_id"])
    await ledger.set_budget(pool, ledger.LOCAL_TENANT_ID, poor, hard_limit_cents=1,
                            topup_cents=None, concurrency="shared")
    async with s.session.post(s.url("/v1/chat/completions"), json=_chat(model="gpt-4o", repeat=1000),
                              headers={**byo, "x-cynsta-agent-id": str(poor)}) as resp:
        assert resp.status == 402
    line = await _one_line(access_lines)
    assert (line["status"], line["agent"], line["model"]) == (402, str(poor), "gpt-4o")
    assert line["reserved_microcents"] is None and line["charged_microcents"] is None

    # Malformed JSON with a key-looking string in it: a 400 that logs no body text.
    broken = ('{"model": "gpt-4o-mini", "api_key": "' + BODY_KEY + '", "messages": [{"content": "'
              + PROMPT + '"')
    async with s.session.post(s.url("/v1/chat/completions"), data=broken,
                              headers={**byo, "Content-Type": "application/json"}) as resp:
        assert resp.status == 400
    line = await _one_line(access_lines)
    assert (line["route"], line["status"]) == ("/v1/chat/completions", 400)

    # 404s: an unknown route is "unmatched", never the raw path.
    async with s.session.get(s.url(f"/no/such/{BODY_KEY}")) as resp:
        assert resp.status == 404
    line = await _one_line(access_lines)
    assert (line["route"], line["status"]) == ("unmatched", 404)
    async with s.session.get(s.url(f"/v1/agents/{uuid.uuid4()}")) as resp:
        assert resp.status == 404
    assert (await _one_line(access_lines))["route"] == "/v1/agents/{agent_id}"

    _assert_no_secrets([*caplog.records, *access_lines.records])


async def test_hosted_lines_name_the_tenant_and_never_its_key(
        dsn, hosted_settings, access_lines, caplog, pool):
    runner, s = await _start(hosted_settings.model_copy(update={"access_log": True}), dsn)
    try:
        tenant = await new_tenant(pool)
        auth = {"Authorization": f"Bearer {tenant.api_key}"}
        async with s.session.post(s.url("/v1/agents"), json={"name": "x"}, headers=auth) as resp:
            assert resp.status == 200, await resp.text()
        line = await _one_line(access_lines)
        assert (line["route"], line["status"], line["tenant"]) == ("/v1/agents", 200,
                                                                   tenant.tenant_id)
        wrong = {"Authorization": f"Bearer {tenant.api_key[:-4]}XXXX"}
        async with s.session.get(s.url("/v1/agents"), headers=wrong) as resp:
            assert resp.status == 401
        line = await _one_line(access_lines)
        assert line["status"] == 401 and "tenant" not in line
    finally:
        await s.session.close()
        await runner.cleanup()
    _assert_no_secrets([*caplog.records, *access_lines.records], tenant.api_key,
                       tenant.api_key[:-4])


async def test_a_client_gone_mid_stream_is_499_with_the_settled_charge(
        dsn, settings, fake, pool, access_lines):
    """With handler cancellation on, the relay is cancelled mid-stream: it still settles
    before the line is written."""
    relay = settings.model_copy(update={"access_log": True, "openai_api_key": "sk-test",
                                        "openai_base_url": fake.base_url_openai})
    runner = web.AppRunner(build_app(relay, dsn), access_log=None, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1/chat/completions"
    agent = uuid.UUID((await ledger.create_agent(pool, ledger.LOCAL_TENANT_ID, "g"))["agent_id"])
    await ledger.set_budget(pool, ledger.LOCAL_TENANT_ID, agent, hard_limit_cents=100,
                            topup_cents=None, concurrency="shared")
    fake.configure(words=200, delay_ms=20)
    body = {**_chat(stream=True), "max_tokens": 200}
    try:
        async with aiohttp.ClientSession() as session, session.post(
                url, json=body, headers={"x-cynsta-agent-id": str(agent)}) as resp:
            assert resp.status == 200
            await resp.content.readany()  # the first events, then hang up
        line = await _one_line(access_lines)
    finally:
        await runner.cleanup()
    assert line["status"] == 499 and line["stream"] is True
    assert line["charged_microcents"] == line["reserved_microcents"] > 0  # usage unknown
    budget = await ledger.get_budget(pool, ledger.LOCAL_TENANT_ID, agent)
    assert budget["remaining_microcents"] == 100_000_000 - line["charged_microcents"]


async def test_a_line_waits_for_a_settlement_still_running(settings, access_lines):
    """Cancelled again while settling (shutdown): the line is written once the settlement
    lands, with its figures."""
    settling = asyncio.get_running_loop().create_future()
    outcome = Outcome(reason="client_disconnect")
    agent = uuid.uuid4()

    async def handler(request: web.Request) -> web.Response:
        call = Call(adapter=get_adapter("openai_chat"), tenant_id=uuid.uuid4(), agent_id=agent,
                    run_id=uuid.uuid4(), body={"model": "gpt-4o-mini"}, request_sha256="")
        record = request[telemetry.CALL_LOG] = telemetry.CallLog(call)
        record.outcome, record.settling = outcome, settling
        raise asyncio.CancelledError

    app = web.Application(middlewares=[telemetry._middleware(logging.getLogger(ACCESS_LOGGER))])
    app[SETTINGS] = settings
    app.router.add_post("/call", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.ClientError):
                async with session.post(f"http://127.0.0.1:{runner.addresses[0][1]}/call"):
                    pass
        await asyncio.sleep(0.05)
        assert access_lines.records == []  # not before the settlement
        outcome.settlement = Settlement("settled", 777, 0, 0, 1)
        settling.set_result(outcome.settlement)
        line = await _one_line(access_lines)
    finally:
        await runner.cleanup()
    assert (line["status"], line["agent"], line["charged_microcents"]) == (499, str(agent), 777)
    assert line["termination"] == "client_disconnect"


async def test_turned_off_nothing_is_logged(dsn, settings, access_lines):
    runner, s = await _start(settings.model_copy(update={"access_log": False}), dsn)
    try:
        async with s.session.get(s.url("/health")) as resp:
            assert resp.status == 200
    finally:
        await s.session.close()
        await runner.cleanup()
    assert access_lines.records == []


async def test_spendguard_serve_writes_bare_json_lines_to_stderr(dsn):
    env = clean_env(CAP_DATABASE_URL=dsn, CAP_PORT="0", CAP_SWEEP_INTERVAL_SECONDS="3600")
    proc = await asyncio.create_subprocess_exec(
        SPENDGUARD, "serve", env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        banner = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        assert "http://" in banner, "spendguard serve did not start"
        url = re.search(r"http://\S+", banner).group(0).rstrip(",")
        async with aiohttp.ClientSession() as session:
            async with session.get(url + "/health") as resp:
                assert resp.status == 200
            async with session.get(url + f"/v1/agents/{uuid.uuid4()}") as resp:
                assert resp.status == 404
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    lines = [json.loads(x) for x in err.decode().splitlines() if x.startswith("{")]
    assert [(x["route"], x["status"]) for x in lines] == [
        ("/health", 200), ("/v1/agents/{agent_id}", 404)]
    assert ACCESS_LOGGER not in err.decode()  # bare JSON, not wrapped by the root handler
