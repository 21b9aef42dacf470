"""The strict budget holds for the options SpendGuard prices (DESIGN §10), end to end.

A real SpendGuard in front of the fake provider, which bills like the real providers (service
tiers, prompt-cache writes by TTL, built-in tool fees, long-context tiers) and prices its bill
with genai-prices, an oracle independent of SpendGuard's billing code. For every call:
the provider's bill never exceeds the hold SpendGuard placed before calling it, SpendGuard
charges exactly that bill (to 1 µ¢), nothing is recorded as overrun, and the ledger
invariants hold.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spendguard_proxy.pricing.ratecard import Tiered
from spendguard_proxy.pricing.sources import load_bundled
from spendguard_proxy.testing.fake_provider import BilledCall, FakeProvider, prompt_tokens
from tests.invariants import assert_ledger_invariants
from tests.relay.helpers import agent_headers, charges

TABLE = load_bundled()
BUDGET_CENTS = 1_000_000  # $10,000: the budget never binds, so the hold is the full quote
MICROCENTS_PER_CENT = 1_000_000
# SpendGuard's own cap on built-in tool calls a request may trigger without one of its own.
SEARCH_CAP = 8

CHAT_MODELS = ["gpt-5.4", "gpt-4o-mini", "gpt-5-nano", "grok-4.3"]
RESPONSES_MODELS = ["gpt-5.4", "gpt-4.1", "gpt-5-mini"]
ANTHROPIC_MODELS = ["claude-haiku-4-5", "claude-sonnet-4-6", "claude-haiku-5-5"]
GEMINI_MODELS = ["gemini-2.5-pro", "gemini-2.5-flash"]
PRICING_PROVIDER = {"chat": "openai", "responses": "openai", "anthropic": "anthropic",
                    "gemini": "gemini"}


def _pricing_provider(api: str, model: str) -> str:
    return "grok" if model.startswith("grok") else PRICING_PROVIDER[api]


def _tiers(api: str, model: str) -> list[str]:
    """The service tiers the bundled table prices for ``model``."""
    card = TABLE.lookup(_pricing_provider(api, model), model)
    return card.option_values.get("service_tier", [])


def _context_start(api: str, model: str) -> int | None:
    """Where the model's long-context input rate starts, if it has one today."""
    card = TABLE.lookup(_pricing_provider(api, model), model)
    rate = card.resolve(datetime.now(UTC)).get("input_mtok")
    return rate.tiers[0][0] if isinstance(rate, Tiered) else None


# ---------------------------------------------------------------- requests


@dataclass
class Request:
    api: str  # "chat" | "responses" | "anthropic" | "gemini"
    model: str
    body: dict[str, Any]
    stream: bool = False
    switches: dict[str, Any] = field(default_factory=dict)  # the fake provider's behaviour

    @property
    def path(self) -> str:
        if self.api == "chat":
            return "/v1/chat/completions"
        if self.api == "responses":
            return "/v1/responses"
        if self.api == "anthropic":
            return "/v1/messages"
        action = "streamGenerateContent?alt=sse" if self.stream else "generateContent"
        return f"/v1beta/models/{self.model}:{action}"


def _filler(chars: int) -> str:
    # "1a1a..." is one o200k token per character: the fake's count moves with the length.
    return ("1a" * (chars // 2 + 1))[:chars]


def with_input_tokens(build, target: int) -> dict[str, Any]:
    """``build(text)``'s body, its filler sized so the fake counts ``target`` input tokens
    (or, when no size gives exactly that, the fewest above it)."""
    chars = max(0, target - (prompt_tokens(build(_filler(target))) - target))
    sizes = range(max(0, chars - 4), chars + 5)
    bodies = [(prompt_tokens(body) - target, body) for body in map(build, map(_filler, sizes))]
    above = [(miss, body) for miss, body in bodies if miss >= 0]
    return min(above, key=lambda pair: pair[0])[1] if above else bodies[-1][1]


def _text(draw, api: str, model: str) -> tuple[str | None, int | None]:
    """A short prompt, or (None, target) for one sized around the long-context start."""
    start = _context_start(api, model)
    if start is not None and draw(st.integers(0, 2)) == 0:
        return None, start + draw(st.integers(-2, 2))
    return draw(st.sampled_from(["hello", "Summarise the news. " * 40, "数字 1234 🙂 " * 30])), None


def _sized(build, text: str | None, target: int | None) -> dict[str, Any]:
    return build(text) if target is None else with_input_tokens(build, target)


def _tier(draw, api: str, model: str) -> str | None:
    """No tier (the account's default), or one the table prices ("auto" where tiers exist)."""
    tiers = _tiers(api, model)
    return draw(st.sampled_from([None, "auto", *tiers] if tiers else [None]))


@st.composite
def chat_requests(draw) -> Request:
    model = draw(st.sampled_from(CHAT_MODELS))
    text, target = _text(draw, "chat", model)
    extra: dict[str, Any] = {}
    if (tier := _tier(draw, "chat", model)) is not None:
        extra["service_tier"] = tier
    if (cap := draw(st.one_of(st.none(), st.integers(1, 64)))) is not None:
        extra["max_completion_tokens"] = cap
    stream = draw(st.booleans())

    def build(t: str) -> dict[str, Any]:
        return {"model": model, "messages": [{"role": "user", "content": t}],
                "stream": stream, **extra}

    return Request("chat", model, _sized(build, text, target), stream)


@st.composite
def responses_requests(draw) -> Request:
    model = draw(st.sampled_from(RESPONSES_MODELS))
    text, target = _text(draw, "responses", model)
    extra: dict[str, Any] = {}
    if (tier := _tier(draw, "responses", model)) is not None:
        extra["service_tier"] = tier
    if (cap := draw(st.one_of(st.none(), st.integers(1, 64)))) is not None:
        extra["max_output_tokens"] = cap
    tools = []
    if draw(st.booleans()):
        tools.append({"type": draw(st.sampled_from(["web_search", "web_search_preview"]))})
    if draw(st.booleans()):
        tools.append({"type": "file_search", "vector_store_ids": ["vs_fake"]})
    if tools:
        extra["tools"] = tools
        if (calls := draw(st.one_of(st.none(), st.integers(1, 10)))) is not None:
            extra["max_tool_calls"] = calls
    stream = draw(st.booleans())

    def build(t: str) -> dict[str, Any]:
        return {"model": model, "input": [{"role": "user", "content": t}], "stream": stream,
                **extra}

    switches = {"web_search_calls": draw(st.integers(0, 20)),
                "file_search_calls": draw(st.integers(0, 6))}
    return Request("responses", model, _sized(build, text, target), stream, switches)


@st.composite
def anthropic_requests(draw) -> Request:
    model = draw(st.sampled_from(ANTHROPIC_MODELS))
    text, target = _text(draw, "anthropic", model)
    stream = draw(st.booleans())
    extra: dict[str, Any] = {"max_tokens": draw(st.integers(1, 64))}
    if (tier := draw(st.sampled_from([None, "auto", "standard_only"]))) is not None:
        extra["service_tier"] = tier
    if draw(st.booleans()):
        search: dict[str, Any] = {"type": "web_search_20250305", "name": "web_search"}
        if (uses := draw(st.one_of(st.none(), st.integers(1, 10)))) is not None:
            search["max_uses"] = uses
        extra["tools"] = [search]
    ttl = draw(st.sampled_from([None, "5m", "1h"]))
    rules = "You answer in French, briefly. " * draw(st.integers(1, 60))
    system: dict[str, Any] = {"type": "text", "text": rules}
    if ttl is not None:
        system["cache_control"] = {"type": "ephemeral", "ttl": ttl}

    def build(t: str) -> dict[str, Any]:
        return {"model": model, "system": [system],
                "messages": [{"role": "user", "content": t}], "stream": stream, **extra}

    switches = {"web_search_calls": draw(st.integers(0, 20))}
    return Request("anthropic", model, _sized(build, text, target), stream, switches)


@st.composite
def gemini_requests(draw) -> Request:
    model = draw(st.sampled_from(GEMINI_MODELS))
    text, target = _text(draw, "gemini", model)
    stream = draw(st.booleans())
    config = {}
    if (cap := draw(st.one_of(st.none(), st.integers(1, 64)))) is not None:
        config["maxOutputTokens"] = cap

    def build(t: str) -> dict[str, Any]:
        body: dict[str, Any] = {"contents": [{"role": "user", "parts": [{"text": t}]}]}
        return {**body, "generationConfig": config} if config else body

    return Request("gemini", model, _sized(build, text, target), stream)


@st.composite
def requests(draw) -> Request:
    request = draw(st.one_of(chat_requests(), responses_requests(), anthropic_requests(),
                             gemini_requests()))
    request.switches |= {
        "words": draw(st.integers(1, 40)),
        "reasoning_tokens": draw(st.integers(0, 20)),
        "cached_tokens": draw(st.sampled_from([0, 0, 3, 50])),
        # The account's own default tier: SpendGuard must pin the tier it priced.
        "account_service_tier": draw(st.sampled_from(["default", "priority"])),
    }
    return request


# ---------------------------------------------------------------- running one call


@dataclass
class Outcome:
    status: int
    body: bytes
    reserved_cents: int | None
    row: Any  # the charge's ledger row
    billed: BilledCall | None  # the fake provider's bill for the call
    sent: dict[str, Any] | None  # the body the provider received


async def run(http, relay_url: str, pool, agent_id, fake: FakeProvider,
              request: Request) -> Outcome:
    fake.reset()
    fake.configure(**request.switches)
    async with http.post(relay_url + request.path, json=request.body,
                         headers=agent_headers(agent_id)) as r:
        raw = await r.read()
        reserved = r.headers.get("x-spendguard-reserved-cents")
    if r.status != 200:
        return Outcome(r.status, raw, None, None, None, None)
    [row] = await charges(pool, agent_id)
    billed = await _billed(fake)
    sent = fake.requests[-1]["body"] if fake.requests else None
    return Outcome(r.status, raw, int(reserved) if reserved else None, row, billed, sent)


async def _billed(fake: FakeProvider) -> BilledCall:
    """The one call the fake billed, once it ended (a stream ends just after its last byte)."""
    for _ in range(200):
        calls = list(fake.billed.calls)
        if calls and all(call.done for call in calls):
            assert len(calls) == 1, calls
            return calls[0]
        await asyncio.sleep(0.01)
    raise AssertionError(f"the fake never finished billing: {list(fake.billed.calls)}")


async def assert_strict(pool, agent_id, request: Request, outcome: Outcome) -> None:
    """Bill ≤ hold, charge == bill (to 1 µ¢), no overrun, ledger invariants."""
    assert outcome.status == 200, (outcome.status, outcome.body[:500], request.api,
                                   request.model, request.switches)
    row, billed = outcome.row, outcome.billed
    assert billed.cost_microcents is not None, f"the oracle cannot price {billed}"
    why = (request.api, request.model, request.switches, billed,
           json.dumps(row["billing_breakdown"])[:1500])
    hold = row["wcec_microcents"]
    assert billed.cost_microcents <= hold, ("the provider billed more than the hold", *why)
    assert hold <= outcome.reserved_cents * MICROCENTS_PER_CENT
    assert abs(row["realized_microcents"] - billed.cost_microcents) <= 1, (
        "SpendGuard charged something else than the provider billed", *why)
    assert -row["delta_microcents"] == row["realized_microcents"]
    assert row["overrun_microcents"] == 0, why
    figures = await assert_ledger_invariants(pool, agent_id)
    assert figures["overrun"] == 0


# ---------------------------------------------------------------- the property


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(request=requests())
async def test_the_provider_never_bills_more_than_the_hold(http, relay_url, pool,
                                                           budgeted_agent, fake, request):
    agent_id = await budgeted_agent(limit_cents=BUDGET_CENTS)
    outcome = await run(http, relay_url, pool, agent_id, fake, request)
    await assert_strict(pool, agent_id, request, outcome)


# ---------------------------------------------------------------- the cases


MSG = [{"role": "user", "content": "hello there"}]


@pytest.mark.parametrize("api", ["chat", "responses"])
async def test_an_account_default_of_priority_is_pinned_to_the_priced_tier(
    http, relay_url, pool, budgeted_agent, fake, api
):
    """The request omits service_tier and the account's default is priority: SpendGuard
    priced the standard tier, so it must ask for it; the provider then runs and bills it."""
    agent_id = await budgeted_agent(limit_cents=BUDGET_CENTS)
    body = ({"model": "gpt-5.4", "messages": MSG} if api == "chat"
            else {"model": "gpt-5.4", "input": "hello there"})
    request = Request(api, "gpt-5.4", body, switches={"account_service_tier": "priority"})
    outcome = await run(http, relay_url, pool, agent_id, fake, request)
    assert outcome.status == 200, outcome.body[:500]
    assert outcome.sent.get("service_tier") not in (None, "auto"), outcome.sent
    assert outcome.billed.service_tier == outcome.sent["service_tier"] == "default"
    await assert_strict(pool, agent_id, request, outcome)


async def test_anthropic_priority_capacity_is_not_used_unpriced(
    http, relay_url, pool, budgeted_agent, fake
):
    """Anthropic runs `auto` (the default) on Priority Tier when the account has it; the
    table has no priority price, so SpendGuard must send standard_only."""
    agent_id = await budgeted_agent(limit_cents=BUDGET_CENTS)
    body = {"model": "claude-haiku-4-5", "max_tokens": 20, "messages": MSG}
    request = Request("anthropic", "claude-haiku-4-5", body,
                      switches={"account_service_tier": "priority"})
    outcome = await run(http, relay_url, pool, agent_id, fake, request)
    assert outcome.status == 200, outcome.body[:500]
    assert outcome.sent.get("service_tier") == "standard_only", outcome.sent
    assert outcome.billed.service_tier == "standard"
    await assert_strict(pool, agent_id, request, outcome)


@pytest.mark.parametrize("api", ["chat", "responses"])
async def test_a_tier_without_a_price_is_refused_before_any_hold(
    http, relay_url, pool, budgeted_agent, fake, api
):
    assert "priority" not in _tiers(api, "gpt-5-nano")
    agent_id = await budgeted_agent(limit_cents=BUDGET_CENTS)
    body = ({"model": "gpt-5-nano", "messages": MSG} if api == "chat"
            else {"model": "gpt-5-nano", "input": "hello there"})
    outcome = await run(http, relay_url, pool, agent_id, fake,
                        Request(api, "gpt-5-nano", {**body, "service_tier": "priority"}))
    assert outcome.status == 400, outcome.body[:500]
    error = json.loads(outcome.body)["error"]
    assert error["type"] == "invalid_request" and "service_tier" in error["message"], error
    assert fake.requests == []
    assert await pool.fetchval("SELECT count(*) FROM ledger_entries WHERE agent_id = $1"
                               " AND kind = 'charge'", agent_id) == 0
    assert await pool.fetchval("SELECT count(*) FROM holds WHERE agent_id = $1", agent_id) == 0
    await assert_ledger_invariants(pool, agent_id)


async def test_a_one_hour_cache_write_is_held_at_the_one_hour_rate(
    http, relay_url, pool, budgeted_agent, fake
):
    """claude-haiku-4-5 writes the 1h cache at 200 µ¢ a token (5m: 125, input: 100)."""
    agent_id = await budgeted_agent(limit_cents=BUDGET_CENTS)
    rules = "You answer every question in French, politely and briefly. " * 500
    body = {
        "model": "claude-haiku-4-5", "max_tokens": 1,
        "system": [{"type": "text", "text": rules,
                    "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
        "messages": MSG,
    }
    request = Request("anthropic", "claude-haiku-4-5", body, switches={"words": 1})
    outcome = await run(http, relay_url, pool, agent_id, fake, request)
    assert outcome.status == 200, outcome.body[:500]
    billed = outcome.billed
    assert billed.cache_write_1h_tokens > 0.9 * prompt_tokens(body)
    # The hold's input part pays every real input token at least the 1h write rate (a hold
    # at the 5m rate falls short even with the estimate's 1.5x margin: 125 x 1.5 < 200).
    output_hold = 500  # max_tokens 1 at 500 µ¢
    assert outcome.row["wcec_microcents"] - output_hold >= 200 * prompt_tokens(body)
    await assert_strict(pool, agent_id, request, outcome)


SEARCH_CASES = {
    "responses, no cap of its own": ("responses", {"model": "gpt-5.4", "input": "news?",
                                                   "tools": [{"type": "web_search"}]}),
    "responses, max_tool_calls 8": ("responses", {"model": "gpt-5.4", "input": "news?",
                                                  "tools": [{"type": "web_search"}],
                                                  "max_tool_calls": SEARCH_CAP}),
    "anthropic, no max_uses": ("anthropic", {
        "model": "claude-haiku-4-5", "max_tokens": 50, "messages": MSG,
        "tools": [{"type": "web_search_20250305", "name": "web_search"}]}),
    "anthropic, max_uses 8": ("anthropic", {
        "model": "claude-haiku-4-5", "max_tokens": 50, "messages": MSG,
        "tools": [{"type": "web_search_20250305", "name": "web_search",
                   "max_uses": SEARCH_CAP}]}),
}


@pytest.mark.parametrize("case", sorted(SEARCH_CASES))
@pytest.mark.parametrize("stream", [False, True])
async def test_a_model_wanting_120_searches_is_stopped_at_the_cap(
    http, relay_url, pool, budgeted_agent, fake, case, stream
):
    api, body = SEARCH_CASES[case]
    agent_id = await budgeted_agent(limit_cents=BUDGET_CENTS)
    request = Request(api, body["model"], {**body, "stream": stream}, stream,
                      switches={"web_search_calls": 120, "words": 5})
    outcome = await run(http, relay_url, pool, agent_id, fake, request)
    assert outcome.status == 200, outcome.body[:500]
    assert 1 <= outcome.billed.web_search_calls <= SEARCH_CAP, outcome.sent
    await assert_strict(pool, agent_id, request, outcome)


@pytest.mark.parametrize(("api", "model"), [
    ("chat", "gpt-5.4"), ("responses", "gpt-5.4"), ("anthropic", "claude-haiku-5-5"),
    ("gemini", "gemini-2.5-pro"), ("chat", "grok-4.3"),
])
@pytest.mark.parametrize("offset", [0, 1])
async def test_a_prompt_at_and_just_above_the_long_context_start(
    http, relay_url, pool, budgeted_agent, fake, api, model, offset
):
    """Tiers apply strictly above their start: at the start the base rate, one token more
    the long-context rate for the whole call."""
    start = _context_start(api, model)
    assert start is not None

    def build(text: str) -> dict[str, Any]:
        if api == "chat":
            return {"model": model, "messages": [{"role": "user", "content": text}]}
        if api == "responses":
            return {"model": model, "input": text}
        if api == "anthropic":
            return {"model": model, "max_tokens": 50,
                    "messages": [{"role": "user", "content": text}]}
        return {"contents": [{"role": "user", "parts": [{"text": text}]}]}

    body = with_input_tokens(build, start + offset)
    assert prompt_tokens(body) == start + offset
    agent_id = await budgeted_agent(limit_cents=BUDGET_CENTS)
    request = Request(api, model, body, switches={"words": 10})
    outcome = await run(http, relay_url, pool, agent_id, fake, request)
    assert outcome.billed.input_tokens == start + offset
    await assert_strict(pool, agent_id, request, outcome)


@pytest.mark.parametrize("model", ["gemini-2.5-flash", "gemini-3-flash-preview"])
async def test_gemini_grounding_is_bounded_and_charged_as_google_bills_it(
    http, relay_url, pool, budgeted_agent, fake, model
):
    """Gemini 2.x bills one fee per grounded prompt, Gemini 3 one per search query, with no
    cap the request can set: SpendGuard either refuses before holding anything, or holds
    enough and charges the bill."""
    agent_id = await budgeted_agent(limit_cents=BUDGET_CENTS)
    body = {"contents": [{"role": "user", "parts": [{"text": "news?"}]}],
            "tools": [{"googleSearch": {}}]}
    request = Request("gemini", model, body, switches={"web_search_calls": 20, "words": 5})
    outcome = await run(http, relay_url, pool, agent_id, fake, request)
    if outcome.status == 400:  # refused: nothing reached the provider, nothing held
        assert fake.requests == []
        assert await pool.fetchval("SELECT count(*) FROM holds WHERE agent_id = $1",
                                   agent_id) == 0
        await assert_ledger_invariants(pool, agent_id)
        return
    await assert_strict(pool, agent_id, request, outcome)
