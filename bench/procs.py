"""Child processes for the benchmark: the fake provider, SpendGuard, LiteLLM.

Every child is started in its own process group and killed by its pid at the end; a child
that does not answer its health check in time stops the run with its log's tail.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

VENV_BIN = Path(sys.executable).parent
HEALTH_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Child:
    name: str
    popen: subprocess.Popen
    port: int
    log_path: Path
    pids_extra: list[int] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.popen.poll() is not None:
            return
        with _suppress():
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with _suppress():
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=5)


class _suppress:
    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        return kind is not None and issubclass(kind, (ProcessLookupError, PermissionError))


def spawn(name: str, argv: list[str], env: dict[str, str], port: int, log_dir: Path) -> Child:
    """Start a child without waiting for it (``wait_healthy`` before using it)."""
    log_path = log_dir / f"{name}.log"
    with open(log_path, "wb") as log:
        popen = subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, cwd=str(log_dir),  # not the checkout: see BENCH_SPENDGUARD_SRC
        )
    return Child(name, popen, port, log_path)


def start(name: str, argv: list[str], env: dict[str, str], port: int, log_dir: Path,
          health_path: str = "/health") -> Child:
    child = spawn(name, argv, env, port, log_dir)
    try:
        wait_healthy(child, health_path)
    except BaseException:
        child.stop()
        raise
    return child


def wait_healthy(child: Child, path: str, timeout_s: float = HEALTH_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    url = child.origin + path
    while time.monotonic() < deadline:
        if child.popen.poll() is not None:
            raise RuntimeError(f"{child.name} exited ({child.popen.returncode}):\n"
                               f"{child.log_tail()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status < 500:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        except urllib.error.HTTPError as exc:  # pragma: no cover — URLError subclass
            if exc.code < 500:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{child.name} not healthy after {timeout_s}s:\n{child.log_tail()}")


def base_env() -> dict[str, str]:
    """The environment without SpendGuard or provider settings that would leak in."""
    drop = ("CAP_", "OPENAI_", "XAI_", "GROK_", "ANTHROPIC_", "GEMINI_")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


def fake_provider(log_dir: Path) -> Child:
    port = free_port()
    argv = [sys.executable, "-m", "spendguard_proxy.testing.fake_provider", "--port", str(port),
            "--host", "127.0.0.1"]
    return start("fake_provider", argv, base_env(), port, log_dir, health_path="/_fake/billed")


def spendguard_env(dsn: str, fake: Child, data_dir: Path, **extra: str) -> dict[str, str]:
    env = base_env()
    env.update({
        "CAP_DATABASE_URL": dsn,
        "CAP_DATA_DIR": str(data_dir),
        "OPENAI_BASE_URL": f"{fake.origin}/v1",
        "OPENAI_API_KEY": "sk-bench-openai",
        "XAI_BASE_URL": f"{fake.origin}/v1",
        "XAI_API_KEY": "xai-bench",
        "ANTHROPIC_BASE_URL": fake.origin,
        "ANTHROPIC_API_KEY": "sk-ant-bench",
        "GEMINI_BASE_URL": fake.origin,
        "GEMINI_API_KEY": "gem-bench",
        "CAP_DB_POOL_MAX_SIZE": "20",
    })
    env.update(extra)
    return env


def spendguard(name: str, env: dict[str, str], log_dir: Path, wait: bool = True,
               extra_args: list[str] | None = None) -> Child:
    """``spendguard serve`` on a free port; ``extra_args`` go after ``serve`` (``--workers 2``)."""
    port = free_port()
    serve = ["serve", "--port", str(port), "--host", "127.0.0.1", *(extra_args or [])]
    argv = [str(VENV_BIN / "spendguard"), *serve]
    if os.environ.get("BENCH_SPENDGUARD_SRC"):
        # A scratch copy of the package (prototypes): put it first on the module path.
        env = {**env, "PYTHONPATH": os.environ["BENCH_SPENDGUARD_SRC"]}
        argv = [sys.executable, "-m", "spendguard_proxy.cli.main", *serve]
    if not wait:
        return spawn(name, argv, env, port, log_dir)
    return start(name, argv, env, port, log_dir)


def cpu_ticks(pid: int) -> int:
    """utime + stime of one process, in clock ticks (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def pids_named(name: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


class CpuMeter:
    """CPU used by groups of processes over one measurement, as % of one core."""

    TICKS_PER_S = os.sysconf("SC_CLK_TCK")

    def __init__(self, groups: dict[str, list[int] | str]) -> None:
        self.groups = groups

    def _pids(self, spec: list[int] | str) -> list[int]:
        return pids_named(spec) if isinstance(spec, str) else spec

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._pid_sets = {g: self._pids(s) for g, s in self.groups.items()}
        self._before = {g: {p: cpu_ticks(p) for p in pids} for g, pids in self._pid_sets.items()}

    def stop(self) -> dict[str, float]:
        elapsed = time.monotonic() - self._t0
        out = {}
        for group, spec in self.groups.items():
            pids = set(self._pids(spec)) | set(self._before[group])
            used = sum(max(0, cpu_ticks(p) - self._before[group].get(p, 0)) for p in pids)
            out[group] = round(100.0 * used / self.TICKS_PER_S / elapsed, 1)
        return out
