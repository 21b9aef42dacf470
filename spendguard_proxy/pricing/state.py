"""The app's pricing state: the current table, its start-up load and its refresh loop.

A refresh never makes pricing worse: a 304, a network error or a document failing any check
keeps the last good table (logged), so a publisher outage cannot stop billing. Start-up is
the opposite: with no good table there is nothing safe to bill with, so it fails.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

import aiohttp

from spendguard_proxy.errors import PricingError
from spendguard_proxy.pricing.checks import format_timestamp
from spendguard_proxy.pricing.sources import fetch_remote, load_file, load_table
from spendguard_proxy.pricing.table import PriceTable
from spendguard_proxy.settings import PricingSource, Settings

log = logging.getLogger(__name__)


class PricingState:
    """Holds the active PriceTable; swapping ``table`` is atomic for readers (one assignment)."""

    def __init__(self, table: PriceTable) -> None:
        self.table = table
        self.last_refresh_at: datetime | None = None
        self.last_error: str | None = None
        # Per-table cache owned by server.public_pricing (signed bytes, ETag); lives here so
        # no module keeps mutable globals.
        self.public_cache: dict[str, Any] = {}  # signed public documents per schema

    def table_age_seconds(self, now: datetime | None = None) -> float:
        return self.table.age_seconds(now)


async def load_initial(
    settings: Settings, session: aiohttp.ClientSession | None = None
) -> PricingState:
    """Load the configured table or raise PricingError (start-up must stop)."""
    table = await load_table(settings, session)
    log.info(
        "pricing loaded from %s: as of %s, %d models, expires %s",
        table.origin, table.as_of.isoformat(), table.model_count(),
        format_timestamp(table.expires_at),
    )
    return PricingState(table)


async def refresh_once(
    state: PricingState, settings: Settings, session: aiohttp.ClientSession
) -> bool:
    """Try one refresh; True if the table changed. Raises PricingError on failure."""
    table: PriceTable | None = None  # bundled never changes while the process runs
    if settings.pricing_source is PricingSource.remote:
        table = await fetch_remote(settings, session, etag=state.table.etag)
        _refuse_rollback(state.table, table)
    elif settings.pricing_source is PricingSource.file:
        table = load_file(settings)
    if table is not None and table.document == state.table.document:
        table = None  # same prices (e.g. a publisher without ETags): keep caches warm
    state.last_refresh_at = datetime.now(UTC)
    state.last_error = None
    if table is None:
        return False
    state.table = table
    log.info("pricing refreshed from %s (generated %s)", table.origin,
             format_timestamp(table.generated_at))
    return True


async def refresh_forever(
    state: PricingState, settings: Settings, session: aiohttp.ClientSession
) -> None:
    """Refresh every ``price_table_refresh_seconds`` until cancelled; never raises otherwise."""
    if settings.pricing_source is PricingSource.bundled:
        return
    while True:
        await asyncio.sleep(settings.price_table_refresh_seconds)
        await _refresh_logged(state, settings, session)


async def _refresh_logged(
    state: PricingState, settings: Settings, session: aiohttp.ClientSession
) -> None:
    try:
        await refresh_once(state, settings, session)
    except PricingError as exc:
        _keep_last_good(state, exc.message)
    except Exception as exc:  # the loop must outlive any one bad refresh
        log.exception("pricing refresh crashed; keeping the last good table")
        state.last_error = f"{type(exc).__name__}: {exc}"
    if datetime.now(UTC) > state.table.expires_at:
        log.warning("the active pricing table expired at %s and no fresh one could be loaded",
                    format_timestamp(state.table.expires_at))


def _refuse_rollback(current: PriceTable, fetched: PriceTable | None) -> None:
    # An older, still-valid signed document is what a replaying middlebox would serve to
    # bring back old prices; a publisher only ever moves forward.
    if fetched is not None and fetched.generated_at < current.generated_at:
        raise PricingError(
            f"Remote pricing payload is older than the active table ({fetched.origin}): "
            f"generated_at {format_timestamp(fetched.generated_at)} < "
            f"{format_timestamp(current.generated_at)}; keeping the active table"
        )


def _keep_last_good(state: PricingState, message: str) -> None:
    state.last_error = message
    log.warning("pricing refresh failed, keeping the table from %s (generated %s): %s",
                state.table.origin, format_timestamp(state.table.generated_at), message)
