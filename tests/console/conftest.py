"""Console fixtures: real SpendGuard servers (sidecar and hosted) on 127.0.0.1 whose OpenAI
upstream is the fake provider, and one headless Chromium (Debian's, driven by Playwright)."""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass

import aiohttp
import pytest

from spendguard_proxy import tenants
from spendguard_proxy.server.app import build_app
from spendguard_proxy.server.runner import start_site
from spendguard_proxy.settings import Mode

CHROMIUM = os.environ.get("CAP_TEST_CHROMIUM", "/usr/bin/chromium")
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Console:
    base_url: str  # http://127.0.0.1:<port>

    def url(self, path: str) -> str:
        return self.base_url + path


async def _serve(settings, dsn):
    runner, port = await start_site(build_app(settings, dsn), settings)
    return runner, Console(f"http://127.0.0.1:{port}")


@pytest.fixture(scope="session")
def console_settings(settings, fake):
    return settings.model_copy(update={
        "openai_api_key": "sk-test-openai", "openai_base_url": fake.base_url_openai,
        "console_poll_interval_s": 0.2,
    })


@pytest.fixture(scope="session")
async def sidecar_console(console_settings, dsn):
    runner, console = await _serve(console_settings, dsn)
    yield console
    await runner.cleanup()


@pytest.fixture(scope="session")
async def hosted_console(console_settings, dsn):
    settings = console_settings.model_copy(update={"mode": Mode.hosted, "key_cache_ttl_s": 0.3})
    runner, console = await _serve(settings, dsn)
    yield console
    await runner.cleanup()


@dataclass
class Tenant:
    tenant_id: uuid.UUID
    api_key: str
    key_id: uuid.UUID


async def new_tenant(pool, scopes: list[str] | None = None) -> Tenant:
    tenant = await tenants.create_tenant(pool, f"console-{uuid.uuid4().hex[:8]}")
    tid = uuid.UUID(tenant["tenant_id"])
    key = await tenants.create_key(pool, tid, scopes or list(tenants.SCOPES))
    return Tenant(tid, key["api_key"], uuid.UUID(key["key_id"]))


@pytest.fixture
async def client():
    """A plain HTTP client with its own cookie jar (cookies for 127.0.0.1 kept)."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


@pytest.fixture(scope="session")
async def browser():
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        await chromium.close()


@pytest.fixture
async def page(browser):
    context = await browser.new_context()
    page = await context.new_page()
    page.set_default_timeout(10_000)
    yield page
    await context.close()


def csrf_of(html: str) -> str:
    match = CSRF_FIELD.search(html)
    assert match, "the page has no form with a CSRF token"
    return match[1]
