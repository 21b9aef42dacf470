"""Live console pages: one ledger poller per process, fanned out to every open SSE stream.

Each process polls for ledger rows newer than the last it saw (about once a second, only
while some page listens) instead of LISTEN/NOTIFY, which would pin a connection per process
and does not pass a transaction-pooling PgBouncer. Identity values are handed out before
commit, so a row may become visible after a higher id: the ids skipped over are looked at
again for ``GAP_RECHECK_S`` seconds (a rolled-back insert just ages out).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import asyncpg
from aiohttp import web

from spendguard_proxy.server.middlewares import DATABASE_DOWN

log = logging.getLogger(__name__)

GAP_RECHECK_S = 10.0
GAPS_MAX = 10_000
ROWS_PER_POLL = 1000
QUEUE_MAX = 100
HEARTBEAT_S = 5.0  # also how often an idle stream re-checks its session

_POLL_SQL = """
SELECT l.id, l.agent_id, a.tenant_id, l.kind, l.model, l.termination_reason,
       l.overrun_microcents
  FROM ledger_entries l JOIN agents a ON a.id = l.agent_id
 WHERE l.id > $1 OR l.id = ANY($2::bigint[])
 ORDER BY l.id LIMIT $3
"""


@dataclass(eq=False)  # compared and hashed by identity: kept in a set
class Subscriber:
    tenant_id: uuid.UUID
    agent_id: uuid.UUID | None
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(QUEUE_MAX))

    def wants(self, row: asyncpg.Record) -> bool:
        return row["tenant_id"] == self.tenant_id and (
            self.agent_id is None or row["agent_id"] == self.agent_id
        )


class LedgerFeed:
    def __init__(self, pool_of: Callable[[], asyncpg.Pool], interval_s: float) -> None:
        self._pool_of = pool_of
        self.interval_s = interval_s
        self._subscribers: set[Subscriber] = set()
        self._task: asyncio.Task | None = None
        self._last_id: int | None = None
        self._gaps: dict[int, float] = {}  # id -> give up at (monotonic)
        self.closed = False

    @contextlib.asynccontextmanager
    async def subscribe(
        self, tenant_id: uuid.UUID, agent_id: uuid.UUID | None
    ) -> AsyncIterator[Subscriber]:
        sub = Subscriber(tenant_id, agent_id)
        self._subscribers.add(sub)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        try:
            yield sub
        finally:
            self._subscribers.discard(sub)

    async def close(self) -> None:
        """Wake every stream with the end marker (None) and stop polling."""
        self.closed = True
        for sub in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                sub.queue.put_nowait(None)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while self._subscribers and not self.closed:
            try:
                await self.poll_once()
            except DATABASE_DOWN as exc:
                log.warning("console ledger poll skipped, database unavailable: %r", exc)
            except Exception:  # the feed must outlive any one bad poll
                log.exception("console ledger poll failed; trying again")
            await asyncio.sleep(self.interval_s)
        self._last_id = None  # nobody listened for a while: start again from "now"

    async def poll_once(self) -> int:
        pool = self._pool_of()
        if self._last_id is None:
            self._last_id = await pool.fetchval("SELECT coalesce(max(id), 0) FROM ledger_entries")
            self._gaps.clear()
            return 0
        now = time.monotonic()
        self._gaps = {i: t for i, t in self._gaps.items() if t > now}
        rows = await pool.fetch(_POLL_SQL, self._last_id, list(self._gaps), ROWS_PER_POLL)
        for row in rows:
            self._gaps.pop(row["id"], None)
        fresh = [r["id"] for r in rows if r["id"] > self._last_id]
        if fresh:
            expected = self._last_id + 1
            for entry_id in fresh:
                for missing in range(expected, min(entry_id, expected + GAPS_MAX)):
                    self._gaps[missing] = now + GAP_RECHECK_S
                expected = entry_id + 1
            self._last_id = fresh[-1]
            if len(self._gaps) > GAPS_MAX:
                self._gaps = dict(sorted(self._gaps.items())[-GAPS_MAX:])
        self._fan_out(rows)
        return len(rows)

    def _fan_out(self, rows: list[asyncpg.Record]) -> None:
        for sub in list(self._subscribers):
            mine = [_event(r) for r in rows if sub.wants(r)]
            if mine:
                with contextlib.suppress(asyncio.QueueFull):  # the page refreshes all anyway
                    sub.queue.put_nowait(mine)


def _event(row: asyncpg.Record) -> dict:
    return {
        "id": row["id"],
        "agent_id": str(row["agent_id"]),
        "kind": row["kind"],
        "model": row["model"],
        "termination_reason": row["termination_reason"],
        "overrun": bool(row["overrun_microcents"]),
    }


async def stream(
    request: web.Request,
    feed: LedgerFeed,
    tenant_id: uuid.UUID,
    agent_id: uuid.UUID | None,
    session_ok: Callable[[], Awaitable[bool]],
) -> web.StreamResponse:
    """Server-sent events: ``ledger`` when rows for this tenant (and agent) settle;
    ``signed_out`` when the session ends, then the stream closes."""
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    await response.write(b"retry: 3000\n\n")
    async with feed.subscribe(tenant_id, agent_id) as sub:
        while not feed.closed:
            try:
                events = await asyncio.wait_for(sub.queue.get(), HEARTBEAT_S)
            except TimeoutError:
                events = []
            if events is None:
                break
            if not await session_ok():
                await response.write(b"event: signed_out\ndata: {}\n\n")
                break
            if events:
                payload = json.dumps({"entries": events}, separators=(",", ":"))
                await response.write(f"event: ledger\ndata: {payload}\n\n".encode())
            else:
                await response.write(b": keep-alive\n\n")
    return response
