"""Pricing: rate cards, signed pricing documents, the active price table and its sources.

Modules, one job each:

- ``ratecard``  — one model's exact rates (``RateCard``) parsed from a document entry.
- ``canonical`` — strict JSON reading (no floats) and the canonical bytes that get signed.
- ``signing``   — Ed25519 keys, signatures over the canonical bytes.
- ``checks``    — the trust checks a file or remote document must pass (schema, expiry, …).
- ``table``     — ``PriceTable``: the parsed document, model lookup and aliases.
- ``sources``   — where a table comes from: bundled, file, remote (aiohttp).
- ``state``     — ``PricingState`` held by the app, start-up load and the refresh loop.
"""

from __future__ import annotations

# The version remote documents are checked against (``engine.min_version``/``max_version``).
# It moves with the pricing maths, not with every release: bump it when billing semantics change.
ENGINE_VERSION = "0.2.0"
