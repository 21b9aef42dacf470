"""Fixtures for the provider adapter tests: a fake provider on 127.0.0.1:0."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from spendguard_proxy.testing.fake_provider import FakeProvider, run_fake_provider


@pytest.fixture
async def fake() -> AsyncIterator[FakeProvider]:
    async with run_fake_provider() as provider:
        yield provider
