"""``spendguard demo``: the reference validation checklist, end to end, on this machine.

Starts the fake provider and a SpendGuard on free loopback ports (same database as the
CLI), gives a new agent a small budget, calls until the budget answers 402 (one call
streamed), and prints the checklist and the agent's ledger.
"""

from __future__ import annotations

import argparse
import asyncio
import json

import aiohttp
from aiohttp import web
from rich.console import Console

from spendguard_proxy.cli import render
from spendguard_proxy.cli.session import database_url, settings_or_exit
from spendguard_proxy.server.app import build_app
from spendguard_proxy.testing.fake_provider import run_fake_provider

MODEL = "gpt-4o"
MAX_CALLS = 50


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


def _chat(stream: bool) -> dict:
    return {"model": MODEL, "stream": stream, "max_tokens": 400,
            "messages": [{"role": "user", "content": "Tell me about strict budgets."}]}


async def _run(console: Console, budget_cents: int) -> int:
    settings = settings_or_exit()
    dsn = await asyncio.to_thread(database_url, settings)
    async with run_fake_provider() as fake:
        fake.configure(words=300)
        demo_settings = settings.model_copy(update={
            "openai_api_key": "demo-key", "openai_base_url": fake.base_url_openai})
        runner, url = await _serve(build_app(demo_settings, dsn))
        try:
            async with aiohttp.ClientSession() as http:
                return await _checklist(console, http, url, budget_cents)
        finally:
            await runner.cleanup()


async def _checklist(console: Console, http: aiohttp.ClientSession, url: str, cents: int) -> int:
    checks: list[tuple[str, bool, str]] = []
    async with http.get(f"{url}/health") as r:
        health = await r.json()
    checks.append(("health returns {\"status\":\"ok\"}", health == {"status": "ok"},
                   json.dumps(health)))
    async with http.post(f"{url}/v1/agents", json={"name": "demo-agent"}) as r:
        agent_id = (await r.json())["agent_id"]
    async with http.post(f"{url}/v1/agents/{agent_id}/budget",
                         json={"hard_limit_cents": cents, "topup_cents": cents}) as r:
        budget = await r.json()
    checks.append((f"budget shows remaining_cents={cents}", budget["remaining_cents"] == cents,
                   f"remaining_cents={budget['remaining_cents']}"))
    headers = {"x-cynsta-agent-id": agent_id}
    statuses = []
    for i in range(MAX_CALLS):
        async with http.post(f"{url}/v1/chat/completions", json=_chat(stream=i == 0),
                             headers=headers) as r:
            await r.read()
            statuses.append(r.status)
            if r.status != 200:
                break
    first_ok = statuses[:1] == [200]
    checks.append(("a mocked model call succeeds through the proxy (streamed)", first_ok,
                   f"{statuses.count(200)} calls succeeded"))
    async with http.get(f"{url}/v1/agents/{agent_id}/budget") as r:
        after = await r.json()
    decreased = after["remaining_microcents"] < budget["remaining_microcents"]
    checks.append(("remaining decreases after settlement", decreased,
                   f"{budget['remaining_microcents']} → {after['remaining_microcents']} µ¢"))
    checks.append(("the budget answers 402 when it runs out", statuses[-1] == 402,
                   f"last status {statuses[-1]}"))
    async with http.get(f"{url}/v1/agents/{agent_id}/usage?limit=10") as r:
        usage = await r.json()
    for name, ok, detail in checks:
        console.print(f"[{'green' if ok else 'red'}]{'✔' if ok else '✘'}[/] {name}  ({detail})")
    render.usage(console, usage)
    return 0 if all(ok for _, ok, _ in checks) else 1


def _demo(args: argparse.Namespace) -> int:
    return asyncio.run(_run(Console(), args.budget_cents))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the validation checklist against a fake provider")
    p.add_argument("--budget-cents", type=int, default=1, help="the demo agent's budget")
    p.set_defaults(handler=_demo)
