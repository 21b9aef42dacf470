"""Where a PriceTable comes from: the bundled document, a file, or a remote URL.

``bundled`` ships inside the package and is trusted as code: no signature, expiry or engine
checks (it cannot be out of step with the code it ships with), only a warning when its
``as_of`` date is more than 90 days old. ``file`` and ``remote`` documents pass
``checks.check_trust`` first.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path

import aiohttp
import yarl

from spendguard_proxy.errors import PricingError
from spendguard_proxy.pricing.canonical import load_document
from spendguard_proxy.pricing.checks import TrustPolicy, check_trust
from spendguard_proxy.pricing.table import PriceTable
from spendguard_proxy.settings import PricingSource, Settings

log = logging.getLogger(__name__)

BUNDLED_STALE_AFTER = timedelta(days=90)


def load_bundled(now: datetime | None = None) -> PriceTable:
    raw = resources.files("spendguard_proxy.pricing").joinpath("bundled.json").read_bytes()
    table = PriceTable.from_document(load_document(raw, "bundled"), source="bundled",
                                     origin="bundled")
    now = now or datetime.now(UTC)
    if now.date() - table.as_of > BUNDLED_STALE_AFTER:
        log.warning(
            "bundled pricing is from %s (%d days old); list prices may have changed: "
            "use CAP_PRICING_SOURCE=file or remote for current prices",
            table.as_of.isoformat(), (now.date() - table.as_of).days,
        )
    return table


def load_file(settings: Settings, now: datetime | None = None) -> PriceTable:
    path = settings.pricing_file
    if path is None:
        raise PricingError("CAP_PRICING_SOURCE=file needs CAP_PRICING_FILE (a JSON document)")
    return table_from_bytes(_read(path), settings, source="file", origin=f"file {path}", now=now)


def table_from_bytes(
    raw: bytes,
    settings: Settings,
    *,
    source: str,
    origin: str,
    etag: str | None = None,
    now: datetime | None = None,
) -> PriceTable:
    """Parse, check trust (per settings) and build a table from a file/remote document."""
    doc = load_document(raw, origin)
    policy = TrustPolicy.from_settings(settings)
    if not policy.verify_signature:
        log.warning("pricing signature check is off (CAP_PRICING_VERIFY_SIGNATURE=false) for %s",
                    origin)
    check_trust(doc, policy, origin, now=now)
    return PriceTable.from_document(doc, source=source, origin=origin, etag=etag)


async def fetch_remote(
    settings: Settings,
    session: aiohttp.ClientSession,
    etag: str | None = None,
    now: datetime | None = None,
) -> PriceTable | None:
    """GET the remote document; None when the server answers 304 to our ``If-None-Match``."""
    url = settings.pricing_url
    if not url:
        raise PricingError("CAP_PRICING_SOURCE=remote needs CAP_PRICING_URL")
    headers = {"Accept": "application/json"}
    # Ask for the schema we read: a v2 publisher down-converts for a v1 reader.
    url = str(yarl.URL(url).update_query(schema_version=settings.pricing_schema_version))
    if etag:
        headers["If-None-Match"] = etag
    try:
        async with session.get(url, headers=headers, timeout=_timeout(settings)) as resp:
            if resp.status == 304 and etag:
                return None
            raw = await _read_limited(resp, settings.max_body_bytes, url)
            if resp.status != 200:
                detail = raw[:200].decode("utf-8", "replace")
                raise PricingError(
                    f"Remote pricing request failed: HTTP {resp.status} from {url}: {detail}"
                )
            new_etag = resp.headers.get("ETag")
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise PricingError(
            f"Remote pricing request failed: {url}: {type(exc).__name__} {exc}".rstrip()
        ) from None
    return table_from_bytes(raw, settings, source="remote", origin=url, etag=new_etag, now=now)


async def load_table(
    settings: Settings, session: aiohttp.ClientSession | None = None
) -> PriceTable:
    """The table the settings ask for; PricingError stops start-up with its message."""
    if settings.pricing_source is PricingSource.bundled:
        return load_bundled()
    if settings.pricing_source is PricingSource.file:
        return load_file(settings)
    if session is not None:
        table = await fetch_remote(settings, session)
    else:
        async with aiohttp.ClientSession() as own_session:
            table = await fetch_remote(settings, own_session)
    if table is None:  # only possible with an ETag, which a first load never sends
        raise PricingError("Remote pricing answered 304 to a first request")
    return table


def _timeout(settings: Settings) -> aiohttp.ClientTimeout:
    # No pricing-specific timeout setting exists; the upstream ones bound the same kind of wait.
    return aiohttp.ClientTimeout(
        total=None,
        connect=settings.upstream_connect_timeout_s,
        sock_read=settings.upstream_first_byte_timeout_s,
    )


async def _read_limited(resp: aiohttp.ClientResponse, limit: int, url: str) -> bytes:
    # A pricing document is small; refuse one larger than the biggest body we would accept.
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise PricingError(f"Remote pricing document from {url} exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise PricingError(f"Cannot read CAP_PRICING_FILE {path}: {exc.strerror or exc}") from None
