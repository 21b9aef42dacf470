"""`spendguard serve` as a process: it announces its URL only once it listens there."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ANNOUNCE_TIMEOUT_S = 60


def _env(dsn: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAP_")}
    env["CAP_DATABASE_URL"] = dsn
    return env


def _argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "spendguard_proxy.cli.main", "serve", *args]


def test_a_busy_port_fails_at_once_without_announcing(dsn):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(_argv("--port", str(port)), capture_output=True, text=True,
                                env=_env(dsn), timeout=60, cwd=ROOT)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == f"error: Cannot listen on 127.0.0.1:{port}: Address already in use\n"


def test_the_announced_url_answers_at_once(dsn):
    proc = subprocess.Popen(_argv("--port", "0"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env(dsn), cwd=ROOT)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(proc.stdout.readline()), daemon=True)
    reader.start()
    try:
        reader.join(ANNOUNCE_TIMEOUT_S)
        assert lines and lines[0], f"no announcement; stderr: {proc.stderr.read()}"
        line = lines[0].strip()
        prefix = "SpendGuard (sidecar) on http://127.0.0.1:"
        assert line.startswith(prefix), line
        url, _, database = line.removeprefix("SpendGuard (sidecar) on ").partition(", ")
        assert not url.endswith(":0")
        assert database.startswith("database: postgresql://") and "postgres:@" not in database
        # No retry: the line is printed only after the socket listens.
        with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
            assert json.loads(response.read()) == {"status": "ok"}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        proc.stdout.close()
        proc.stderr.close()
