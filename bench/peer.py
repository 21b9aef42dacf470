"""LiteLLM's proxy as a plain pass-through peer, from a separate install.

``BENCH_LITELLM`` names its ``litellm`` executable (installed in its own venv, e.g.
``python3.11 -m venv /tmp/litellm-venv && /tmp/litellm-venv/bin/pip install 'litellm[proxy]'``);
without it the peer rows are skipped with a note. It runs offline
(``LITELLM_LOCAL_MODEL_COST_MAP=True``), without a database, one model pointed at the same
fake provider as an OpenAI-compatible base, behind a master key (it refuses to start without).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from bench.procs import Child, base_env, free_port, spawn, start

MODEL = "gpt-4o-mini"


def executable() -> str | None:
    path = os.environ.get("BENCH_LITELLM")
    if path and Path(path).is_file() and os.access(path, os.X_OK):
        return path
    return None


def skip_note() -> str:
    if os.environ.get("BENCH_LITELLM"):
        return f"skipped: BENCH_LITELLM={os.environ['BENCH_LITELLM']} is not an executable"
    return ("skipped: set BENCH_LITELLM to a litellm executable installed in its own venv "
            "(pip install 'litellm[proxy]')")


def start_litellm(exe: str, fake: Child, work_dir: Path, log_dir: Path,
                  wait: bool = True) -> tuple[Child, str]:
    """Start LiteLLM; returns (child, master key to send as the Bearer token)."""
    config = work_dir / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        "    litellm_params:\n"
        f"      model: openai/{MODEL}\n"
        f"      api_base: {fake.origin}/v1\n"
        "      api_key: sk-bench-openai\n"
    )
    master_key = "sk-" + secrets.token_hex(24)
    env = base_env()
    env.update({
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_MASTER_KEY": master_key,
        "LITELLM_LOG": "ERROR",
        "LITELLM_TELEMETRY": "False",
        "DISABLE_ADMIN_UI": "True",
    })
    env.pop("DATABASE_URL", None)
    port = free_port()
    argv = [exe, "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
            "--num_workers", "1"]
    if wait:
        child = start("litellm", argv, env, port, log_dir, health_path="/health/liveliness")
    else:
        child = spawn("litellm", argv, env, port, log_dir)
    return child, master_key


def version(exe: str) -> str:
    pip_dir = Path(exe).parent
    for candidate in pip_dir.parent.glob("lib/python*/site-packages/litellm-*.dist-info"):
        return candidate.name.removeprefix("litellm-").removesuffix(".dist-info")
    return "unknown"
