"""Load generators, each in its own process: ``wrk`` with a Lua script when installed, else a
compact aiohttp closed-loop generator (``python -m bench.loadgen``).

Both run ``concurrency`` connections that each send the next request as soon as the last one
answered (closed loop), for ``duration_s`` seconds, and report requests/s and latency
percentiles. A non-2xx answer counts as an error, never as a request served.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.procs import CpuMeter, cpu_ticks

MARK = "BENCHJSON "

_LUA = """
wrk.method = "POST"
wrk.body = {body}
{headers}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{mark}{{"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,'
    .. '"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"mean_us":%.1f,'
    .. '"max_us":%d}}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean,
    latency.max))
end
"""


@dataclass
class Target:
    """One kind of request: where, what body, which headers."""

    url: str
    body: bytes
    headers: dict[str, str]
    # (header name, values): each request takes the next value, round robin (e.g. agent ids)
    rotate: tuple[str, list[str]] | None = None


def wrk_path() -> str | None:
    return shutil.which("wrk")


def tool_name() -> str:
    return "wrk" if wrk_path() else "aiohttp closed-loop generator (wrk not installed)"


def _lua_string(value: str) -> str:
    return "[==[" + value + "]==]"


_LUA_ROTATE = """
local rotate_values = {{{values}}}
local rotate_next = 0
request = function()
  rotate_next = rotate_next % #rotate_values + 1
  wrk.headers[ {name} ] = rotate_values[rotate_next]
  return wrk.format()
end
"""


def _lua_script(target: Target) -> str:
    headers = "\n".join(
        f"wrk.headers[ {_lua_string(k)} ] = {_lua_string(v)}" for k, v in target.headers.items()
    )
    if target.rotate:
        name, values = target.rotate
        headers += _LUA_ROTATE.format(name=_lua_string(name),
                                      values=", ".join(_lua_string(v) for v in values))
    return _LUA.format(body=_lua_string(target.body.decode()), headers=headers, mark=MARK)


def start(target: Target, concurrency: int, duration_s: float) -> subprocess.Popen:
    """Start one generator process; ``finish`` reads its result."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-load-"))
    wrk = wrk_path()
    if wrk:
        script = tmp / "post.lua"
        script.write_text(_lua_script(target))
        argv = [wrk, "-t1", f"-c{concurrency}", f"-d{max(1, round(duration_s))}s",
                "--timeout", "10s", "-s", str(script), target.url]
    else:
        body_file = tmp / "body.json"
        body_file.write_bytes(target.body)
        argv = [sys.executable, "-m", "bench.loadgen", "--url", target.url,
                "--body-file", str(body_file), "--concurrency", str(concurrency),
                "--duration", str(duration_s)]
        for name, value in target.headers.items():
            argv += ["--header", f"{name}:{value}"]
        if target.rotate:
            argv += ["--rotate", target.rotate[0] + ":" + ",".join(target.rotate[1])]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, cwd=str(Path(__file__).parents[1]))


def finish(proc: subprocess.Popen, concurrency: int, timeout_s: float) -> dict:
    out, err = proc.communicate(timeout=timeout_s)
    for line in out.decode(errors="replace").splitlines():
        if line.startswith(MARK):
            raw = json.loads(line[len(MARK):])
            return _summary(raw, concurrency)
    raise RuntimeError(f"load generator failed ({proc.returncode}): {err.decode()[-2000:]}"
                       f"{out.decode()[-2000:]}")


def _summary(raw: dict, concurrency: int) -> dict:
    seconds = raw["duration_us"] / 1e6
    errors = raw["connect"] + raw["read"] + raw["write"] + raw["status"] + raw["timeout"]
    ok = raw["requests"] - raw["status"]
    return {
        "concurrency": concurrency,
        "duration_s": round(seconds, 2),
        "requests": raw["requests"],
        "errors": errors,
        "non_2xx": raw["status"],
        "rps": round(ok / seconds, 1) if seconds else 0.0,
        "p50_ms": round(raw["p50_us"] / 1000, 3),
        "p90_ms": round(raw["p90_us"] / 1000, 3),
        "p99_ms": round(raw["p99_us"] / 1000, 3),
        "mean_ms": round(raw["mean_us"] / 1000, 3),
    }


def run(targets: list[Target], concurrency: int, duration_s: float,
        meter: CpuMeter | None = None) -> dict:
    """Run one generator per target at once (load split evenly); return the combined figures.

    ``concurrency`` is per target. ``meter`` (if given) measures the servers' CPU over the run.
    """
    procs = [start(t, concurrency, duration_s) for t in targets]
    window_s = duration_s * 0.8  # inside the generators' run, clear of start and end
    gen_before = {p.pid: cpu_ticks(p.pid) for p in procs}
    if meter:
        meter.start()
    time.sleep(window_s)
    gen_ticks = sum(max(0, cpu_ticks(p.pid) - gen_before[p.pid]) for p in procs)
    cpu = meter.stop() if meter else {}
    results = [finish(p, concurrency, duration_s + 30) for p in procs]
    if len(results) == 1:
        out = results[0]
    else:
        out = _combine(results)
    cpu["loadgen"] = round(100.0 * gen_ticks / CpuMeter.TICKS_PER_S / window_s, 1)
    out["cpu_pct"] = cpu
    return out


def _combine(results: list[dict]) -> dict:
    total = sum(r["requests"] for r in results)
    weight = [r["requests"] / total if total else 0 for r in results]
    return {
        "concurrency": sum(r["concurrency"] for r in results),
        "duration_s": max(r["duration_s"] for r in results),
        "requests": total,
        "errors": sum(r["errors"] for r in results),
        "non_2xx": sum(r["non_2xx"] for r in results),
        "rps": round(sum(r["rps"] for r in results), 1),
        # Percentiles of the union are not the mean of percentiles; report the worst.
        "p50_ms": round(sum(w * r["p50_ms"] for w, r in zip(weight, results)), 3),
        "p90_ms": max(r["p90_ms"] for r in results),
        "p99_ms": max(r["p99_ms"] for r in results),
        "mean_ms": round(sum(w * r["mean_ms"] for w, r in zip(weight, results)), 3),
        "parts": results,
    }


# ---------------------------------------------------------------- the aiohttp fallback


async def _generate(url: str, body: bytes, headers: dict[str, str], concurrency: int,
                    duration_s: float, rotate: tuple[str, list[str]] | None = None) -> dict:
    import aiohttp

    latencies_us: list[float] = []
    counts = {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0}
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=10)
    started = time.perf_counter()
    deadline = started + duration_s
    requests = 0

    turn = 0

    async def worker(session) -> None:
        nonlocal requests, turn
        while time.perf_counter() < deadline:
            sent = headers
            if rotate:
                turn += 1
                sent = {**headers, rotate[0]: rotate[1][turn % len(rotate[1])]}
            t0 = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=sent) as response:
                    await response.read()
                    if response.status >= 300:
                        counts["status"] += 1
            except TimeoutError:
                counts["timeout"] += 1
                continue
            except aiohttp.ClientConnectorError:
                counts["connect"] += 1
                continue
            except aiohttp.ClientError:
                counts["read"] += 1
                continue
            requests += 1
            latencies_us.append((time.perf_counter() - t0) * 1e6)

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    elapsed_us = (time.perf_counter() - started) * 1e6
    latencies_us.sort()

    def pct(q: float) -> float:
        if not latencies_us:
            return 0
        return latencies_us[min(len(latencies_us) - 1, int(q / 100 * len(latencies_us)))]

    return {"requests": requests, "duration_us": int(elapsed_us), **counts,
            "p50_us": int(pct(50)), "p90_us": int(pct(90)), "p99_us": int(pct(99)),
            "mean_us": sum(latencies_us) / len(latencies_us) if latencies_us else 0,
            "max_us": int(latencies_us[-1]) if latencies_us else 0}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="closed-loop HTTP POST load generator")
    parser.add_argument("--url", required=True)
    parser.add_argument("--body-file", required=True)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--rotate", help="NAME:v1,v2,...: one value per request, round robin")
    args = parser.parse_args(argv)
    headers = dict(h.split(":", 1) for h in args.header)
    rotate = None
    if args.rotate:
        name, _, values = args.rotate.partition(":")
        rotate = (name, values.split(","))
    body = Path(args.body_file).read_bytes()
    raw = asyncio.run(_generate(args.url, body, headers, args.concurrency, args.duration,
                                rotate))
    print(MARK + json.dumps(raw), flush=True)


if __name__ == "__main__":
    main()
