"""Sampling profile of a running ``spendguard serve`` under load (py-spy, when installed).

py-spy records the server's stacks (``--nonblocking``: it does not pause the process) as
collapsed stacks; this module sums them per function (self time: the frame on top of the
stack; total time: anywhere on the stack) and per area of the code.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

SAMPLE_RATE_HZ = 200
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")

# First match wins: (area, substring of the frame's file or function).
AREAS = (
    ("postgres client (asyncpg)", "asyncpg"),
    ("http server (aiohttp web)", "aiohttp/web"),
    ("http client (aiohttp client)", "aiohttp/client"),
    ("http wire (aiohttp http/streams)", "aiohttp/"),
    ("event loop (asyncio)", "asyncio/"),
    ("json", "json/"),
    ("token estimate (bpe)", "bpe_openai"),
    ("token estimate (bpe)", "tokens.py"),
    ("metrics (prometheus)", "prometheus_client"),
    ("logging", "logging/"),
    ("uuid", "uuid.py"),
    ("multidict/yarl", "multidict"),
    ("multidict/yarl", "yarl"),
    ("spendguard relay", "spendguard_proxy/server/relay.py"),
    ("spendguard providers", "spendguard_proxy/providers"),
    ("spendguard billing/pricing", "spendguard_proxy/billing"),
    ("spendguard billing/pricing", "spendguard_proxy/pricing"),
    ("spendguard ledger", "spendguard_proxy/ledger.py"),
    ("spendguard server (other)", "spendguard_proxy/server"),
    ("fractions", "fractions.py"),
    ("hashlib", "hashlib"),
)


def py_spy() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


def start(pid: int, duration_s: int, out: Path) -> subprocess.Popen:
    exe = py_spy()
    if exe is None:
        raise RuntimeError("py-spy not installed")
    # --gil: only samples where the server holds the GIL, i.e. runs Python code. Wall-clock
    # samples would mostly show the process waiting for a core inside send() on this 2-core
    # machine (the load generator, the fake and PostgreSQL compete for the same cores).
    argv = [exe, "record", "-p", str(pid), "-d", str(duration_s), "-r", str(SAMPLE_RATE_HZ),
            "-f", "raw", "-o", str(out), "--nonblocking", "--gil"]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)


def cpu_split(pid: int) -> tuple[int, int]:
    """(user, system) clock ticks of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


def _frame(raw: str) -> tuple[str, str]:
    m = _FRAME.match(raw.strip())
    if not m:
        return raw.strip(), ""
    return m.group("func"), m.group("file")


def _short(func: str, file: str) -> str:
    marker = "site-packages/"
    if marker in file:
        file = file.split(marker, 1)[1]
    elif "/lib/python3" in file:
        file = file.split("/lib/python3", 1)[1].split("/", 1)[-1]
    elif "spendguard_proxy/" in file:
        file = "spendguard_proxy/" + file.split("spendguard_proxy/", 1)[1]
    return f"{func} ({file})"


def _area(func: str, file: str) -> str | None:
    for area, needle in AREAS:
        if needle in file or needle in func:
            return area
    return None


def summarize(collapsed: Path, top: int = 20) -> dict:
    self_counts: Counter[str] = Counter()
    total_counts: Counter[str] = Counter()
    area_self: Counter[str] = Counter()
    area_sources: dict[str, Counter[str]] = {}
    samples = 0
    for line in collapsed.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame(f) for f in stack.split(";")]
        frames = [f for f in frames if f[1]]  # drop the process/thread pseudo-frames
        if not frames:
            continue
        samples += count
        names = [_short(*f) for f in frames]
        self_counts[names[-1]] += count
        for name in set(names):
            total_counts[name] += count
        # Self time goes to the innermost frame that belongs to a known area.
        area = next((a for a in (_area(*f) for f in reversed(frames)) if a), "other")
        area_self[area] += count
        # ... and is caused by the innermost frame of our own code (the call site to change).
        ours = next((n for n, f in zip(reversed(names), reversed(frames))
                     if "spendguard_proxy/" in f[1] and "cli/" not in f[1]), None)
        if ours is not None and not area.startswith("spendguard"):
            area_sources.setdefault(area, Counter())[ours] += count

    def pct(n: int) -> float:
        return round(100.0 * n / samples, 1) if samples else 0.0

    return {
        "samples": samples,
        "rate_hz": SAMPLE_RATE_HZ,
        "self": [{"function": f, "pct": pct(n)} for f, n in self_counts.most_common(top)],
        "total": [{"function": f, "pct": pct(n)} for f, n in total_counts.most_common(top)],
        "areas": [{"area": a, "pct": pct(n),
                   "from": [{"function": f, "pct": pct(m)}
                            for f, m in area_sources.get(a, Counter()).most_common(3)]}
                  for a, n in area_self.most_common()],
    }
