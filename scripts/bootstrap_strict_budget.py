#!/usr/bin/env python3
"""Create a budgeted SpendGuard agent over HTTP, in one step, with machine-readable output.

Standard library only, so it runs from any Python 3.9+ without installing SpendGuard:

    python scripts/bootstrap_strict_budget.py --name my-agent --limit 500
    python scripts/bootstrap_strict_budget.py --limit 500 --create-run --json

Steps: GET /health (unless --skip-health-check), POST /v1/agents, POST /v1/agents/{id}/budget,
and with --create-run POST /v1/agents/{id}/runs. The server is --base-url (else CAP_BASE_URL,
else http://127.0.0.1:$CAP_PORT, CAP_PORT defaulting to 8787 as for ``spendguard serve``); a
hosted deployment needs --api-key (else CAP_API_KEY), sent as ``x-api-key``.

Every argument is checked before the first request, by the server's own rules (limit 1 to
10^12 cents, top-up 0 to 10^12, name 1 to 200 characters), so a bad value creates nothing;
if the budget step still fails, the agent just created is deleted again.

Output: with --json one JSON object with sorted keys — ``agent_id``, the budget object's fields
and ``run_id`` when a run was created; otherwise ``key=value`` lines followed by ``export``
lines for a shell. Any failure prints one line on stderr: exit 2 for a bad argument (nothing
was sent), 1 for a failure on the way; an HTTP error shows the server's ``detail`` message.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

DEFAULT_PORT = 8787
TIMEOUT_S = 30
MAX_CENTS = 10**12  # the server's bound on hard_limit_cents and topup_cents
NAME_LENGTH_MAX = 200
PLAIN_FIELDS = ("agent_id", "hard_limit_cents", "remaining_cents", "available_cents",
                "concurrency", "run_id")


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001
        return None  # urllib then raises HTTPError for the 3xx


_OPENER = urllib.request.build_opener(_NoRedirects)


class BootstrapError(Exception):
    """A failure worth one line on stderr."""


def _cents(minimum: int):
    def parse(value: str) -> int:
        try:
            parsed = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{value!r} is not a whole number of cents") from None
        if not minimum <= parsed <= MAX_CENTS:
            raise argparse.ArgumentTypeError(
                f"{parsed} is out of range: from {minimum} to {MAX_CENTS} cents")
        return parsed

    return parse


def _name(value: str) -> str:
    if not 1 <= len(value.strip()) <= NAME_LENGTH_MAX:
        raise argparse.ArgumentTypeError(f"must be 1 to {NAME_LENGTH_MAX} characters")
    return value


def _url(value: str) -> str:
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise argparse.ArgumentTypeError(f"{value!r} is not an http(s) URL")
    return value


def default_base_url(environ: dict[str, str]) -> str:
    """CAP_BASE_URL, else the local ``spendguard serve`` on CAP_PORT (default 8787)."""
    if environ.get("CAP_BASE_URL"):
        try:
            return _url(environ["CAP_BASE_URL"])
        except argparse.ArgumentTypeError as exc:
            raise BootstrapError(f"CAP_BASE_URL: {exc}") from None
    port = environ.get("CAP_PORT") or str(DEFAULT_PORT)
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise BootstrapError(f"CAP_PORT: {port!r} is not a port number (1-65535)")
    return f"http://127.0.0.1:{int(port)}"


def _detail(raw: bytes) -> str:
    text = raw.decode("utf-8", errors="replace").strip()
    try:
        body = json.loads(text)
    except ValueError:
        return text[:300] or "request failed"
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        return body["detail"]
    return text[:300]


class Client:
    def __init__(self, base_url: str, api_key: str | None) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key

    def call(self, method: str, path: str, payload: dict[str, Any] | None = None) -> dict:
        headers = {"Accept": "application/json"}
        data = None
        if payload is not None:
            data = json.dumps(payload).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if self.api_key:
            headers["x-api-key"] = self.api_key
        request = urllib.request.Request(
            self.base_url + path, data=data, method=method, headers=headers
        )
        try:
            with _OPENER.open(request, timeout=TIMEOUT_S) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            if 300 <= exc.code < 400:
                raise BootstrapError(
                    f"{method} {path}: HTTP {exc.code}, a redirect to "
                    f"{exc.headers.get('Location')}; not followed (it would carry the API key "
                    "elsewhere): point CAP_BASE_URL at SpendGuard itself"
                ) from None
            detail = _detail(exc.read())
            raise BootstrapError(f"{method} {path}: HTTP {exc.code}: {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise BootstrapError(f"Cannot reach SpendGuard at {self.base_url}: {reason}") from None
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            raise BootstrapError(f"{method} {path}: the answer is not JSON") from None
        if not isinstance(body, dict):
            raise BootstrapError(f"{method} {path}: expected a JSON object")
        return body


def bootstrap(args: argparse.Namespace) -> dict[str, Any]:
    client = Client(args.base_url, args.api_key)
    if not args.skip_health_check:
        health = client.call("GET", "/health")
        if health.get("status") != "ok":
            raise BootstrapError(f"Health check failed: /health answered {json.dumps(health)}")

    payload: dict[str, Any] = {
        "hard_limit_cents": args.limit,
        "topup_cents": args.limit if args.topup is None else args.topup,
    }
    if args.concurrency:
        payload["concurrency"] = args.concurrency

    created = client.call("POST", "/v1/agents", {"name": args.name})
    agent_id = created.get("agent_id")
    if not isinstance(agent_id, str) or not agent_id:
        raise BootstrapError("POST /v1/agents did not return an agent_id")
    agent_path = "/v1/agents/" + urllib.parse.quote(agent_id, safe="")
    try:
        result = dict(client.call("POST", agent_path + "/budget", payload))
    except BootstrapError as exc:
        raise BootstrapError(f"{exc} ({_undo(client, agent_path)})") from None
    result["agent_id"] = agent_id

    if args.create_run:
        run = client.call("POST", agent_path + "/runs", {})
        if not isinstance(run.get("run_id"), str):
            raise BootstrapError(f"POST {agent_path}/runs did not return a run_id")
        result["run_id"] = run["run_id"]
    return result


def _undo(client: Client, agent_path: str) -> str:
    """Delete the agent whose budget could not be set: no agent is left without a budget."""
    try:
        client.call("DELETE", agent_path)
    except BootstrapError as exc:
        return f"the agent without a budget could not be deleted: {exc}"
    return "the agent was deleted again"


def render_plain(result: dict[str, Any]) -> str:
    lines = [f"{key}={result[key]}" for key in PLAIN_FIELDS if key in result]
    lines.append(f"export SPENDGUARD_AGENT_ID={result['agent_id']}")
    if "run_id" in result:
        lines.append(f"export SPENDGUARD_RUN_ID={result['run_id']}")
    return "\n".join(lines)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, like every other failure
        self.exit(2, f"error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        description="Create a SpendGuard agent with a hard budget (HTTP, standard library only)."
    )
    parser.add_argument("--base-url", type=_url,
                        help="SpendGuard URL (default: CAP_BASE_URL, else "
                        f"http://127.0.0.1:$CAP_PORT, CAP_PORT defaulting to {DEFAULT_PORT})")
    parser.add_argument("--api-key", default=os.environ.get("CAP_API_KEY"),
                        help="tenant API key, hosted mode (default: CAP_API_KEY)")
    parser.add_argument("--name", type=_name, default="strict-budget-agent", help="agent name")
    parser.add_argument("--limit", required=True, type=_cents(1),
                        help=f"hard limit in cents (1 to {MAX_CENTS})")
    parser.add_argument("--topup", type=_cents(0), default=None,
                        help="cents to credit now (default: the limit)")
    parser.add_argument("--concurrency", choices=("exclusive", "shared"),
                        help="exclusive: one run at a time (server default); shared: any runs")
    parser.add_argument("--create-run", action="store_true",
                        help="also create a run and print its run_id")
    parser.add_argument("--skip-health-check", action="store_true",
                        help="do not GET /health first")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object with sorted keys")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.base_url is None:
        try:
            args.base_url = default_base_url(dict(os.environ))
        except BootstrapError as exc:
            parser.error(str(exc))
    try:
        result = bootstrap(args)
    except BootstrapError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        print(render_plain(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
