"""Supervising the workers of `spendguard serve --workers N` (DESIGN §13).

The parent process serves nothing itself. `serve` has already loaded the settings, started the
embedded PostgreSQL if it is used, migrated the database, sized the pools and bound the port
(held, not listening, so the port stays ours); the ``Supervisor`` then:

- starts N workers (server/worker.py) with multiprocessing's "forkserver" context: a fresh
  interpreter loads the tokenizer tables and the server's modules once
  (server/worker_preload.py) and every worker is forked from it, sharing those pages; each
  worker has a unique worker id ``host:parent-pid:slot:generation`` that it stamps on its holds;
- calls ``on_ready`` once all N listen (``serve`` prints its "SpendGuard … on …" line then);
- when a worker dies, charges its open holds in full at once (``ledger.end_worker_holds`` on a
  connection of its own: the calls it was relaying are lost, and their cost is unknown),
  removes its live gauges from the shared metrics (``mark_process_dead``) and starts a new
  generation in its slot — at once after a worker that ran a while, with a growing backoff after
  one that died soon after starting, and gives up (``WorkersFailed``) when a slot keeps dying
  like that, or when any worker dies before the set was first ready (a bad configuration
  fails every worker the same way);
- on SIGTERM or SIGINT sends every worker SIGTERM (each then stops accepting, gives what is in
  flight ``CAP_SHUTDOWN_GRACE_SECONDS`` to finish, settles and exits), waits that long plus a
  margin, SIGKILLs what is left, ends the holds of every worker that exited, and returns.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import socket
import time
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import TYPE_CHECKING

from spendguard_proxy.server.worker import WorkerSpec, run_worker

if TYPE_CHECKING:
    from collections.abc import Callable
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

    from spendguard_proxy.settings import Settings

log = logging.getLogger("spendguard.supervisor")

# A worker that dies before it is ready, or within this long of becoming ready, died "soon".
STABLE_AFTER_S = 10.0
RESTART_BACKOFF_FIRST_S = 0.5
RESTART_BACKOFF_MAX_S = 10.0
MAX_SOON_DEATHS = 5  # in a row, in one slot: then the set gives up
# After the grace period a worker still needs to cancel what is left and settle it.
STOP_MARGIN_S = 10.0
DB_TIMEOUT_S = 10.0
APP_NAME = "spendguard-supervisor"  # as pg_stat_activity shows the hold-ending connection


class WorkersFailed(Exception):
    """The set cannot keep its workers running; the message says which and how."""


@dataclass
class _Slot:
    number: int  # 1..N
    generation: int = -1
    worker_id: str = ""
    process: BaseProcess | None = None
    conn: Connection | None = None  # the parent's end of the worker's socket pair
    ready_at: float | None = None
    failure: str | None = None  # what the worker said when it could not start
    soon_deaths: int = 0
    restart_at: float | None = None

    @property
    def running(self) -> bool:
        return self.process is not None


class Supervisor:
    def __init__(self, settings: Settings, dsn: str, port: int, workers: int,
                 metrics_dir: str) -> None:
        self.settings = settings  # what every worker runs with (pool size already divided)
        self.dsn = dsn  # direct: the hold-ending connection
        self.port = port  # bound by the parent, resolved if CAP_PORT was 0
        self.metrics_dir = metrics_dir
        self._slots = [_Slot(n) for n in range(1, workers + 1)]
        self._stopping = False
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(["spendguard_proxy.server.worker_preload"])

    def run(self, on_ready: Callable[[], None]) -> None:
        """Run the set until SIGTERM/SIGINT (then stop it gracefully and return) or until it
        cannot be kept running (WorkersFailed, after stopping what still runs)."""
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        previous_wakeup = signal.set_wakeup_fd(wake_w)  # a signal wakes wait() at once
        try:
            for slot in self._slots:
                self._start(slot)
            self._supervise(on_ready, wake_r)
        finally:
            self._stop_all()
            signal.set_wakeup_fd(previous_wakeup)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            os.close(wake_r)
            os.close(wake_w)

    def _on_signal(self, signum: int, frame) -> None:
        self._stopping = True

    def _supervise(self, on_ready: Callable[[], None], wake_r: int) -> None:
        announced = False
        while not self._stopping:
            running = [s for s in self._slots if s.running]
            waitables: list = [wake_r]
            waitables += [s.process.sentinel for s in running]  # type: ignore[union-attr]
            waitables += [s.conn for s in running if s.conn is not None]
            fired = set(wait(waitables, timeout=self._until_next_restart()))
            if wake_r in fired:
                _drain(wake_r)
            for slot in running:
                if slot.conn is not None and slot.conn in fired:
                    self._heard_from(slot)
            if not announced and all(s.ready_at is not None for s in self._slots):
                announced = True
                on_ready()
            for slot in running:
                if slot.process is not None and slot.process.sentinel in fired:
                    self._died(slot, announced)
            now = time.monotonic()
            for slot in self._slots:
                if slot.restart_at is not None and slot.restart_at <= now and not self._stopping:
                    self._start(slot)

    def _until_next_restart(self) -> float | None:
        due = [s.restart_at for s in self._slots if s.restart_at is not None]
        return max(0.0, min(due) - time.monotonic()) if due else None

    def _start(self, slot: _Slot) -> None:
        slot.generation += 1
        slot.worker_id = f"{socket.gethostname()}:{os.getpid()}:{slot.number}:{slot.generation}"
        slot.ready_at = slot.restart_at = slot.failure = None
        spec = WorkerSpec(self.settings, self.dsn, self.port, slot.number, slot.worker_id,
                          self.metrics_dir)
        parent_end, child_end = self._context.Pipe(duplex=True)
        process = self._context.Process(target=run_worker, args=(spec, child_end),
                                        name=f"spendguard-worker-{slot.number}", daemon=True)
        # Spawned with SIGINT ignored from its first instruction: a terminal's Ctrl-C goes to
        # the whole process group, and this process turns it into an orderly SIGTERM.
        handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            process.start()
        finally:
            signal.signal(signal.SIGINT, handler)
            child_end.close()  # the worker's end lives in the worker: EOF here when it dies
        slot.process, slot.conn = process, parent_end

    def _heard_from(self, slot: _Slot) -> None:
        assert slot.conn is not None and slot.process is not None
        try:
            what, detail = slot.conn.recv()
        except (EOFError, OSError):
            slot.conn.close()  # it died; its sentinel says so too
            slot.conn = None
            return
        if what == "failed":
            slot.failure = detail
            log.error("worker %d could not start: %s", slot.number, detail)
            return
        slot.ready_at = time.monotonic()
        log.info("worker %d ready: pid %d, id %s", slot.number, detail, slot.worker_id)

    def _died(self, slot: _Slot, announced: bool) -> None:
        if slot.conn is not None and slot.conn.poll():
            self._heard_from(slot)  # what it said just before it exited
        pid, code = self._reap(slot)
        soon = slot.ready_at is None or time.monotonic() - slot.ready_at < STABLE_AFTER_S
        if not announced:
            why = slot.failure or ("its error is above" if code and code > 0 else None)
            raise WorkersFailed(f"worker {slot.number} exited ({_how(code)}) before the set was "
                                "ready" + (f": {why}" if why else ""))
        slot.soon_deaths = slot.soon_deaths + 1 if soon else 0
        if slot.soon_deaths > MAX_SOON_DEATHS:
            last = _how(code) + (f": {slot.failure}" if slot.failure else "")
            raise WorkersFailed(
                f"worker {slot.number} died {slot.soon_deaths} times in a row within "
                f"{STABLE_AFTER_S:g} s of starting (last: {last}); giving up")
        delay = 0.0
        if slot.soon_deaths:
            delay = min(RESTART_BACKOFF_MAX_S,
                        RESTART_BACKOFF_FIRST_S * 2 ** (slot.soon_deaths - 1))
        log.error("worker %d (pid %s) died (%s); restarting it in %.1f s",
                  slot.number, pid, _how(code), delay)
        slot.restart_at = time.monotonic() + delay

    def _reap(self, slot: _Slot) -> tuple[int | None, int | None]:
        """After a worker exited: its holds ended, its live gauges gone, its slot empty."""
        from prometheus_client.multiprocess import mark_process_dead

        process = slot.process
        assert process is not None
        process.join()  # the sentinel fires as the process exits, before it can be waited for
        pid, code = process.pid, process.exitcode
        process.close()
        if slot.conn is not None:
            slot.conn.close()
        slot.process = slot.conn = None
        if pid is not None:
            mark_process_dead(pid, self.metrics_dir)
        ended = _end_holds(self.dsn, slot.worker_id)
        if ended:
            log.warning("worker %d (pid %s) left %d hold(s) open: charged in full", slot.number,
                        pid, ended)
        return pid, code

    def _stop_all(self) -> None:
        running = [s for s in self._slots if s.running]
        for slot in running:
            assert slot.process is not None
            if slot.process.is_alive():
                slot.process.terminate()  # SIGTERM: a graceful stop
        deadline = time.monotonic() + self.settings.shutdown_grace_seconds + STOP_MARGIN_S
        while running:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            sentinels = {s.process.sentinel: s for s in running}  # type: ignore[union-attr]
            for sentinel in wait(list(sentinels), timeout=left):
                slot = sentinels[sentinel]  # type: ignore[index]
                running.remove(slot)
                self._reap(slot)
        for slot in running:
            assert slot.process is not None
            log.error("worker %d (pid %s) did not stop within CAP_SHUTDOWN_GRACE_SECONDS + "
                      "%g s: killed", slot.number, slot.process.pid, STOP_MARGIN_S)
            slot.process.kill()
            self._reap(slot)


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass


def _how(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"


def _end_holds(dsn: str, worker_id: str) -> int | None:
    """Charge a dead worker's open holds in full (as at expiry); None if the database could
    not be reached (the holds then expire after CAP_LOCK_TTL_SECONDS, as any dead proxy's)."""
    import asyncpg

    try:
        return asyncio.run(_end_holds_on_db(dsn, worker_id))
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        log.error("could not end the holds of worker %s (they expire after "
                  "CAP_LOCK_TTL_SECONDS instead): %r", worker_id, exc)
        return None


async def _end_holds_on_db(dsn: str, worker_id: str) -> int:
    import asyncpg

    from spendguard_proxy import ledger
    from spendguard_proxy.db.pool import init_connection

    conn = await asyncpg.connect(dsn, timeout=DB_TIMEOUT_S, command_timeout=DB_TIMEOUT_S,
                                 server_settings={"application_name": APP_NAME})
    try:
        await init_connection(conn)
        return await ledger.end_worker_holds(conn, worker_id)
    finally:
        await conn.close()
