"""One budgeted provider call: preflight, reserve, forward, stream, settle — exactly once.

The order is the strict-budget contract (DESIGN §4-5): nothing reaches the provider before
its hold is durable; settlement runs in ``finally`` shielded from cancellation, so whatever
happens to the client, the upstream or this code, the hold is settled once. When the real
usage is unknown after the request was sent, the full hold is charged.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import io
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web

from spendguard_proxy import billing, ledger
from spendguard_proxy.errors import (
    AuthenticationError,
    BudgetLocked,
    InsufficientBudget,
    ProviderTimeout,
    ProviderUnavailable,
    UnpricedOption,
)
from spendguard_proxy.pricing.ratecard import RateCard
from spendguard_proxy.providers.base import Adapter, Preflight, ThinkingBudgetUnaffordable
from spendguard_proxy.server.exact_count import exact_input_tokens
from spendguard_proxy.server.keys import LEDGER, METRICS, POOL, PRICING, SETTINGS
from spendguard_proxy.server.middlewares import DATABASE_DOWN
from spendguard_proxy.server.telemetry import CALL_LOG, CallLog, response_model
from spendguard_proxy.server.upstream import session_for
from spendguard_proxy.settings import Mode, Settings
from spendguard_proxy.usage import Usage

log = logging.getLogger(__name__)

# A database blip should not turn a call with known usage into a full-hold charge.
SETTLE_RETRY_PAUSES_S = (0.1, 0.5, 2.0)
# Anthropic rejects a thinking budget under 1024 tokens; max_tokens must exceed it.
ANTHROPIC_MIN_THINKING_TOKENS = 1024
# Provider answer headers a client may see: the body's type, request ids (for support
# tickets), retry hints and processing time. Never cookies, organisation or project ids, or
# shared rate-limit counters, which would tell one tenant about the operator's account and
# the other tenants' traffic.
ANSWER_HEADERS = frozenset(
    {"content-type", "retry-after", "retry-after-ms", "x-request-id", "request-id",
     "openai-processing-ms", "x-should-retry"}
)
# Headers that pick which of the operator's organisations or projects pays: a tenant must not
# choose them in hosted mode, where the operator's key is used.
BILLING_SCOPE_HEADERS = ("openai-organization", "openai-project")


@dataclass(slots=True)
class Call:
    """One provider call as the routes hand it to the relay."""

    adapter: Adapter
    tenant_id: uuid.UUID
    agent_id: uuid.UUID
    run_id: uuid.UUID
    body: dict[str, Any]
    request_sha256: str
    model: str | None = None  # from the URL (Gemini)
    stream: bool | None = None  # from the URL (Gemini :streamGenerateContent)
    # Reference-shape routes: turns the provider's JSON answer (and the billing breakdown)
    # into the answer the client expects.
    shape_answer: Callable[[Any, dict[str, Any] | None], Any] | None = None


@dataclass(slots=True)
class Outcome:
    """What settlement needs to know; filled in as the call progresses."""

    sent: bool = False  # the request may have reached the provider
    usage: Usage | None = None
    output_tokens: int = 0
    reason: str = "proxy_error"
    voided: bool = False  # the provider refused before generating: charge nothing
    settled: bool = False
    breakdown: dict[str, Any] | None = None
    settlement: ledger.Settlement | None = None  # for the access log and traces
    response_model: str | None = None


@dataclass(frozen=True, slots=True)
class Priced:
    """How the call was priced: the card, the call's time (prices in force then) and quote."""

    card: RateCard
    at: datetime
    quote: billing.Quote


async def relay(request: web.Request, call: Call) -> web.StreamResponse:
    app = request.app
    settings: Settings = app[SETTINGS]
    record = request[CALL_LOG] = CallLog(call)  # read by server/telemetry.py at the end
    pre = call.adapter.preflight(call.body, model=call.model, stream=call.stream,
                                 forwarded=settings.forwarded_fields, headers=request.headers)
    record.pre = pre
    card = app[PRICING].table.lookup(call.adapter.pricing_provider, pre.model)
    api_key = provider_key(settings, call.adapter, request)
    pre = _pin_defaults(pre, card)
    prices = card.resolve(datetime.now(UTC), pre.price_context)
    try:
        reservation, priced = await _price_and_reserve(request, call, pre, card, prices, api_key)
    except (InsufficientBudget, BudgetLocked) as exc:
        app[METRICS].rejected(exc.status)
        raise
    app[METRICS].reservation(call.adapter.pricing_provider)
    record.reservation = reservation
    outcome = record.outcome = Outcome()
    heartbeat = asyncio.create_task(_heartbeat(app, reservation.hold_id))
    try:
        return await _forward(request, call, pre, reservation, api_key, outcome, priced)
    finally:
        heartbeat.cancel()
        record.settling = asyncio.ensure_future(
            _settle(app, call, pre, priced, reservation, outcome))
        await asyncio.shield(record.settling)


# Options whose provider default may be a dearer variant: where the model prices the option,
# the standard value is priced and sent (Anthropic's workspace default geo may be "us").
_PINNED_DEFAULTS = {"inference_geo": "global"}


def _pin_defaults(pre: Preflight, card: RateCard) -> Preflight:
    options = card.option_values
    pinned = {k: v for k, v in _PINNED_DEFAULTS.items()
              if k not in pre.price_context and v in options.get(k, ())}
    if not pinned:
        return pre
    return dataclasses.replace(pre, price_context={**pre.price_context, **pinned})


async def _price_and_reserve(
    request: web.Request, call: Call, pre: Preflight, card: RateCard, prices, api_key
) -> tuple[ledger.Reservation, Priced]:
    """Reserve by the input bound; when that hold does not fit, by the provider's exact count
    (Anthropic and Gemini count for free) — strict always, exact where it matters."""
    app = request.app
    at = datetime.now(UTC)
    quote, input_tokens = _quote(app[SETTINGS], card, prices, pre, pre.input_tokens)
    try:
        reservation = await _reserve(app, call, pre, card, quote, input_tokens)
    except InsufficientBudget:
        exact = await exact_input_tokens(app, call.adapter, call.body, api_key, pre.model,
                                         client_headers=request.headers)
        if exact is None or exact >= pre.input_tokens:
            raise
        quote, input_tokens = _quote(app[SETTINGS], card, prices, pre, exact)
        reservation = await _reserve(app, call, pre, card, quote, input_tokens)
    return reservation, Priced(card, at, quote)


def _quote(settings: Settings, card: RateCard, prices, pre: Preflight, input_tokens: int):
    # An exact count below the media bounds caps them too: no part exceeds the whole.
    media = {m: min(n, input_tokens) for m, n in pre.media_tokens.items()}
    if pre.input_unbounded:
        # Input SpendGuard cannot see: stored context (previous_response_id, conversation,
        # cachedContent, file ids) may fill the model's whole context window, and tool
        # results come on top of what is visible.
        input_tokens = max(input_tokens + settings.unseen_input_tokens, card.context_window or 0)
    quote = billing.worst_case_quote(
        card, prices=prices, input_tokens=input_tokens, media_tokens=media,
        cache_write=pre.cache_write, fees=pre.fees,
    )
    return quote, input_tokens


def provider_key(settings: Settings, adapter: Adapter, request: web.Request) -> str | None:
    configured = getattr(settings, adapter.api_key_setting)
    if configured:
        return configured
    if settings.mode is Mode.sidecar:
        own = adapter.client_api_key(request.headers)
        if own:
            return own  # bring your own key, per request
        raise AuthenticationError(
            f"No provider key: set {adapter.api_key_env} for SpendGuard, or send your own "
            "provider key with the request"
        )
    raise ProviderUnavailable(f"{adapter.api_key_env} is not configured on this deployment")


async def _reserve(
    app, call: Call, pre: Preflight, card: RateCard, quote, input_tokens: int
) -> ledger.Reservation:
    wanted = _max_tokens_wanted(app[SETTINGS], card, pre.requested_max_tokens)
    min_tokens = 1
    if pre.thinking_budget is not None:
        min_tokens = ANTHROPIC_MIN_THINKING_TOKENS + 1
    # Several choices (chat `n`) each produce up to max_tokens: price output per choice.
    rate = quote.output_rate * max(1, pre.choices)
    reserving = asyncio.ensure_future(app[LEDGER].reserve(
        ledger.ReserveRequest(
            tenant_id=call.tenant_id,
            agent_id=call.agent_id,
            run_id=call.run_id,
            fixed_microcents=quote.fixed_microcents,
            output_rate=rate,
            max_tokens=wanted,
            min_tokens=min_tokens,
            provider=call.adapter.pricing_provider,
            model=card.model,  # canonical: what allowed_models patterns match
            input_tokens=input_tokens,
        )
    ))
    try:
        return await asyncio.shield(reserving)
    except asyncio.CancelledError:
        # Cancelled while the hold was being written: void it once it lands, so nobody pays
        # the full hold (at expiry) for a call that never went out.
        reserving.add_done_callback(lambda done: _void_orphan(app, call, done))
        raise


def _max_tokens_wanted(settings: Settings, card: RateCard, requested: int | None) -> int:
    """The client's value within the model's cap; with no known cap the client's value as
    sent (the provider enforces its own), and with neither the configured default."""
    cap = card.max_output_tokens
    if requested is None:
        return cap or settings.default_max_tokens
    return min(requested, cap) if cap else requested


def _void_orphan(app, call: Call, reserving: asyncio.Future) -> None:
    if reserving.cancelled() or reserving.exception() is not None:
        return
    app[LEDGER].settle_soon(
        call.agent_id, reserving.result().hold_id, realized_microcents=0, input_tokens=0,
        output_tokens=0, termination_reason="cancelled_before_send",
    )


async def _heartbeat(app, hold_id: uuid.UUID) -> None:
    ttl_s = app[SETTINGS].lock_ttl_seconds
    while True:
        await asyncio.sleep(ttl_s / 3)
        try:
            await ledger.heartbeat(app[POOL], hold_id, ttl_s=ttl_s)
        except Exception as exc:  # noqa: BLE001 — a missed beat must not kill the call
            log.warning("heartbeat for hold %s failed: %r", hold_id, exc)


def _reservation_headers(call: Call, res: ledger.Reservation) -> dict[str, str]:
    return {
        "x-spendguard-run-id": str(call.run_id),
        "x-spendguard-reserved-cents": str(ledger.to_cents_ceil(res.hold_microcents)),
    }


async def _forward(
    request: web.Request,
    call: Call,
    pre: Preflight,
    res: ledger.Reservation,
    api_key: str | None,
    outcome: Outcome,
    priced: Priced,
) -> web.StreamResponse:
    app = request.app
    settings: Settings = app[SETTINGS]
    try:
        url, headers, data = call.adapter.build_upstream(
            call.body,
            max_tokens=res.max_tokens,
            stream=pre.stream,
            base_url=getattr(settings, call.adapter.base_url_setting),
            api_key=api_key,
            client_headers=request.headers,
            model=pre.model,
            price_context=pre.price_context,
        )
    except ThinkingBudgetUnaffordable as exc:
        outcome.voided = True
        raise InsufficientBudget(f"Insufficient budget: {exc}") from None
    headers["Accept-Encoding"] = "identity"  # we must read the tokens we forward
    if settings.mode is Mode.hosted:
        for name in BILLING_SCOPE_HEADERS:
            headers.pop(name, None)
    session = session_for(app, call.adapter.pricing_provider)
    started = time.perf_counter()
    try:
        outcome.sent = True
        upstream = await asyncio.wait_for(
            session.post(url, data=_payload(data), headers=headers),
            settings.upstream_first_byte_timeout_s,
        )
    except aiohttp.ClientConnectorError as exc:
        outcome.sent = False  # never reached the provider: nothing to pay for
        outcome.reason = "upstream_unreachable"
        raise ProviderUnavailable(f"Cannot reach the provider: {exc}") from None
    except (TimeoutError, aiohttp.ServerTimeoutError):
        outcome.reason = "upstream_timeout"
        raise ProviderTimeout("The provider did not answer in time") from None
    except aiohttp.ClientError as exc:
        outcome.reason = "upstream_disconnect"
        raise ProviderUnavailable(f"The provider connection failed: {exc}") from None
    async with upstream:
        app[METRICS].upstream_latency(call.adapter.pricing_provider, time.perf_counter() - started)
        if upstream.status >= 400:
            return await _pass_through_error(upstream, call, res, outcome)
        if pre.stream:
            return await _stream(request, upstream, call, pre, res, outcome)
        return await _whole(request, upstream, call, pre, res, outcome, priced)


def _payload(data: bytes):
    # aiohttp writes a bytes body in one piece and warns past 1 MiB; a file-like body goes out
    # in chunks, so a large prompt does not hold the loop for its whole copy.
    return io.BytesIO(data) if len(data) > aiohttp.payload.TOO_LARGE_BYTES_BODY else data


async def _pass_through_error(upstream, call, res, outcome: Outcome) -> web.Response:
    """The provider's own error, status and body unchanged, so the SDK raises it."""
    body = await upstream.read()
    outcome.voided = True
    outcome.reason = f"upstream_status_{upstream.status}"
    headers = _copy_headers(upstream)
    headers.update(_reservation_headers(call, res))
    return web.Response(status=upstream.status, body=body, headers=headers)


def _copy_headers(upstream) -> dict[str, str]:
    return {k: v for k, v in upstream.headers.items() if k.lower() in ANSWER_HEADERS}


async def _whole(request, upstream, call, pre, res, outcome: Outcome, priced) -> web.Response:
    try:
        body = await upstream.read()
    except (TimeoutError, aiohttp.ServerTimeoutError):
        outcome.reason = "upstream_timeout"
        raise ProviderTimeout("The provider stopped answering mid-response") from None
    except aiohttp.ClientError as exc:
        outcome.reason = "upstream_disconnect"
        raise ProviderUnavailable(f"The provider connection failed: {exc}") from None
    answer = _json_or_none(body)
    outcome.response_model = response_model(answer)
    outcome.usage = call.adapter.usage_from_json(answer, pre) if answer is not None else None
    outcome.reason = "complete" if outcome.usage is not None else "usage_missing"
    settlement = await _settle(request.app, call, pre, priced, res, outcome)
    headers = _copy_headers(upstream)
    headers.update(_reservation_headers(call, res))
    headers["x-spendguard-remaining-cents"] = str(
        ledger.to_cents_floor(settlement.remaining_microcents)
    )
    if call.shape_answer is not None and answer is not None:
        shaped = call.shape_answer(answer, outcome.breakdown)
        headers.pop("Content-Type", None)
        return web.json_response(shaped, status=upstream.status, headers=headers)
    return web.Response(status=upstream.status, body=body, headers=headers)


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


async def _stream(request, upstream, call, pre, res, outcome: Outcome) -> web.StreamResponse:
    counter = call.adapter.new_stream_counter(pre, pre.client_wants_usage)
    response = web.StreamResponse(status=upstream.status, headers=_copy_headers(upstream))
    response.headers.update(_reservation_headers(call, res))
    response.headers["Cache-Control"] = "no-cache"
    await response.prepare(request)
    outcome.reason = "upstream_disconnect"
    output_limit = res.max_tokens * max(1, pre.choices)  # each choice may use max_tokens
    try:
        async for chunk in upstream.content.iter_any():
            if await _forward_events(response, counter, chunk, output_limit):
                # The provider ignores the clamp: stop it at the event that crossed the hold.
                outcome.output_tokens = counter.output_tokens
                outcome.reason = "budget_cutoff"
                outcome.usage = None
                await response.write(counter.cutoff_events())
                upstream.close()
                request.app[METRICS].cutoff(call.adapter.pricing_provider)
                break
            outcome.output_tokens = counter.output_tokens
            if counter.usage is not None:
                outcome.usage = counter.usage
        else:
            for event in counter.finish():
                await response.write(event)
            if counter.usage is not None:
                outcome.usage = counter.usage
            outcome.reason = "complete" if counter.done else "upstream_disconnect"
    except (TimeoutError, aiohttp.ServerTimeoutError):
        outcome.reason = "upstream_idle_timeout"
    except aiohttp.ClientPayloadError:
        outcome.reason = "upstream_disconnect"
    except (ConnectionResetError, aiohttp.ClientConnectionResetError):
        outcome.reason = "client_disconnect"
        upstream.close()  # stop the provider generating what nobody will read
        return response
    with contextlib.suppress(ConnectionResetError, aiohttp.ClientConnectionResetError):
        await response.write_eof()
    return response


async def _forward_events(response, counter, chunk: bytes, output_limit: int) -> bool:
    """Forward ``chunk``'s events one by one; True at the first that takes the counted output
    past ``output_limit`` (the events after it are neither parsed nor sent)."""
    for event in counter.events(chunk):
        await response.write(event)
        if counter.output_tokens > output_limit and not counter.done:
            return True
    return False


async def _settle(app, call, pre, priced, res, outcome: Outcome) -> ledger.Settlement | None:
    if outcome.settled:
        return None
    outcome.settled = True
    realized, breakdown, usage = _realized(priced, pre, res, outcome)
    outcome.breakdown = breakdown
    settings: Settings = app[SETTINGS]
    settle = functools.partial(
        app[LEDGER].settle,
        call.agent_id,
        res.hold_id,
        realized_microcents=realized,
        input_tokens=usage.input_tokens if usage else pre.input_tokens,
        output_tokens=usage.output_tokens if usage else outcome.output_tokens,
        termination_reason=outcome.reason,
        billing_breakdown=breakdown,
        request_sha256=call.request_sha256,
        content=call.body if settings.capture_content else None,
    )
    for attempt, pause_s in enumerate((*SETTLE_RETRY_PAUSES_S, None)):
        try:
            settlement = await settle()  # idempotent per hold: a retry never charges twice
            break
        except DATABASE_DOWN as exc:
            if pause_s is None:
                # The hold stays, expires and is charged in full: never less than owed.
                log.error("settlement of hold %s failed %d times (%r); it will be charged in "
                          "full on expiry", res.hold_id, attempt + 1, exc)
                raise
            await asyncio.sleep(pause_s)
    outcome.settlement = settlement
    if settlement.overrun_microcents:
        log.error(
            "OVERRUN agent=%s hold=%s realized=%d µ¢ exceeds what the budget could cover by %d µ¢",
            call.agent_id, res.hold_id, realized, settlement.overrun_microcents,
        )
    app[METRICS].charged(
        call.adapter.pricing_provider, settlement.charged_microcents, settlement.overrun_microcents
    )
    return settlement


def _realized(priced: Priced, pre: Preflight, res: ledger.Reservation, outcome: Outcome):
    if outcome.voided or not outcome.sent:
        return 0, {"rule": "voided: the provider generated nothing billable"}, None
    if outcome.usage is not None:
        context = billing.settled_context(pre.price_context, outcome.usage.service_tier)
        try:
            prices = priced.card.resolve(priced.at, context)
        except UnpricedOption as exc:
            # The provider ran the call on a tier we have no price for: charge the hold.
            log.error("hold %s: %s; charging the full hold", res.hold_id, exc)
        else:
            charge = billing.cost(priced.card, outcome.usage, prices)
            return charge.microcents, charge.breakdown, outcome.usage
    # Unknown usage: the full hold, or what the forwarded output already cost if more (the
    # provider ignored the clamp): the excess is then recorded as overrun, never hidden.
    counted = priced.quote.fixed_microcents + billing.output_cost_microcents(
        priced.quote, outcome.output_tokens
    )
    breakdown = {"rule": "full hold: final usage unknown", "reason": outcome.reason}
    if counted > res.hold_microcents:
        breakdown = {"rule": "counted output exceeds the hold", "reason": outcome.reason,
                     "counted_output_tokens": outcome.output_tokens}
    return max(res.hold_microcents, counted), breakdown, None
