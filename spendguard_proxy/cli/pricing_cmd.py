"""``spendguard pricing keygen|sign|verify|show``.

Handlers take the parsed ``args`` and return the exit code: 0 on success, 1 after printing
one line on stderr (they never raise ``SystemExit``). Settings come from ``args.settings``
when the entry point put them there, else from the environment. Rendering is a pure step
(``render_table`` on a given Console) so tests can read it on a fixed-width console.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import stat
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from rich.console import Console
from rich.table import Table
from rich.text import Text

from spendguard_proxy.errors import PricingError, SpendGuardError
from spendguard_proxy.pricing.canonical import load_document
from spendguard_proxy.pricing.checks import TrustPolicy, check_trust, format_timestamp
from spendguard_proxy.pricing.ratecard import (
    Prices,
    Rate,
    RateCard,
    Tiered,
    fraction_to_str,
    rate_to_json,
)
from spendguard_proxy.pricing.signing import generate_keypair, sign_document
from spendguard_proxy.pricing.sources import load_table
from spendguard_proxy.pricing.table import PriceTable
from spendguard_proxy.settings import Settings, SettingsError, load_settings

DEFAULT_TTL_S = 7 * 24 * 3600


def register(subparsers: Any) -> None:
    """Add ``pricing`` and its subcommands to an argparse subparsers object."""
    pricing = subparsers.add_parser("pricing", help="pricing documents and the active table")
    sub = pricing.add_subparsers(dest="pricing_command", metavar="COMMAND", required=True)

    keygen = sub.add_parser("keygen", help="new Ed25519 key pair (base64 of the raw keys)")
    keygen.add_argument("--json", action="store_true", help="print JSON")
    keygen.set_defaults(handler=cmd_keygen)

    sign = sub.add_parser(
        "sign",
        help="stamp generated_at/expires_at and sign a document",
        description="Validates the document, sets generated_at to now and expires_at to now + "
        "--ttl-seconds (unless --keep-dates), then signs. Writes FILE in place unless --out.",
    )
    sign.add_argument("file", type=Path, metavar="FILE")
    sign.add_argument("--key", help="base64 private key (default: CAP_PRICING_SIGNING_PRIVATE_KEY)")
    sign.add_argument("--out", type=Path, help="write here instead of FILE")
    sign.add_argument("--ttl-seconds", type=int, default=DEFAULT_TTL_S,
                      help=f"validity from now (default {DEFAULT_TTL_S})")
    sign.add_argument("--keep-dates", action="store_true",
                      help="sign the generated_at/expires_at already in the document")
    sign.set_defaults(handler=cmd_sign)

    verify = sub.add_parser("verify", help="run every check on a document (file or URL)")
    verify.add_argument("source", metavar="FILE_OR_URL")
    verify.add_argument("--public-key",
                        help="base64 public key (default: CAP_PRICING_SIGNING_PUBLIC_KEY)")
    verify.set_defaults(handler=cmd_verify)

    show = sub.add_parser("show", help="the active price table (per CAP_PRICING_SOURCE)")
    show.add_argument("--provider", help="only this provider")
    show.add_argument("--model", help="only this model (aliases resolve)")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(handler=cmd_show)


# --- handlers ---------------------------------------------------------------------------


def cmd_keygen(args: argparse.Namespace) -> int:
    pair = generate_keypair()
    if args.json:
        print(json.dumps({"public_key": pair.public_key, "private_key": pair.private_key}))
    else:
        print(f"public_key:  {pair.public_key}")
        print(f"private_key: {pair.private_key}")
        print("Keep the private key secret (CAP_PRICING_SIGNING_PRIVATE_KEY); give the public "
              "key to consumers (CAP_PRICING_SIGNING_PUBLIC_KEY).", file=sys.stderr)
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    try:
        key = args.key or _settings(args).pricing_signing_private_key
        if not key:
            raise PricingError("No signing key: pass --key or set CAP_PRICING_SIGNING_PRIVATE_KEY")
        if args.ttl_seconds <= 0:
            raise PricingError("--ttl-seconds must be positive")
        doc = load_document(_read_file(args.file), str(args.file))
        if not args.keep_dates:
            doc = _stamp_dates(doc, datetime.now(UTC), timedelta(seconds=args.ttl_seconds))
        # Refuse to sign what no consumer could load: the shape and every rate must parse.
        PriceTable.from_document(doc, source="file", origin=str(args.file))
        signed = sign_document(doc, key)
        out = args.out or args.file
        _write_atomic(out, json.dumps(signed, indent=2, ensure_ascii=False) + "\n")
    except (SpendGuardError, SettingsError) as exc:
        return _fail(exc)
    print(f"signed {out} (generated_at {signed['generated_at']}, "
          f"expires_at {signed['expires_at']})")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    try:
        settings = _settings(args)
        public_key = args.public_key or settings.pricing_signing_public_key
        if not public_key:
            raise PricingError(
                "No public key: pass --public-key or set CAP_PRICING_SIGNING_PUBLIC_KEY"
            )
        policy = TrustPolicy(
            verify_signature=True,
            public_key=public_key,
            schema_version=settings.pricing_schema_version,
            skew_s=settings.pricing_expiry_skew_seconds,
        )
        raw = _fetch(args.source) if _is_url(args.source) else _read_file(Path(args.source))
        doc = load_document(raw, args.source)
        check_trust(doc, policy, args.source)
        table = PriceTable.from_document(doc, source="file", origin=args.source)
    except (SpendGuardError, SettingsError) as exc:
        return _fail(exc)
    models = table.model_count()
    print(f"OK {args.source}: signature valid, schema {doc['schema_version']}, {models} models, "
          f"expires_at {format_timestamp(table.expires_at)}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    try:
        table = asyncio.run(load_table(_settings(args)))
        cards = select_cards(table, args.provider, args.model)
    except (SpendGuardError, SettingsError) as exc:
        return _fail(exc)
    if args.json:
        print(json.dumps(table_json(table, cards), indent=2, ensure_ascii=False))
    else:
        render_table(Console(), table, cards)
    return 0


# --- pure pieces ------------------------------------------------------------------------


def select_cards(table: PriceTable, provider: str | None, model: str | None) -> list[RateCard]:
    """The cards ``show`` lists; ``--model`` resolves through the match rules."""
    if model is not None:
        providers = [provider] if provider else sorted(table.cards)
        for name in providers:
            try:
                return [table.lookup(name, model)]
            except SpendGuardError:
                continue
        raise PricingError(f"Unknown model for pricing: {provider or '*'}:{model}")
    if provider is not None and provider not in table.cards:
        raise PricingError(f"No prices for provider {provider!r} in this table")
    return [c for c in table.entries() if provider is None or c.provider == provider]


def table_json(table: PriceTable, cards: list[RateCard], now: datetime | None = None) -> dict:
    now = now or datetime.now(UTC)
    return {
        **_header(table, now),
        "models": [
            {
                "provider": card.provider,
                "model": card.model,
                "source": card.source or table.source,
                "prices_since": _since(card, now),
                "cents": {k: rate_to_json(v) for k, v in card.resolve(now).items()},
                "options": card.option_values,
                "max_output_tokens": card.max_output_tokens,
                "deprecated": card.deprecated,
            }
            for card in cards
        ],
    }


def render_table(
    console: Console, table: PriceTable, cards: list[RateCard], now: datetime | None = None
) -> None:
    """Header lines, then one table per provider: standard prices in force now."""
    now = now or datetime.now(UTC)
    header = _header(table, now)
    age_days = int(header["age_seconds"] // 86400)
    for line in (
        f"Pricing source: {header['source']} ({table.origin}), schema {table.schema_version}",
        (f"As of {header['as_of']} ({age_days} days old), generated {header['generated_at']}, "
         f"expires {header['expires_at']}"),
        ("US$ per 1M tokens, standard tier, prices in force now; '+' marks long-context tiers; "
         "search fees per 1k calls."),
    ):
        console.print(Text(line))  # Text: a path or URL with [brackets] is not markup
    for provider in sorted({card.provider for card in cards}):
        console.print(_provider_grid([c for c in cards if c.provider == provider], provider,
                                     now))


_RATE_COLUMNS = (
    ("In", "input_mtok"),
    ("Cached", "cache_read_mtok"),
    ("Write", "cache_write_mtok"),
    ("Write 1h", "cache_write_1h_mtok"),
    ("Out", "output_mtok"),
)


def _provider_grid(cards: list[RateCard], provider: str, now: datetime) -> Table:
    prices = [card.resolve(now) for card in cards]
    # Only the rate columns some model of this provider uses, so the table fits 80 columns.
    columns = [(title, key) for title, key in _RATE_COLUMNS if any(key in p for p in prices)]
    grid = Table(title=provider, title_justify="left")
    # Prices never truncate; on a narrow console the model and extras columns wrap instead.
    grid.add_column("Model", overflow="fold", min_width=14)
    for title, _ in columns:
        grid.add_column(title, justify="right", no_wrap=True)
    grid.add_column("Max out", justify="right", no_wrap=True)
    grid.add_column("Extras", overflow="fold", min_width=10)
    for card, price in zip(cards, prices, strict=True):
        rates = [_rate_cell(price.get(key)) for _, key in columns]
        cells = [card.model + (" (deprecated)" if card.deprecated else ""), *rates,
                 str(card.max_output_tokens or "-"), _extras(card, price, now)]
        grid.add_row(*(Text(cell) for cell in cells))
    return grid


def _header(table: PriceTable, now: datetime | None) -> dict[str, Any]:
    return {
        "source": table.source,
        "origin": table.origin,
        "schema_version": table.schema_version,
        "as_of": table.as_of.isoformat(),
        "age_seconds": int(table.age_seconds(now)),
        "generated_at": format_timestamp(table.generated_at),
        "expires_at": format_timestamp(table.expires_at),
        "loaded_at": format_timestamp(table.loaded_at),
    }


def _since(card: RateCard, now: datetime) -> str | None:
    day = now.date()
    current = [p.starts for p in card.prices if p.starts is not None and p.starts <= day]
    return max(current).isoformat() if current else None


def _rate_cell(rate: Rate | None) -> str:
    if rate is None:
        return "-"
    if isinstance(rate, Tiered):
        return _usd(rate.base) + ("+" if rate.tiers else "")
    return _usd(rate)


def _extras(card: RateCard, prices: Prices, now: datetime) -> str:
    parts = []
    for key, rate in prices.items():
        if isinstance(rate, Tiered):
            parts += [f"{key.removesuffix('_mtok')} >{s // 1000}k {_usd(p)}" for s, p in rate.tiers]
    for key, label in (("web_searches_kcount", "web search"), ("storage_searches_kcount",
                       "file search"), ("code_executions_kcount", "code exec")):
        if key in prices:
            parts.append(f"{label} {_rate_cell(prices[key])}/1k")
    for option, values in card.option_values.items():
        parts.append(f"{option}: {'/'.join(values)}")
    since = _since(card, now)
    source = (card.source or "document").split(";")[0]  # the rest is in --json
    parts.append(f"source: {source}" + (f", since {since}" if since else ""))
    return ", ".join(parts)


def _usd(cents: Any) -> str:
    """Exact dollars of a cents amount ("$0.175"); display only, never used for money."""
    if cents is None:
        return "-"
    text = fraction_to_str(cents / 100)
    whole, _, frac = text.partition(".")
    return f"${whole}.{frac.ljust(2, '0')}"


# --- helpers ----------------------------------------------------------------------------


def _settings(args: argparse.Namespace) -> Settings:
    settings = getattr(args, "settings", None)
    return settings if isinstance(settings, Settings) else load_settings()


def _stamp_dates(doc: dict[str, Any], now: datetime, ttl: timedelta) -> dict[str, Any]:
    now = now.replace(microsecond=0)
    return {**doc, "generated_at": format_timestamp(now), "expires_at": format_timestamp(now + ttl)}


def _is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def _fetch(url: str) -> bytes:
    async def get() -> bytes:
        timeout = aiohttp.ClientTimeout(total=30)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.get(url, headers={"Accept": "application/json"}) as resp,
            ):
                body = await resp.read()
                if resp.status != 200:
                    raise PricingError(f"Remote pricing request failed: HTTP {resp.status} "
                                       f"from {url}")
                return body
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise PricingError(f"Remote pricing request failed: {url}: {exc}") from None

    return asyncio.run(get())


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise PricingError(f"Cannot read {path}: {exc.strerror or exc}") from None


def _write_atomic(path: Path, text: str) -> None:
    # Write beside the target and rename, so a crash never leaves half a signed document.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        # mkstemp makes the file private; a pricing document is meant to be published.
        mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else 0o644
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise PricingError(f"Cannot write {path}: {exc.strerror or exc}") from None


def _fail(exc: Exception) -> int:
    message = getattr(exc, "message", None) or str(exc)
    print(f"error: {' '.join(message.split())}", file=sys.stderr)
    return 1
