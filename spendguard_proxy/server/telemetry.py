"""Per-request telemetry: one JSON access-log line, and OpenTelemetry spans when configured.

Wiring (before the app is frozen, inside ``build_app``, after ``setup_metrics``)::

    setup_telemetry(app)

inserts ``telemetry_middleware`` as the outermost middleware, so it sees the status the
client got and runs after everything else, settlement included: the relay settles in its
``finally`` before its handler returns, streams too. The relay hands over what it knows about
a provider call through ``request[CALL_LOG]`` (a ``CallLog`` it fills in as the call
progresses); this module only reads it, once, at the end.

What is logged is chosen field by field: never a header, a query string, a raw path (a
Gemini ``?key=`` or an id in a URL) or a byte of a body, and never an exception's message
(parser errors quote the body). The route is the router's pattern, as in metrics.py.

Traces (``OTEL_EXPORTER_OTLP_ENDPOINT``) follow the OpenTelemetry GenAI semantic
conventions: a SERVER span per request and a CLIENT span per provider call, both built after
the fact from timestamps, so the request path carries no span objects. The SDK is imported
only when the variable is set (``pip install 'spendguard-proxy[otel]'``).
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import logging
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from spendguard_proxy.errors import SpendGuardError
from spendguard_proxy.server.auth import TENANT
from spendguard_proxy.server.keys import SETTINGS
from spendguard_proxy.server.metrics import CLIENT_CLOSED_STATUS, UNMATCHED_ROUTE
from spendguard_proxy.settings import Mode, Settings

if TYPE_CHECKING:
    from spendguard_proxy.ledger import Reservation
    from spendguard_proxy.providers.base import Preflight
    from spendguard_proxy.server.relay import Call, Outcome

log = logging.getLogger(__name__)

ACCESS_LOGGER = "spendguard.access"
# Client-chosen strings (the model name) are cut to this length in logs and spans.
TEXT_MAX_CHARS = 200

# OpenTelemetry GenAI semantic conventions: gen_ai.provider.name (current) and gen_ai.system
# (its deprecated predecessor, still what many backends read) by our pricing provider.
_PROVIDER_NAMES = {"openai": "openai", "grok": "x_ai", "anthropic": "anthropic",
                   "gemini": "gcp.gemini"}
_SYSTEM_NAMES = {"openai": "openai", "grok": "xai", "anthropic": "anthropic",
                 "gemini": "gcp.gemini"}
_OPERATIONS = {"openai_embeddings": "embeddings", "gemini": "generate_content"}  # else chat
# Terminations that are the call working as intended (a cut-off is the budget doing its job).
_OK_TERMINATIONS = frozenset({"complete", "budget_cutoff"})


@dataclass(slots=True)
class CallLog:
    """One provider call as the relay reports it; filled in as the call progresses."""

    call: Call
    started_ns: int = field(default_factory=time.time_ns)
    pre: Preflight | None = None  # once the body is classified
    reservation: Reservation | None = None  # once the hold is placed
    outcome: Outcome | None = None  # termination, usage, settlement
    settling: asyncio.Future | None = None  # the settlement, once it has started


CALL_LOG = web.RequestKey("call_log", CallLog)


def response_model(answer: Any) -> str | None:
    """The model a provider says answered (OpenAI, xAI, Anthropic ``model``; Gemini
    ``modelVersion``)."""
    if not isinstance(answer, dict):
        return None
    model = answer.get("model") or answer.get("modelVersion")
    return model[:TEXT_MAX_CHARS] if isinstance(model, str) else None


# -- what a request was -------------------------------------------------------------------


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED_ROUTE


def _uuid_or_none(value: Any) -> str | None:
    try:
        return str(uuid.UUID(value))
    except (ValueError, TypeError, AttributeError):
        return None


def _model(record: CallLog) -> str | None:
    if record.pre is not None:
        model = record.pre.model
    else:
        model = record.call.model or record.call.body.get("model")
    return model[:TEXT_MAX_CHARS] if isinstance(model, str) else None


def _call_fields(record: CallLog) -> dict[str, Any]:
    """The relay's side of the story: who, what, how much was held and charged, how it ended.
    Tokens are the provider's own figures (null when it did not report them)."""
    call, res, outcome = record.call, record.reservation, record.outcome
    settled = outcome.settlement if outcome is not None else None
    usage = outcome.usage if outcome is not None else None
    return {
        "agent": str(call.agent_id),
        "run": str(call.run_id),
        "provider": call.adapter.pricing_provider,
        "model": _model(record),
        "stream": record.pre.stream if record.pre is not None else None,
        "max_tokens": res.max_tokens if res is not None else None,
        "reserved_microcents": res.hold_microcents if res is not None else None,
        "charged_microcents": settled.charged_microcents if settled is not None else None,
        "overrun_microcents": settled.overrun_microcents if settled is not None else None,
        "input_tokens": usage.input_tokens if usage is not None else None,
        "output_tokens": usage.output_tokens if usage is not None else None,
        "termination": outcome.reason if outcome is not None else None,
    }


def access_entry(request: web.Request, status: int, started_ns: int, ms: float) -> dict:
    entry: dict[str, Any] = {
        "time": datetime.fromtimestamp(started_ns / 1e9, UTC).isoformat(
            timespec="milliseconds").replace("+00:00", "Z"),
        "method": request.method,
        "route": _route(request),
        "status": status,
        "ms": round(ms, 1),
    }
    tenant = request.get(TENANT)
    if tenant is not None and request.app[SETTINGS].mode is Mode.hosted:
        entry["tenant"] = str(tenant)
    record = request.get(CALL_LOG)
    if record is not None:
        entry.update(_call_fields(record))
    else:
        agent = _uuid_or_none(request.match_info.get("agent_id"))
        if agent is not None:
            entry["agent"] = agent
    return entry


# -- the middleware -------------------------------------------------------------------------


def _middleware(access: logging.Logger | None):
    @web.middleware
    async def telemetry_middleware(request: web.Request, handler) -> web.StreamResponse:
        started_ns = time.time_ns()
        started = time.perf_counter()
        status = 500  # anything escaping below unanswered is a server error
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except asyncio.CancelledError:
            status = int(CLIENT_CLOSED_STATUS)
            raise
        finally:
            ms = (time.perf_counter() - started) * 1000

            def emit(_settled: object = None) -> None:
                _emit(request, access, status, started_ns, ms)

            record = request.get(CALL_LOG)
            settling = record.settling if record is not None else None
            if settling is not None and not settling.done():
                settling.add_done_callback(emit)  # cancelled mid-settlement: log the settled
            else:
                emit()

    return telemetry_middleware


def _emit(request: web.Request, access: logging.Logger | None, status: int, started_ns: int,
          ms: float) -> None:
    try:
        _write(request, access, status, started_ns, ms)
    except Exception:  # telemetry must never turn an answered request into a 500
        log.exception("telemetry for %s %s failed", request.method, _route(request))


def _write(request: web.Request, access: logging.Logger | None, status: int, started_ns: int,
           ms: float) -> None:
    if access is not None and access.isEnabledFor(logging.INFO):
        entry = access_entry(request, status, started_ns, ms)
        access.info(json.dumps(entry, separators=(",", ":")))  # ASCII: any stderr takes it
    tracing = request.app.get(TRACING)
    if tracing is not None:
        tracing.record(request, status, started_ns, started_ns + int(ms * 1_000_000))


# -- the access log's output ----------------------------------------------------------------


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (as logging.lastResort does), so a
    replaced stderr (tests, daemons) never gets a write to a closed stream."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr


def _access_logger() -> logging.Logger:
    """The access logger; one bare JSON object per line on stderr unless whoever embeds the
    app gave it handlers of its own. It does not propagate, so a root handler's
    ``time LEVEL name`` prefix never wraps the JSON."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not logger.handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


# -- traces ---------------------------------------------------------------------------------


class Tracing:
    """An OpenTelemetry tracer provider of this app's own (not the process-global one) that
    batches spans to an OTLP/HTTP endpoint from a background thread."""

    def __init__(self, settings: Settings) -> None:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self._trace = trace
        self._propagator = TraceContextTextMapPropagator()
        # Sidecar: the agent's own trace continues through the proxy. Hosted: a tenant does
        # not choose the operator's trace ids or sampling.
        self._join_client_traces = settings.mode is Mode.sidecar
        self.provider = TracerProvider(resource=Resource.create({
            "service.name": settings.otel_service_name, "service.version": _version(),
        }))
        endpoint = settings.otel_exporter_otlp_endpoint.rstrip("/") + "/v1/traces"
        self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        self.tracer = self.provider.get_tracer("spendguard_proxy", _version())

    def record(self, request: web.Request, status: int, start_ns: int, end_ns: int) -> None:
        trace = self._trace
        route = _route(request)
        parent = (self._propagator.extract(request.headers) if self._join_client_traces
                  else None)
        server = self.tracer.start_span(
            f"{request.method} {route}", context=parent, kind=trace.SpanKind.SERVER,
            start_time=start_ns,
            attributes={"http.request.method": request.method, "http.route": route,
                        "http.response.status_code": status},
        )
        if status >= 500:
            server.set_attribute("error.type", str(status))
            server.set_status(trace.StatusCode.ERROR)
        record = request.get(CALL_LOG)
        if record is not None:
            self._provider_span(record, trace.set_span_in_context(server), status, end_ns)
        server.end(end_time=end_ns)

    def _provider_span(self, record: CallLog, parent, status: int, end_ns: int) -> None:
        trace = self._trace
        fields = _call_fields(record)
        provider = fields["provider"]
        operation = _OPERATIONS.get(record.call.adapter.name, "chat")
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": _PROVIDER_NAMES.get(provider, provider),
            "gen_ai.system": _SYSTEM_NAMES.get(provider, provider),
            "gen_ai.request.model": fields["model"],
            "gen_ai.response.model": (record.outcome.response_model
                                      if record.outcome is not None else None),
            "gen_ai.request.max_tokens": fields["max_tokens"],
            "gen_ai.usage.input_tokens": fields["input_tokens"],
            "gen_ai.usage.output_tokens": fields["output_tokens"],
            "spendguard.agent_id": fields["agent"],
            "spendguard.run_id": fields["run"],
            "spendguard.reserved_microcents": fields["reserved_microcents"],
            "spendguard.charged_microcents": fields["charged_microcents"],
            "spendguard.overrun_microcents": fields["overrun_microcents"],
            "spendguard.termination_reason": fields["termination"],
        }
        span = self.tracer.start_span(
            f"{operation} {fields['model'] or ''}".rstrip(), context=parent,
            kind=trace.SpanKind.CLIENT, start_time=record.started_ns,
            attributes={k: v for k, v in attributes.items() if v is not None},
        )
        termination = fields["termination"]
        if termination not in _OK_TERMINATIONS:
            # Refused before the call (402, 409, 400) or failed during it.
            span.set_attribute("error.type", termination or str(status))
            span.set_status(trace.StatusCode.ERROR)
        span.end(end_time=end_ns)

    def flush(self) -> bool:
        """Export what is batched now (blocking: call it from a thread)."""
        return self.provider.force_flush()


TRACING = web.AppKey("tracing", Tracing)


def _version() -> str:
    try:
        return importlib.metadata.version("spendguard-proxy")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


async def _tracing(app: web.Application) -> AsyncIterator[None]:
    tracing = Tracing(app[SETTINGS])
    app[TRACING] = tracing
    yield
    await asyncio.to_thread(tracing.provider.shutdown)  # flushes what is left


def _require_otel() -> None:
    try:
        import opentelemetry.exporter.otlp.proto.http.trace_exporter
        import opentelemetry.sdk.trace  # noqa: F401
    except ImportError:
        raise SpendGuardError(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but the OpenTelemetry SDK is not installed: "
            "pip install 'spendguard-proxy[otel]' (or unset the variable)"
        ) from None


def setup_telemetry(app: web.Application) -> None:
    """Install the access log and tracing the settings ask for (nothing when both are off)."""
    settings: Settings = app[SETTINGS]
    if settings.otel_exporter_otlp_endpoint:
        _require_otel()
        app.cleanup_ctx.append(_tracing)
    elif not settings.access_log:
        return
    access = _access_logger() if settings.access_log else None
    app.middlewares.insert(0, _middleware(access))
