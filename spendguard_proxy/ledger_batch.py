"""Group concurrent reserves (and settles) into one database transaction each.

A hot agent's budget row admits one transaction at a time, each holding the lock until its
commit is flushed to disk. Batching turns N waiting transactions into one: the requests that
arrive while a batch is in the database go together in the next one (sg_reserve_many /
sg_settle_many, migration 0003). A lone request still goes alone at once, so batching adds
no latency when the proxy is idle. Every caller still gets its own reply only after its
batch committed: a hold is durable before the provider is called (each batch is one statement,
so one transaction, and the functions ``SET LOCAL synchronous_commit = on`` for it — migration
0005 — which also holds through a transaction-pooling PgBouncer).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from spendguard_proxy import ledger

log = logging.getLogger(__name__)

MAX_BATCH = 256
# Errors PostgreSQL raises while the transaction runs, so it rolled back: safe to retry. Not
# connection loss or an administrator's termination, where the batch may have committed.
_ROLLED_BACK = (
    asyncpg.DataError,
    asyncpg.IntegrityConstraintViolationError,
    asyncpg.TransactionRollbackError,
    asyncpg.PLPGSQLError,
)
# Errors after which the batch may or may not have committed.
_OUTCOME_UNKNOWN = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.OperatorInterventionError,
    asyncpg.exceptions.InternalClientError,
    ConnectionError,
)
RETRY_PAUSE_S = 0.05
FLUSHERS = 2  # one batch in the database while the next one forms

_RESERVE_MANY = (
    "SELECT * FROM sg_reserve_many_v2($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15)"
    " ORDER BY idx"
)
_SETTLE_MANY = "SELECT * FROM sg_settle_many_v2($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) ORDER BY idx"


class _Queue:
    """Pending calls of one kind, flushed together by a few flusher tasks."""

    def __init__(self, run_batch: Callable, run_one: Callable) -> None:
        self._run_batch = run_batch
        self._run_one = run_one
        self._pending: list[tuple[tuple, asyncio.Future]] = []
        self._ready = asyncio.Event()
        self._tasks = [asyncio.create_task(self._flush_forever()) for _ in range(FLUSHERS)]

    def submit(self, args: tuple) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        self._pending.append((args, future))
        self._ready.set()
        return future

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _flush_forever(self) -> None:
        while True:
            await self._ready.wait()
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            if not self._pending:
                self._ready.clear()
            if batch:
                await self._flush(batch)

    async def _run(self, batch: list[tuple[tuple, asyncio.Future]]) -> list:
        if len(batch) == 1:
            return [await self._run_one(batch[0][0])]
        return await self._run_batch([args for args, _ in batch])

    async def _flush(self, batch: list[tuple[tuple, asyncio.Future]]) -> None:
        try:
            try:
                results = await self._run(batch)
            except _OUTCOME_UNKNOWN as exc:
                # The connection died, maybe after COMMIT: run it again on another
                # connection. Reserve and settle answer a repeat without acting twice (0004).
                log.warning("ledger batch of %d lost its connection (%r); retrying once",
                            len(batch), exc)
                await asyncio.sleep(RETRY_PAUSE_S)
                results = await self._run(batch)
        except _ROLLED_BACK as exc:
            if len(batch) == 1:
                self._fail(batch, exc)
                return
            # One bad call must not fail the others, and the batch certainly did not commit:
            # retry them one by one.
            log.warning("ledger batch of %d failed (%r); retrying one by one", len(batch), exc)
            await asyncio.gather(*(self._flush([item]) for item in batch))
            return
        except Exception as exc:  # noqa: BLE001 — handed to every waiting caller
            self._fail(batch, exc)
            return
        for (_, future), row in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(row)

    @staticmethod
    def _fail(batch, exc: BaseException) -> None:
        for _, future in batch:
            if not future.done():
                # A copy each: one instance raised in many tasks would grow one traceback.
                future.set_exception(copy.copy(exc))


def _log_failure(future: asyncio.Future) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("background settle failed; the hold will be charged on expiry: %r",
                  future.exception())


def _columns(rows: Sequence[tuple]) -> list[list[Any]]:
    return [list(column) for column in zip(*rows, strict=True)]


class LedgerBatcher:
    """``reserve`` and ``settle`` with ledger.py's contract, batched under load."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        ttl_s: int,
        *,
        worker_id: str | None = None,
        clock: Callable[[], datetime | None] = lambda: None,
    ) -> None:
        """``worker_id`` is stamped on every hold (the supervisor ends a dead worker's holds);
        ``clock`` gives the ledger's time (None: the database's ``now()``; tests move it)."""
        self.pool = pool
        self.ttl_s = ttl_s
        self.worker_id = worker_id
        self.clock = clock
        self._reserves = _Queue(self._reserve_many, self._reserve_one)
        self._settles = _Queue(self._settle_many, self._settle_one)

    async def close(self) -> None:
        await self._reserves.close()
        await self._settles.close()

    async def reserve(self, req: ledger.ReserveRequest) -> ledger.Reservation:
        hold_id = uuid.uuid4()
        row = await self._reserves.submit(ledger.reserve_args(req, hold_id, self.ttl_s))
        return ledger.reservation_from_row(req, hold_id, row)

    async def settle(self, agent_id: uuid.UUID, hold_id: uuid.UUID, **kw: Any):
        row = await self._settles.submit(ledger.settle_args(agent_id, hold_id, **kw))
        return ledger.settlement_from_row(hold_id, row)

    def settle_soon(self, agent_id: uuid.UUID, hold_id: uuid.UUID, **kw: Any) -> None:
        """Queue a settle nobody waits for (the queue keeps it until it is written)."""
        future = self._settles.submit(ledger.settle_args(agent_id, hold_id, **kw))
        future.add_done_callback(_log_failure)

    async def _reserve_one(self, args: tuple):
        return await self.pool.fetchrow(ledger.RESERVE_SQL, *args, self.clock(), self.worker_id)

    async def _settle_one(self, args: tuple):
        return await self.pool.fetchrow(ledger.SETTLE_SQL, *args, self.clock())

    async def _reserve_many(self, rows: list[tuple]):
        columns = _columns(rows)
        columns[9] = self.ttl_s  # one TTL for the whole batch
        return await self.pool.fetch(_RESERVE_MANY, *columns, self.clock(), self.worker_id)

    async def _settle_many(self, rows: list[tuple]):
        return await self.pool.fetch(_SETTLE_MANY, *_columns(rows), self.clock())
