"""Typed keys for the state an aiohttp application carries (created in cleanup_ctx)."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from spendguard_proxy.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", asyncpg.Pool)
LEDGER = web.AppKey("ledger", "LedgerBatcher")
PRICING = web.AppKey("pricing", "PricingState")
UPSTREAMS = web.AppKey("upstreams", dict[str, Any])
METRICS = web.AppKey("metrics", Any)  # spendguard_proxy.server.metrics.Metrics
