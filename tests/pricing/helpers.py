"""Plain helpers shared by the pricing tests (documents, settings, a loopback publisher)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from spendguard_proxy.pricing.checks import format_timestamp
from spendguard_proxy.settings import Settings


def base_document(now: datetime | None = None, **overrides: Any) -> dict[str, Any]:
    """A small valid document: a fake model per provider plus one aliased real-looking one."""
    now = now or datetime.now(UTC)
    doc: dict[str, Any] = {
        "schema_version": "1",
        "generated_at": format_timestamp(now - timedelta(minutes=1)),
        "expires_at": format_timestamp(now + timedelta(hours=1)),
        "engine": {"min_version": "0.1.0", "max_version": "0.9.9"},
        "rates": {
            "openai": {
                "fake-model": {
                    "input_cents_per_1m": 100,
                    "output_cents_per_1m": "400.5",
                    "cached_input_cents_per_1m": "12.5",
                    "max_output_tokens": 1000,
                },
                "gpt-4o": {"input_cents_per_1m": 250, "output_cents_per_1m": 1000},
                "gpt-4o-2024-05-13": {"input_cents_per_1m": 500, "output_cents_per_1m": 1500},
            },
            "anthropic": {
                "fake-model": {
                    "input_cents_per_1m": 300,
                    "output_cents_per_1m": 1500,
                    "cache_write_cents_per_1m": 375,
                    "cache_read_cents_per_1m": 30,
                    "context_cliff_tokens": 200000,
                    "cliff_input_cents_per_1m": 600,
                    "cliff_output_cents_per_1m": "2250",
                },
            },
            "gemini": {"fake-model": {"input_cents_per_1m": 10, "output_cents_per_1m": 40}},
            "grok": {"fake-model": {"input_cents_per_1m": 20, "output_cents_per_1m": 50}},
        },
        "aliases": {"openai": {"gpt-4o-2024-08-06": "gpt-4o"}},
    }
    doc.update(overrides)
    return doc


def to_bytes(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, indent=2).encode("utf-8")


def pricing_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "pricing_source": "bundled",
        "pricing_url": None,
        "pricing_file": None,
        "pricing_verify_signature": True,
        "pricing_signing_public_key": None,
        "pricing_signing_private_key": None,
        "pricing_schema_version": "2",
        "price_table_refresh_seconds": 300,
        "pricing_expiry_skew_seconds": 0,
    }
    values.update(overrides)
    return Settings(**values)


@dataclass
class PricingServer:
    """A real HTTP pricing publisher on 127.0.0.1 whose behaviour tests can change."""

    body: bytes = b"{}"
    etag: str = '"v1"'
    mode: str = "ok"  # "ok" | "error" (HTTP 500)
    seen_if_none_match: list[str | None] = field(default_factory=list)
    url: str = ""

    def publish(self, doc: dict[str, Any], etag: str) -> None:
        self.body, self.etag = to_bytes(doc), etag

    async def handle(self, request: web.Request) -> web.StreamResponse:
        match = request.headers.get("If-None-Match")
        self.seen_if_none_match.append(match)
        if self.mode == "error":
            return web.Response(status=500, text="publisher down")
        if match == self.etag:
            return web.Response(status=304, headers={"ETag": self.etag})
        return web.Response(body=self.body, content_type="application/json",
                            headers={"ETag": self.etag})
