"""Fixtures for the pricing tests: keys, document builders, a real pricing server on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from spendguard_proxy.pricing.signing import KeyPair, generate_keypair, sign_document

from .helpers import PricingServer, base_document, to_bytes


@pytest.fixture(scope="session")
def keys() -> KeyPair:
    return generate_keypair()


@pytest.fixture(scope="session")
def other_keys() -> KeyPair:
    return generate_keypair()


@pytest.fixture
def make_signed(keys: KeyPair) -> Callable[..., dict[str, Any]]:
    def make(key: str | None = None, **overrides: Any) -> dict[str, Any]:
        return sign_document(base_document(**overrides), key or keys.private_key)

    return make


@pytest.fixture
def write_doc(tmp_path: Path) -> Callable[[dict[str, Any]], Path]:
    def write(doc: dict[str, Any], name: str = "pricing.json") -> Path:
        path = tmp_path / name
        path.write_bytes(to_bytes(doc))
        return path

    return write


@pytest.fixture
async def pricing_server() -> AsyncIterator[PricingServer]:
    server = PricingServer()
    app = web.Application()
    app.router.add_get("/v1/public/pricing", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    server.url = f"http://127.0.0.1:{port}/v1/public/pricing"
    try:
        yield server
    finally:
        await runner.cleanup()
