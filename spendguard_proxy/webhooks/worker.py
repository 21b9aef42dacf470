"""Delivering webhook events: claim, POST, record — at least once, never twice at once.

Any number of workers (replicas, processes) share the ``webhook_deliveries`` table as a queue:

1. **Claim** (one short transaction): due pending rows, ``FOR UPDATE SKIP LOCKED`` so workers
   never wait for or take each other's rows; each claimed row's ``next_attempt_at`` moves a
   lease into the future and its ``attempts`` goes up by one. Committed before any I/O.
2. **POST** outside any transaction, with a total timeout shorter than the lease, redirects
   not followed. No other worker can claim the row while the lease runs, so one delivery is
   never in flight twice; a worker that dies mid-POST leaves the row to be claimed again when
   the lease ends (at least once: receivers deduplicate by ``webhook-id``).
3. **Record** (one transaction): the attempt row, and the delivery's new state — delivered on
   2xx; else pending again after an exponential, jittered backoff, or failed once the next try
   would fall past ``webhook_max_age_s`` from the event's creation, or at once for a target the
   address policy refuses. ``attempts`` fences the update: if the lease ran out and another
   worker claimed the row meanwhile, this worker's outcome is recorded as an attempt only.

Time comes from the database (``now()``) unless a clock is given (tests drive it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import asyncpg

from spendguard_proxy.server.middlewares import DATABASE_DOWN
from spendguard_proxy.settings import Settings, SettingsError
from spendguard_proxy.webhooks.secret_box import (
    SecretBox,
    SecretUnreadable,
    WebhooksNotConfigured,
    box_for,
)
from spendguard_proxy.webhooks.signing import event_body, signed_headers
from spendguard_proxy.webhooks.store import DELETED_ERROR
from spendguard_proxy.webhooks.targets import refusal_of

log = logging.getLogger(__name__)

# The lease outlasts the POST's timeout by this much (recording the outcome included).
LEASE_MARGIN_S = 30.0
MAX_ERROR_CHARS = 500

Clock = Callable[[], datetime]

_CLAIM_SQL = """
WITH due AS (
    SELECT id FROM webhook_deliveries
    WHERE state = 'pending' AND next_attempt_at <= coalesce($1::timestamptz, now())
    ORDER BY next_attempt_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE webhook_deliveries d
SET next_attempt_at = coalesce($1::timestamptz, now()) + make_interval(secs => $3),
    attempts = d.attempts + 1
FROM due, webhook_events e, webhooks w
WHERE d.id = due.id AND e.id = d.event_id AND w.id = d.webhook_id
RETURNING d.id, d.attempts, e.id AS event_id, e.type, e.data, e.created_at AS event_created_at,
          w.url, w.secret_ciphertext, w.deleted_at IS NOT NULL AS webhook_deleted,
          coalesce($1::timestamptz, now()) AS claimed_at
"""

_ATTEMPT_SQL = """
INSERT INTO webhook_attempts (delivery_id, attempted_at, status_code, error, duration_ms)
VALUES ($1, $2, $3, $4, $5)
"""

_SETTLE_SQL = """
UPDATE webhook_deliveries
SET state = $3, next_attempt_at = $4, last_status = $5, last_error = $6, delivered_at = $7
WHERE id = $1 AND attempts = $2 AND state = 'pending'
"""


@dataclass(frozen=True, slots=True)
class Claim:
    delivery_id: int
    attempt: int  # the row's attempts after this claim: fences the outcome
    event_id: str
    event_type: str
    data: Any
    event_created_at: datetime
    url: str
    secret_ciphertext: bytes
    webhook_deleted: bool
    claimed_at: datetime
    claimed_monotonic: float


@dataclass(frozen=True, slots=True)
class Outcome:
    delivered: bool
    status_code: int | None
    error: str | None
    duration_ms: int
    final: bool = False  # no retry: the target is refused, the webhook is gone
    posted: bool = True  # an HTTP attempt was made (else nothing goes to webhook_attempts)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    base_s: float
    max_s: float
    max_age_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(settings.webhook_retry_base_s, settings.webhook_retry_max_s,
                   settings.webhook_max_age_s)

    def delay_s(self, attempt: int, rand: float) -> float:
        """Wait after failed attempt ``attempt`` (1-based): doubling from base up to max,
        then "equal jitter" (between half and all of it) so failures spread out."""
        ceiling = min(self.max_s, self.base_s * 2 ** min(attempt - 1, 62))
        return ceiling * (0.5 + 0.5 * rand)


class DeliveryWorker:
    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: Settings,
        session: aiohttp.ClientSession,
        *,
        clock: Clock | None = None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.pool = pool
        self.settings = settings
        self.session = session
        self.clock = clock
        self.rng = rng
        self.retry = RetryPolicy.from_settings(settings)
        self.timeout_s = settings.webhook_timeout_s
        self.lease_s = settings.webhook_timeout_s + LEASE_MARGIN_S
        self._box: SecretBox | None = None
        self._database_down = False

    # ------------------------------------------------------------ the loop

    async def run_forever(self) -> None:
        """Deliver until cancelled: claim as many due rows as there are free slots, wait for a
        slot or the poll interval, again. In-flight posts are cancelled with the loop (their
        rows are claimed again when the lease ends)."""
        slots = self.settings.webhook_max_in_flight
        poll_s = self.settings.webhook_poll_interval_s
        in_flight: set[asyncio.Task] = set()
        try:
            while True:
                free = slots - len(in_flight)
                claimed = await self._claim_or_none(free) if free else []
                for claim in claimed:
                    in_flight.add(asyncio.create_task(self.attempt(claim)))
                saturated = free > 0 and len(claimed) == free
                if not in_flight:
                    await asyncio.sleep(poll_s)
                    continue
                # More may be due when every free slot was filled: claim again as soon as a
                # slot frees up; otherwise also look again after the poll interval.
                _, in_flight = await asyncio.wait(
                    in_flight, timeout=None if saturated or not free else poll_s,
                    return_when=asyncio.FIRST_COMPLETED,
                )
        finally:
            for task in in_flight:
                task.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)

    async def run_once(self) -> int:
        """Claim what is due (up to the slot count), deliver it all, return how many."""
        claimed = await self.claim(self.settings.webhook_max_in_flight)
        await asyncio.gather(*(self.attempt(c) for c in claimed))
        return len(claimed)

    async def _claim_or_none(self, limit: int) -> list[Claim]:
        try:
            claimed = await self.claim(limit)
        except DATABASE_DOWN as exc:
            if not self._database_down:  # once per outage, not once per poll
                log.warning("webhook delivery paused, database unavailable: %r", exc)
            self._database_down = True
            return []
        except Exception:  # the worker must outlive any one bad poll, like the hold sweeper
            log.exception("webhook claim failed; trying again after the poll interval")
            return []
        if self._database_down:
            log.warning("webhook delivery resumed")
            self._database_down = False
        return claimed

    # ------------------------------------------------------------ one delivery

    async def claim(self, limit: int) -> list[Claim]:
        now = self.clock() if self.clock else None
        rows = await self.pool.fetch(_CLAIM_SQL, now, limit, self.lease_s)
        claimed_monotonic = time.monotonic()
        return [
            Claim(r["id"], r["attempts"], r["event_id"], r["type"], r["data"],
                  r["event_created_at"], r["url"], r["secret_ciphertext"], r["webhook_deleted"],
                  r["claimed_at"], claimed_monotonic)
            for r in rows
        ]

    async def attempt(self, claim: Claim) -> Outcome:
        """POST one claimed delivery and record the outcome (never raises, but for
        cancellation: a failure to record leaves the row to be claimed again)."""
        started_at = self._now(claim)
        outcome = await self._post(claim, started_at)
        try:
            await self._record(claim, started_at, outcome)
        except DATABASE_DOWN as exc:
            log.warning("webhook delivery %d: outcome not recorded, database unavailable "
                        "(%r); it is retried when its lease ends", claim.delivery_id, exc)
        except Exception:
            log.exception("webhook delivery %d: outcome not recorded", claim.delivery_id)
        return outcome

    def _now(self, claim: Claim) -> datetime:
        if self.clock:
            return self.clock()
        elapsed_s = time.monotonic() - claim.claimed_monotonic
        return claim.claimed_at + timedelta(seconds=elapsed_s)

    async def _post(self, claim: Claim, started_at: datetime) -> Outcome:
        if claim.webhook_deleted:
            return Outcome(False, None, DELETED_ERROR, 0, final=True, posted=False)
        try:
            secret = self._secret_box().open(claim.secret_ciphertext)
        except (SecretUnreadable, WebhooksNotConfigured, SettingsError) as exc:
            # A setting, not the target: retried, so fixing the key lets it through.
            return Outcome(False, None, _short(str(exc)), 0, posted=False)
        body = event_body(claim.event_id, claim.event_type, claim.event_created_at, claim.data)
        headers = signed_headers(secret, claim.event_id, body, started_at)
        t0 = time.monotonic()
        try:
            async with self.session.post(claim.url, data=body.encode(), headers=headers,
                                         allow_redirects=False) as resp:
                status = resp.status
                location = resp.headers.get("Location")
        except TimeoutError:
            return Outcome(False, None, f"timed out after {self.timeout_s:g} s", _ms(t0))
        except (aiohttp.ClientError, OSError) as exc:
            refused = refusal_of(exc)
            if refused is not None:
                return Outcome(False, None, _short(str(refused)), _ms(t0), final=True)
            return Outcome(False, None, _short(f"{type(exc).__name__}: {exc}"), _ms(t0))
        if 200 <= status < 300:
            return Outcome(True, status, None, _ms(t0))
        if 300 <= status < 400:
            where = (location or "(no Location)")[:200]
            return Outcome(False, status, f"HTTP {status} redirect to {where} not followed",
                           _ms(t0))
        return Outcome(False, status, f"HTTP {status}", _ms(t0))

    def _secret_box(self) -> SecretBox:
        if self._box is None:
            self._box = box_for(self.settings)
        return self._box

    async def _record(self, claim: Claim, started_at: datetime, outcome: Outcome) -> None:
        ended_at = started_at + timedelta(milliseconds=outcome.duration_ms)
        next_at: datetime | None = None
        delivered_at: datetime | None = None
        if outcome.delivered:
            state, delivered_at = "delivered", ended_at
        elif outcome.final:
            state = "failed"
        else:
            next_at = ended_at + timedelta(seconds=self.retry.delay_s(claim.attempt, self.rng()))
            too_late = next_at > claim.event_created_at + timedelta(seconds=self.retry.max_age_s)
            state = "failed" if too_late else "pending"
        if state != "pending":
            next_at = ended_at  # not due again: the partial index no longer holds the row
        async with self.pool.acquire() as conn, conn.transaction():
            if outcome.posted:
                await conn.execute(_ATTEMPT_SQL, claim.delivery_id, started_at,
                                   outcome.status_code, outcome.error, outcome.duration_ms)
            await conn.execute(_SETTLE_SQL, claim.delivery_id, claim.attempt, state, next_at,
                               outcome.status_code, outcome.error, delivered_at)
        if state == "failed":  # not the URL: receivers put tokens in query strings
            log.warning("webhook delivery %d of %s failed for good: %s",
                        claim.delivery_id, claim.event_id, outcome.error)


def _ms(t0: float) -> int:
    return max(0, round((time.monotonic() - t0) * 1000))


def _short(text: str) -> str:
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


@contextlib.asynccontextmanager
async def delivery_session(settings: Settings):
    """The worker's one client session: the address policy's connector, a total timeout,
    no cookies kept, no proxy from the environment."""
    from spendguard_proxy.webhooks.targets import connector_for

    session = aiohttp.ClientSession(
        connector=connector_for(settings, limit=settings.webhook_max_in_flight),
        timeout=aiohttp.ClientTimeout(total=settings.webhook_timeout_s),
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,
    )
    try:
        yield session
    finally:
        await session.close()
