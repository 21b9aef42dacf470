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

With ``serve --workers N`` each worker is a separate process with its own app, so the worker
calls ``share_metrics(app, metrics_dir)`` after ``build_app``: its counters then live in
prometheus-client's multiprocess files (``PROMETHEUS_MULTIPROC_DIR``, a directory the parent
makes for the set and passes to every worker), and ``/metrics``, whichever worker answers it,
reads all of them — the whole set's counts, dead workers' included (the parent calls
``mark_process_dead`` for a worker that exits, so its live gauges drop out).

Label values are bounded on purpose: routes are the router's canonical patterns
(``/v1/agents/{agent_id}``), never raw paths, and providers come from our own registry, so a
caller cannot create new time series by sending odd URLs.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import time
from collections.abc import AsyncIterator, Callable, Iterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from spendguard_proxy.errors import AuthenticationError, NotFound
from spendguard_proxy.server.keys import METRICS, POOL, PRICING, SETTINGS
from spendguard_proxy.settings import Mode

UNMATCHED_ROUTE = "unmatched"
# nginx's convention for "the client went away before we answered".
CLIENT_CLOSED_STATUS = "499"

_HTTP_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_UPSTREAM_BUCKETS_S = (0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600)
# How often a worker of a multiprocess set writes its pool gauges (its own scrapes write them
# too): how stale the other workers' figures may be in one scrape.
POOL_GAUGE_INTERVAL_S = 5.0
POOL_CONNECTIONS_HELP = (
    "Database pool connections by state (open, idle, in use, configured maximum)"
)


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
            multiprocess_mode="livesum",  # a multiprocess set: the live workers' sum
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
        self._exposed = self.registry  # what /metrics shows; share() swaps it
        self._before_scrape: Callable[[], None] | None = None

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
        if self._before_scrape is not None:
            self._before_scrape()
        return generate_latest(self._exposed)

    def share(self, exposed: CollectorRegistry, before_scrape: Callable[[], None]) -> None:
        """Show ``exposed`` at /metrics (the multiprocess set's figures), after calling
        ``before_scrape`` (which writes this process's gauges) on every scrape."""
        self._exposed = exposed
        self._before_scrape = before_scrape


# ``METRICS`` (the app key holding the Metrics object) lives in server/keys.py with the others,
# so the relay can use it without importing prometheus_client.


class _AppStateCollector(Collector):
    """Reads the pricing table's age and the pool's occupancy at scrape time, so the numbers
    are always current and nothing has to update them in the background."""

    def __init__(self, app: web.Application, *, pool: bool = True) -> None:
        self._app = app
        self._pool = pool  # False in a multiprocess set: _SharedPoolGauges sums the workers'

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
        pool = self._app.get(POOL) if self._pool else None
        if pool is not None:
            conns = GaugeMetricFamily(
                "spendguard_db_pool_connections", POOL_CONNECTIONS_HELP, labels=["state"],
            )
            for state, value in _pool_figures(pool):
                conns.add_metric([state], value)
            yield conns


def _pool_figures(pool) -> list[tuple[str, int]]:
    size, idle = pool.get_size(), pool.get_idle_size()
    return [("open", size), ("idle", idle), ("in_use", size - idle), ("max", pool.get_max_size())]


class _SharedPoolGauges:
    """A worker's pool occupancy as multiprocess gauges, summed over the live workers: the
    scraping worker cannot read the other workers' pools, so each writes its own figures (every
    ``POOL_GAUGE_INTERVAL_S`` and on each scrape it answers)."""

    def __init__(self, app: web.Application) -> None:
        self._app = app
        # Not registered anywhere: the multiprocess collector reads its file.
        self._gauge = Gauge("spendguard_db_pool_connections", POOL_CONNECTIONS_HELP, ["state"],
                            registry=None, multiprocess_mode="livesum")

    def publish(self) -> None:
        pool = self._app.get(POOL)
        if pool is not None:
            for state, value in _pool_figures(pool):
                self._gauge.labels(state).set(value)

    async def publish_forever(self, app: web.Application) -> AsyncIterator[None]:
        """A cleanup_ctx: writes the gauges while the app runs."""

        async def loop() -> None:
            while True:
                self.publish()
                await asyncio.sleep(POOL_GAUGE_INTERVAL_S)

        task = asyncio.create_task(loop())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


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


def share_metrics(app: web.Application, metrics_dir: str) -> None:
    """A worker of ``serve --workers N`` (before the app is frozen): /metrics answers for the
    whole set from the multiprocess files in ``metrics_dir``. prometheus-client decides at
    import time to write those files, from ``PROMETHEUS_MULTIPROC_DIR``, which the parent sets
    to ``metrics_dir`` before it starts the worker."""
    exposed = CollectorRegistry()
    MultiProcessCollector(exposed, path=metrics_dir)
    exposed.register(_AppStateCollector(app, pool=False))  # pricing age: this worker's table
    pool_gauges = _SharedPoolGauges(app)
    app[METRICS].share(exposed, pool_gauges.publish)
    app.cleanup_ctx.append(pool_gauges.publish_forever)
