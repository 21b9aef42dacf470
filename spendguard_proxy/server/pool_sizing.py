"""Sizing the workers' connection pools so the whole set fits the database's max_connections.

``serve --workers N`` runs N pools of up to ``CAP_DB_POOL_MAX_SIZE`` connections each. Connected
directly to PostgreSQL they must fit, together, in what the server has left: ``max_connections``
less the slots reserved for superusers (and, PostgreSQL 16+, ``reserved_connections``), less the
connections already open (other replicas, the CLI, monitoring), less a little headroom for the
supervisor's own connection and a CLI command run while the set serves. Each worker gets an
equal share, never more than ``CAP_DB_POOL_MAX_SIZE``; a share under ``MIN_POOL_SIZE`` is
refused (a worker with one connection serialises every request on it).

Behind a transaction pooler (``CAP_DATABASE_POOLER_URL``) the pools are PgBouncer's clients, and
its ``max_client_conn`` is the limit that matters, which PostgreSQL cannot report: the pools
keep their configured size there.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

MIN_POOL_SIZE = 2
# The supervisor's connection (ending a dead worker's holds) and one CLI command (two).
HEADROOM_CONNECTIONS = 3
CONNECT_TIMEOUT_S = 10.0

_CAPACITY_SQL = """
SELECT current_setting('max_connections')::int AS max_connections,
       current_setting('superuser_reserved_connections')::int
         + coalesce(current_setting('reserved_connections', true)::int, 0) AS reserved,
       (SELECT count(*) FROM pg_stat_activity
         WHERE backend_type = 'client backend' AND pid <> pg_backend_pid())::int AS open_now
"""


@dataclass(frozen=True, slots=True)
class Capacity:
    """What the database server can give the workers' pools."""

    max_connections: int
    reserved: int
    open_now: int

    @property
    def available(self) -> int:
        # Our own connection (the one that asked) closes before the workers start.
        return self.max_connections - self.reserved - self.open_now - HEADROOM_CONNECTIONS

    def describe(self) -> str:
        return (f"max_connections {self.max_connections}, {self.reserved} reserved, "
                f"{self.open_now} open now, {HEADROOM_CONNECTIONS} kept for the supervisor "
                "and the CLI")


class PoolsDoNotFit(Exception):
    """The workers cannot each get ``MIN_POOL_SIZE`` connections; the message says what to do."""


async def read_capacity(dsn: str) -> Capacity:
    conn = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT_S)
    try:
        row = await conn.fetchrow(_CAPACITY_SQL)
    finally:
        await conn.close()
    return Capacity(row["max_connections"], row["reserved"], row["open_now"])


def pool_max_per_worker(capacity: Capacity, workers: int, configured_max: int) -> int:
    """Each worker's pool maximum: an equal share of what is available, at most
    ``configured_max`` (CAP_DB_POOL_MAX_SIZE)."""
    share = capacity.available // workers
    if share < MIN_POOL_SIZE:
        raise PoolsDoNotFit(
            f"{workers} workers need at least {MIN_POOL_SIZE} database connections each, but "
            f"the database has {max(capacity.available, 0)} to spare ({capacity.describe()}): "
            "use fewer --workers, raise max_connections, or put PgBouncer in front "
            "(CAP_DATABASE_POOLER_URL)"
        )
    return min(share, configured_max)
