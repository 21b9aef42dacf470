"""The CLI's HTTP mode never follows a redirect: the tenant key stays with CAP_BASE_URL.

The probe: a `CAP_BASE_URL` answering 302 to another origin got the CLI to send its
``x-api-key`` there. Here the "other origin" is a second loopback server that records every
request it gets; it must get none.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
from aiohttp import web

from spendguard_proxy.server.runner import start_site

ROOT = Path(__file__).resolve().parents[2]
KEY = "sk_cynsta_live_REDIRECTPROBE0123456789abcdef"
CLI_TIMEOUT_S = 60


async def _serve(settings, handler) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner, port = await start_site(app, settings)
    return runner, f"http://127.0.0.1:{port}"


async def _cli(*args: str, base_url: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAP_")}
    env.update({"CAP_MODE": "hosted", "CAP_API_KEY": KEY, "CAP_BASE_URL": base_url})
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "spendguard_proxy.cli.main", *args, env=env, cwd=ROOT,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), CLI_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.parametrize(("status", "args"), [
    (302, ("agent", "list")),
    (301, ("budget", "get", "--agent", "6f1c1f3e-0000-4000-8000-000000000001")),
    (307, ("agent", "create", "--name", "probe")),  # 307/308 would resend the POST body too
    (308, ("budget", "set", "--agent", "6f1c1f3e-0000-4000-8000-000000000001",
           "--limit", "5")),
])
async def test_a_redirect_is_reported_not_followed(settings, status, args):
    elsewhere_got: list[dict[str, str]] = []

    async def elsewhere(request: web.Request) -> web.Response:
        elsewhere_got.append(dict(request.headers))
        return web.json_response({"agents": []})

    other, other_url = await _serve(settings, elsewhere)
    try:
        location = f"{other_url}/v1/agents?stolen=1"

        async def redirecting(request: web.Request) -> web.Response:
            return web.Response(status=status, headers={"Location": location})

        base, base_url = await _serve(settings, redirecting)
        try:
            code, out, err = await _cli(*args, base_url=base_url)
        finally:
            await base.cleanup()
    finally:
        await other.cleanup()
    assert elsewhere_got == []  # neither the key nor anything else went there
    assert code == 1 and out == ""
    assert f"answered HTTP {status}, a redirect to {location}; not followed" in err
    assert KEY not in err
