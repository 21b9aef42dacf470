"""Prometheus metrics: HTTP traffic, money movements and the state of the app's resources.

Each application owns its own ``CollectorRegistry`` (under the ``METRICS`` key) instead of the
process-global one: tests and benchmarks run several apps in one process, and a global registry
would mix their counts (or refuse the second app's duplicate metric names).

Wiring (before the app is frozen, i.e. inside ``build_app``)::

    setup_metrics(app)

installs ``app[METRICS]`` (the key lives in server/keys.py), inserts the request-counting
middleware as the outermost one (so it sees the status the errors middleware produced) and adds
``GET /metrics``. The relay then calls
``request.app[METRICS].reservation(provider)`` and friends.

Label values are bounded on purpose: routes are the router's canonical patterns
(``/v1/agents/{agent_id}``), never raw paths, and providers come from our own registry, so a
caller cannot create new time series by sending odd URLs.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Iterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from spendguard_proxy.errors import AuthenticationError, NotFound
from spendguard_proxy.server.keys import METRICS, POOL, PRICING, SETTINGS
from spendguard_proxy.settings import Mode

UNMATCHED_ROUTE = "unmatched"
# nginx's convention for "the client went away before we answered".
CLIENT_CLOSED_STATUS = "499"

_HTTP_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_UPSTREAM_BUCKETS_S = (0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600)


class Metrics:
    """The counters the server and the relay update; one instance per application."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.http_requests = Counter(
            "spendguard_http_requests", "HTTP requests answered, by route pattern and status",
            ["method", "route", "status"], registry=r,
        )
        self.http_latency = Histogram(
            "spendguard_http_request_duration_seconds",
            "Time from request to the end of the answer (streams included)",
            ["method", "route"], buckets=_HTTP_BUCKETS_S, registry=r,
        )
        self.http_in_progress = Gauge(
            "spendguard_http_requests_in_progress", "Requests being handled now", registry=r,
        )
        self.reservations = Counter(
            "spendguard_reservations", "Holds placed on a budget before a provider call",
            ["provider"], registry=r,
        )
        self.rejections = Counter(
            "spendguard_budget_rejections",
            "Calls refused by the budget: 402 insufficient, 409 locked by another run",
            ["status"], registry=r,
        )
        self.charged_microcents = Counter(
            "spendguard_charged_microcents", "Money charged to budgets at settlement (µ¢)",
            ["provider"], registry=r,
        )
        self.overrun_microcents = Counter(
            "spendguard_overrun_microcents",
            "Cost a provider reported beyond what the call could be charged (µ¢); should be 0",
            ["provider"], registry=r,
        )
        self.overruns = Counter(
            "spendguard_overruns", "Settlements that recorded a non-zero overrun",
            ["provider"], registry=r,
        )
        self.cutoffs = Counter(
            "spendguard_stream_cutoffs", "Streams ended early because the hold was used up",
            ["provider"], registry=r,
        )
        self.upstream_latency_s = Histogram(
            "spendguard_upstream_latency_seconds", "Provider call duration as seen by the relay",
            ["provider"], buckets=_UPSTREAM_BUCKETS_S, registry=r,
        )

    # -- the relay's API: one call per event, integer money only ----------------------------

    def reservation(self, provider: str) -> None:
        self.reservations.labels(provider).inc()

    def rejected(self, status: int) -> None:
        """A 402 or 409 answered for budget reasons (not a provider's own 402/409)."""
        self.rejections.labels(str(status)).inc()

    def charged(self, provider: str, microcents: int, overrun_microcents: int = 0) -> None:
        if microcents > 0:
            self.charged_microcents.labels(provider).inc(microcents)
        if overrun_microcents > 0:
            self.overrun_microcents.labels(provider).inc(overrun_microcents)
            self.overruns.labels(provider).inc()

    def cutoff(self, provider: str) -> None:
        self.cutoffs.labels(provider).inc()

    def upstream_latency(self, provider: str, seconds: float) -> None:
        self.upstream_latency_s.labels(provider).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


# ``METRICS`` (the app key holding the Metrics object) lives in server/keys.py with the others,
# so the relay can use it without importing prometheus_client.


class _AppStateCollector(Collector):
    """Reads the pricing table's age and the pool's occupancy at scrape time, so the numbers
    are always current and nothing has to update them in the background."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    def describe(self) -> list:
        return []  # values appear only once the resources exist (after start-up)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        pricing = self._app.get(PRICING)
        if pricing is not None and hasattr(pricing, "table_age_seconds"):
            age = GaugeMetricFamily(
                "spendguard_pricing_table_age_seconds",
                "Seconds since the active pricing table was generated",
            )
            age.add_metric([], float(pricing.table_age_seconds()))
            yield age
        pool = self._app.get(POOL)
        if pool is not None:
            size, idle = pool.get_size(), pool.get_idle_size()
            conns = GaugeMetricFamily(
                "spendguard_db_pool_connections",
                "Database pool connections by state (open, idle, in use, configured maximum)",
                labels=["state"],
            )
            conns.add_metric(["open"], size)
            conns.add_metric(["idle"], idle)
            conns.add_metric(["in_use"], size - idle)
            conns.add_metric(["max"], pool.get_max_size())
            yield conns


def _route_label(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED_ROUTE


@web.middleware
async def metrics_middleware(request: web.Request, handler) -> web.StreamResponse:
    metrics = request.app[METRICS]
    route = _route_label(request)
    status = "500"  # anything escaping below unlabelled is a server error
    started = time.perf_counter()
    metrics.http_in_progress.inc()
    try:
        response = await handler(request)
        status = str(response.status)
        return response
    except web.HTTPException as exc:
        status = str(exc.status)
        raise
    except asyncio.CancelledError:
        status = CLIENT_CLOSED_STATUS
        raise
    finally:
        metrics.http_in_progress.dec()
        metrics.http_requests.labels(request.method, route, status).inc()
        metrics.http_latency.labels(request.method, route).observe(
            time.perf_counter() - started
        )


async def metrics_handler(request: web.Request) -> web.Response:
    _check_scraper(request)
    body = request.app[METRICS].exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def _check_scraper(request: web.Request) -> None:
    """Hosted mode: the spend counters would tell one tenant another's spend, so /metrics
    needs ``Authorization: Bearer $CAP_METRICS_TOKEN`` (and is off without a token)."""
    settings = request.app[SETTINGS]
    if settings.mode is not Mode.hosted:
        return  # sidecar: one tenant, on loopback
    token = settings.metrics_token
    if not token:
        raise NotFound("Metrics are off in hosted mode until CAP_METRICS_TOKEN is set")
    sent = request.headers.get("Authorization", "")
    if not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
        raise AuthenticationError("/metrics needs Authorization: Bearer <CAP_METRICS_TOKEN>")


def setup_metrics(app: web.Application) -> Metrics:
    """Install metrics on an app that is not frozen yet; calling it twice changes nothing."""
    existing = app.get(METRICS)
    if existing is not None:
        return existing
    metrics = Metrics()
    metrics.registry.register(_AppStateCollector(app))
    app[METRICS] = metrics
    # Outermost, so the status it records is the one the client got from the errors middleware.
    app.middlewares.insert(0, metrics_middleware)
    app.router.add_get("/metrics", metrics_handler)
    return metrics
