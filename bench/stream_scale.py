"""Many streams at once through ONE ``spendguard serve`` (one worker): how many stay open
together, what the process's memory does meanwhile, and whether the ledger stays exact.

The fake provider streams ``words`` words ``delay_ms`` apart (its defaults, set by
``POST /_fake/config``: SpendGuard does not forward the ``x-fake-*`` headers upstream), so each
stream stays open ``words × delay_ms``. One asyncio client process
(``python -m bench.stream_scale --client``, aiohttp, one connection per stream) opens
``streams`` of them, at most ``OPEN_PARALLEL`` still waiting for their first event at a time
(the listen backlog would otherwise drop SYNs, and their 1 s retransmits would stagger the
opening), and reads each to its ``[DONE]``. A stream is open from its first event to its end;
the peak is the most open at one moment. Meanwhile the server's ``VmRSS`` is sampled every
100 ms. After the last stream, the agent's ledger must balance (Σ deltas == remaining, no
overrun), hold one charge per completed stream, and have no hold left.

The server runs with ``CAP_CLIENT_MAX_CONNECTIONS`` and ``CAP_UPSTREAM_MAX_CONNECTIONS`` at
``CONNECTION_CAP`` (each stream holds a client and an upstream connection). Bounded: the
client gives up at ``CLIENT_DEADLINE_S`` and is killed at ``KILL_AFTER_S``.

Run alone: ``.venv/bin/python -m bench.stream_scale`` (a fresh database, its own fake).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

import asyncpg

from bench import database, procs
from bench.standalone import run_alone

STREAMS = 5000
DELAY_MS = 1000
# 24 s per stream: on 2 shared cores opening 5,000 through one process takes ~15 s, and the
# first must still be open when the last opens.
WORDS = 24
# Under aiohttp's listen backlog (128) at SpendGuard and at the fake: more connections at once
# overflow it, and the dropped SYNs come back 1-3 s later.
OPEN_PARALLEL = 100
CONNECTION_CAP = 6000
CLIENT_DEADLINE_S = 50.0
KILL_AFTER_S = 65.0
SAMPLE_EVERY_S = 0.1
IDLE_CALLS = 20  # non-stream calls before the idle RSS: lazy imports and the pools are warm
HOLDS_DRAIN_S = 10.0
MARK = "BENCHJSON "
MODEL = "gpt-4o-mini"
STREAM_BODY = json.dumps({
    "model": MODEL,
    "messages": [{"role": "user", "content": "Count slowly."}],
    "max_tokens": 64,
    "stream": True,
}).encode()
CHAT_BODY = json.dumps({
    "model": MODEL,
    "messages": [{"role": "user", "content": "Say hello."}],
    "max_tokens": 16,
}).encode()


# ------------------------------------------------------------------ the client process


async def _client(url: str, headers: dict[str, str], streams: int, open_parallel: int,
                  deadline_s: float) -> dict:
    import aiohttp

    opening = asyncio.Semaphore(open_parallel)
    kinds: Counter[str] = Counter()
    state = {"open": 0, "peak": 0, "answered": 0, "opened": 0, "completed": 0, "events": 0}
    started = time.perf_counter()
    all_open_at: list[float] = []
    first_event_s: list[float] = []  # from sending the request to its first event

    async def one(session: aiohttp.ClientSession) -> None:
        is_open = waiting = False
        try:
            await opening.acquire()
            waiting = True
            sent = time.perf_counter()
            async with session.post(url, data=STREAM_BODY, headers=headers) as response:
                if response.status != 200:
                    kinds[f"HTTP {response.status}"] += 1
                    await response.read()
                    return
                state["answered"] += 1
                tail = b""
                async for chunk in response.content.iter_any():
                    events = chunk.count(b"data:")
                    state["events"] += events
                    if events and not is_open:
                        is_open, waiting = True, False
                        first_event_s.append(time.perf_counter() - sent)
                        opening.release()
                        state["open"] += 1
                        state["opened"] += 1
                        state["peak"] = max(state["peak"], state["open"])
                        if state["opened"] == streams:
                            all_open_at.append(time.perf_counter() - started)
                    tail = (tail + chunk)[-64:]
                if b"[DONE]" in tail:
                    state["completed"] += 1
                else:
                    kinds["ended without [DONE]"] += 1
        except TimeoutError:
            kinds["timeout"] += 1
        except aiohttp.ClientConnectorError:
            kinds["connect"] += 1
        except aiohttp.ClientError as exc:
            kinds[type(exc).__name__] += 1
        finally:
            if waiting:
                opening.release()
            if is_open:
                state["open"] -= 1

    connector = aiohttp.TCPConnector(limit=streams + 100, force_close=True)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=15, sock_read=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        tasks = [asyncio.create_task(one(session)) for _ in range(streams)]
        _, pending = await asyncio.wait(tasks, timeout=deadline_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    return {
        "streams": streams,
        "peak_open": state["peak"],
        "answered": state["answered"],  # 200: each is charged once, however it ends
        "opened": state["opened"],
        "completed": state["completed"],
        "errors": sum(kinds.values()),
        "error_kinds": dict(kinds),
        "unfinished": len(pending),
        "events": state["events"],
        "open_all_s": round(all_open_at[0], 2) if all_open_at else None,
        "first_event_p50_ms": _percentile_ms(first_event_s, 50),
        "first_event_p99_ms": _percentile_ms(first_event_s, 99),
        "wall_s": round(time.perf_counter() - started, 2),
    }


def _percentile_ms(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(1000 * values[min(len(values) - 1, int(q / 100 * len(values)))], 1)


def _raise_fd_limit(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))


def client_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description="many concurrent SSE streams, one process")
    parser.add_argument("--client", action="store_true")
    parser.add_argument("--url", required=True)
    parser.add_argument("--agent", help="x-cynsta-agent-id (through SpendGuard)")
    parser.add_argument("--header", action="append", default=[], metavar="NAME:VALUE")
    parser.add_argument("--streams", type=int, default=STREAMS)
    parser.add_argument("--open-parallel", type=int, default=OPEN_PARALLEL)
    parser.add_argument("--deadline", type=float, default=CLIENT_DEADLINE_S)
    args = parser.parse_args(argv)
    _raise_fd_limit(args.streams + 1000)
    try:
        import uvloop
        runner = uvloop.run
    except ImportError:  # pragma: no cover — uvloop is a server dependency
        runner = asyncio.run
    headers = {"Content-Type": "application/json", **dict(h.split(":", 1) for h in args.header)}
    if args.agent:
        headers["x-cynsta-agent-id"] = args.agent
    result = runner(_client(args.url, headers, args.streams, args.open_parallel, args.deadline))
    print(MARK + json.dumps(result), flush=True)


# ------------------------------------------------------------------ the measuring side


def vm_rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _post(url: str, body: bytes, headers: dict[str, str]) -> bytes:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read()


async def holds_left(dsn: str, agent: uuid.UUID) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval("SELECT count(*) FROM holds WHERE agent_id = $1", agent)
    finally:
        await conn.close()


def _wait_holds_drained(dsn: str, agent: uuid.UUID) -> int:
    deadline = time.monotonic() + HOLDS_DRAIN_S
    while True:
        left = asyncio.run(holds_left(dsn, agent))
        if left == 0 or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def _run_client(sg: procs.Child, agent: uuid.UUID, streams: int, open_parallel: int,
                fake: procs.Child) -> tuple[dict, dict]:
    """The client process, with the server's and the fake's RSS sampled while it runs."""
    argv = [sys.executable, "-m", "bench.stream_scale", "--client",
            "--url", f"{sg.origin}/v1/chat/completions", "--agent", str(agent),
            "--streams", str(streams), "--open-parallel", str(open_parallel)]
    client = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, cwd=str(Path(__file__).parents[1]))
    peak = {"sg": 0, "fake": 0, "client": 0}
    meter = procs.CpuMeter({"spendguard": [sg.pid], "postgres": "postgres",
                            "fake": [fake.pid]})
    meter.start()
    t0 = time.monotonic()
    deadline = t0 + KILL_AFTER_S
    client_ticks = 0  # its last reading: an exited client has none
    timeline = []  # each second: [s, SpendGuard RSS MiB, its CPU % of one core over it]
    last = (t0, procs.cpu_ticks(sg.pid))
    while client.poll() is None and time.monotonic() < deadline:
        for name, pid in (("sg", sg.pid), ("fake", fake.pid), ("client", client.pid)):
            peak[name] = max(peak[name], vm_rss_kib(pid))
        client_ticks = max(client_ticks, procs.cpu_ticks(client.pid))
        now = time.monotonic()
        if now - last[0] >= 1.0:
            ticks = procs.cpu_ticks(sg.pid)
            timeline.append([round(now - t0, 1), round(vm_rss_kib(sg.pid) / 1024),
                             round(100 * (ticks - last[1]) / procs.CpuMeter.TICKS_PER_S
                                   / (now - last[0]))])
            last = (now, ticks)
        time.sleep(SAMPLE_EVERY_S)
    cpu_pct = meter.stop()
    cpu_pct["client"] = round(100 * client_ticks / procs.CpuMeter.TICKS_PER_S
                              / (time.monotonic() - t0), 1)
    if client.poll() is None:
        client.kill()
    out, err = client.communicate(timeout=10)
    for line in out.decode(errors="replace").splitlines():
        if line.startswith(MARK):
            return json.loads(line[len(MARK):]), {**peak, "cpu_pct": cpu_pct,
                                                  "timeline": timeline}
    raise RuntimeError(f"stream client failed ({client.returncode}): {err.decode()[-2000:]}")


def run(dsn: str, fake: procs.Child, work: Path, log_dir: Path, streams: int = STREAMS,
        delay_ms: int = DELAY_MS, words: int = WORDS,
        open_parallel: int = OPEN_PARALLEL) -> dict:
    agent = asyncio.run(database.make_agents(dsn, ["stream_scale"]))["stream_scale"]
    env = procs.spendguard_env(dsn, fake, work / "data-stream-scale",
                               CAP_CLIENT_MAX_CONNECTIONS=str(CONNECTION_CAP),
                               CAP_UPSTREAM_MAX_CONNECTIONS=str(CONNECTION_CAP))
    sg = procs.spendguard("stream-scale", env, log_dir)
    json_headers = {"Content-Type": "application/json"}
    try:
        for _ in range(IDLE_CALLS):
            _post(f"{sg.origin}/v1/chat/completions", CHAT_BODY,
                  {**json_headers, "x-cynsta-agent-id": str(agent)})
        time.sleep(0.3)
        idle_kib = vm_rss_kib(sg.pid)
        _post(f"{fake.origin}/_fake/config",
              json.dumps({"delay_ms": delay_ms, "words": words}).encode(), json_headers)
        try:
            client, peak = _run_client(sg, agent, streams, open_parallel, fake)
        finally:
            _post(f"{fake.origin}/_fake/reset", b"{}", json_headers)
        left = _wait_holds_drained(dsn, agent)
        ledger = asyncio.run(database.ledger_check(dsn, [agent]))
    finally:
        sg.stop()
    # The idle calls were charged too: what the streams added is the rest. Every stream that
    # was answered 200 is charged once, completed or cut at the deadline; one refused before
    # its answer (a 503 at the connection cap) never reserved.
    stream_charges = ledger["charges"] - IDLE_CALLS
    peak_mib = peak["sg"] / 1024
    return {
        **client,
        "delay_ms": delay_ms,
        "words": words,
        "open_parallel": open_parallel,
        "agent": str(agent),
        "rss_idle_mib": round(idle_kib / 1024, 1),
        "rss_peak_mib": round(peak_mib, 1),
        "rss_per_stream_kib": round((peak["sg"] - idle_kib) / max(1, client["peak_open"]), 1),
        "cpu_pct": peak["cpu_pct"],
        "timeline": peak["timeline"],
        "fake_rss_peak_mib": round(peak["fake"] / 1024, 1),
        "client_rss_peak_mib": round(peak["client"] / 1024, 1),
        "ledger": ledger,
        "stream_charges": stream_charges,
        "holds_left": left,
        "ledger_exact": (ledger["mismatched"] == 0 and ledger["overrun_microcents"] == 0
                         and stream_charges == client["answered"] and left == 0),
    }


def main() -> int:
    from bench import report

    return run_alone("stream_scale", run, report.print_stream_scale)


if __name__ == "__main__":
    if "--client" in sys.argv[1:]:
        client_main(sys.argv[1:])
    else:
        raise SystemExit(main())
