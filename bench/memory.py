"""Memory of ``spendguard serve`` after warm-up: RSS and PSS of every process of its tree.

``serve --workers N`` (N > 1) is a parent, multiprocessing's resource tracker, a forkserver
that loaded the tokenizer tables and the server's modules (server/worker_preload.py), and N
workers forked from it; ``--workers 1`` is one process that serves. Each set is started
against the fake provider and the run's database, warmed with budgeted chat calls (closed
loop, c=8, an agent of its own), then every process of the tree is read from
``/proc/<pid>/smaps_rollup``.

PSS (proportional set size) charges each shared page to the processes sharing it in equal
parts, so the PSS of a set sums to what it really occupies, and a worker's PSS is its own
pages plus its share of the forkserver's: the figure the "≤ 150 MB per worker" target is about.
RSS counts every shared page in full in each process.

Run alone: ``.venv/bin/python -m bench.memory`` (a fresh database, its own fake provider).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from bench import database, loadgen, procs
from bench.loadgen import Target
from bench.standalone import run_alone

WORKER_SETS = (1, 2)
WARMUP_CALLS = 400
WARMUP_CONCURRENCY = 8
WARMUP_ROUND_S = 0.5
WARMUP_MAX_ROUNDS = 12
SETTLE_S = 0.5  # after the warm-up: let the last responses and settlements finish
KIB_PER_MIB = 1024
BODY = json.dumps({
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "Say hello in one short sentence."}],
    "max_tokens": 32,
}).encode()


# ------------------------------------------------------------------ the process tree


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (every thread's ``children`` file), [] when it is gone."""
    out: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            out += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def tree(root: int) -> dict[int, int | None]:
    """Every process under ``root`` (itself included), mapped to its parent, depth first."""
    parents: dict[int, int | None] = {root: None}
    stack = [root]
    while stack:
        pid = stack.pop()
        for child in children(pid):
            if child not in parents:
                parents[child] = pid
                stack.append(child)
    return parents


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def role(pid: int, parents: dict[int, int | None]) -> str:
    """parent / forkserver / worker / other; a lone serving process (``--workers 1``) is a
    worker. Workers forked from the forkserver inherit its command line: it is their place in
    the tree (the forkserver's children) that tells them apart."""
    parent = parents[pid]
    if parent is None:
        serves_alone = not any("multiprocessing.forkserver" in cmdline(p) for p in parents)
        return "worker" if serves_alone else "parent"
    if "multiprocessing.forkserver" in cmdline(pid):
        return "worker" if "multiprocessing.forkserver" in cmdline(parent) else "forkserver"
    return "other"


def smaps_rollup(pid: int) -> dict[str, int]:
    """The kB fields of ``/proc/<pid>/smaps_rollup`` ({} when the process is gone)."""
    fields: dict[str, int] = {}
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return fields
    for line in text.splitlines()[1:]:
        name, _, rest = line.partition(":")
        parts = rest.split()
        if len(parts) == 2 and parts[1] == "kB":
            fields[name] = int(parts[0])
    return fields


def _mib(kib: int) -> float:
    return round(kib / KIB_PER_MIB, 1)


def read_set(root: int) -> dict:
    """RSS/PSS per process of ``root``'s tree, the sums, and PSS per worker."""
    parents = tree(root)
    rows = []
    for pid in parents:
        rollup = smaps_rollup(pid)
        if not rollup:
            continue
        command = cmdline(pid)
        rows.append({
            "pid": pid,
            "role": role(pid, parents),
            "rss_mib": _mib(rollup.get("Rss", 0)),
            "pss_mib": _mib(rollup.get("Pss", 0)),
            "pss_anon_mib": _mib(rollup.get("Pss_Anon", 0)),
            "private_mib": _mib(rollup.get("Private_Clean", 0) + rollup.get("Private_Dirty", 0)),
            "command": command[:60] + ("…" if len(command) > 60 else ""),
        })
    workers = [r for r in rows if r["role"] == "worker"]
    forkserver = sum(r["pss_mib"] for r in rows if r["role"] == "forkserver")
    return {
        "processes": rows,
        "workers": len(workers),
        "pss_per_worker_mib": [r["pss_mib"] for r in workers],
        "pss_worker_max_mib": max((r["pss_mib"] for r in workers), default=0.0),
        "rss_worker_max_mib": max((r["rss_mib"] for r in workers), default=0.0),
        # The forkserver exists only to be forked from: its pages, split among the workers.
        "pss_worker_max_with_forkserver_mib": round(
            max((r["pss_mib"] for r in workers), default=0.0)
            + (forkserver / len(workers) if workers else 0.0), 1),
        "pss_total_mib": round(sum(r["pss_mib"] for r in rows), 1),
        "rss_total_mib": round(sum(r["rss_mib"] for r in rows), 1),
    }


# ------------------------------------------------------------------ warm-up and the run


def warm(target: Target, calls: int = WARMUP_CALLS) -> dict:
    """Budgeted chat calls at c=8 in short closed-loop rounds until ``calls`` were answered."""
    served = errors = rounds = 0
    while served < calls and rounds < WARMUP_MAX_ROUNDS:
        result = loadgen.run([target], WARMUP_CONCURRENCY, WARMUP_ROUND_S)
        served += result["requests"] - result["non_2xx"]
        errors += result["errors"]
        rounds += 1
    return {"calls": served, "errors": errors, "rounds": rounds}


def measure(dsn: str, fake: procs.Child, work: Path, log_dir: Path, workers: int,
            agent: str) -> dict:
    """Start ``serve --workers N``, warm it, read its tree, stop it."""
    name = f"memory-w{workers}"
    env = procs.spendguard_env(dsn, fake, work / f"data-{name}")
    child = procs.spendguard(name, env, log_dir, extra_args=["--workers", str(workers)])
    try:
        # Every worker answers: the set's /health is reached through the shared port.
        target = Target(f"{child.origin}/v1/chat/completions", BODY,
                        {"Content-Type": "application/json", "x-cynsta-agent-id": agent})
        before = {pid: procs.cpu_ticks(pid) for pid in tree(child.pid)}
        warmup = warm(target)
        time.sleep(SETTLE_S)
        result = read_set(child.pid)
        for row in result["processes"]:  # a worker the warm-up missed would look too small
            row["warmup_cpu_ms"] = round(1000 * (procs.cpu_ticks(row["pid"])
                                                 - before.get(row["pid"], 0))
                                         / procs.CpuMeter.TICKS_PER_S)
    finally:
        child.stop()
    return {"workers_flag": workers, "agent": agent, "warmup": warmup, **result}


def run(dsn: str, fake: procs.Child, work: Path, log_dir: Path,
        worker_sets: tuple[int, ...] = WORKER_SETS) -> dict:
    """One entry per ``--workers`` value, each on a fresh agent: {"workers_1": {...}, ...}."""
    names = [f"memory_w{n}" for n in worker_sets]
    agents = asyncio.run(database.make_agents(dsn, names))
    return {f"workers_{n}": measure(dsn, fake, work, log_dir, n, str(agents[f"memory_w{n}"]))
            for n in worker_sets}


def main() -> int:
    from bench import report

    return run_alone("memory", run, report.print_memory)


if __name__ == "__main__":
    raise SystemExit(main())
