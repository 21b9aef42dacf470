"""How long a ``spendguard`` command takes from exec to exit (cold start: a new process).

Each command runs ``runs`` times as its own process after one unmeasured run (which writes
the bytecode caches a first run after an install would write); we keep the wall time and the
CPU time (user + system, from ``RUSAGE_CHILDREN``) of each. The commands work on the bench's
database through ``CAP_DATABASE_URL``; ``python -c pass`` is measured too, as the floor that
any Python program pays.

    .venv/bin/python -m bench.cli_startup          # alone, on its own fresh database
"""

from __future__ import annotations

import asyncio
import os
import resource
import statistics
import subprocess
import sys
import time
import uuid

from bench import database, procs

TARGET_MS = 300
RUNS = 9
TIMEOUT_S = 60


def commands(agent_id: uuid.UUID) -> dict[str, list[str]]:
    return {
        "--help": ["--help"],
        "agent list": ["agent", "list"],
        "budget get": ["budget", "get", "--agent", str(agent_id)],
    }


def _argv(args: list[str]) -> tuple[list[str], dict[str, str]]:
    """The console script, or the package from BENCH_SPENDGUARD_SRC (a scratch copy, run
    from its own directory: ``python -m`` puts the working directory first on the path)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAP_")}
    src = os.environ.get("BENCH_SPENDGUARD_SRC")
    if src:
        env["PYTHONPATH"] = src
        return [sys.executable, "-m", "spendguard_proxy.cli.main", *args], env
    return [str(procs.VENV_BIN / "spendguard"), *args], env


def _once(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall ms, CPU ms) of one run; a failing command stops the bench."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                            timeout=TIMEOUT_S, cwd=env.get("PYTHONPATH"))
    wall_ms = (time.perf_counter() - started) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {result.stderr.decode()[-500:]}")
    cpu_ms = ((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)) * 1000
    return wall_ms, cpu_ms


def _measure(argv: list[str], env: dict[str, str], runs: int) -> dict:
    _once(argv, env)  # bytecode caches, page cache
    samples = [_once(argv, env) for _ in range(runs)]
    walls = sorted(w for w, _ in samples)
    cpus = sorted(c for _, c in samples)
    return {"runs": runs, "wall_min_ms": round(walls[0], 1),
            "wall_p50_ms": round(statistics.median(walls), 1),
            "wall_max_ms": round(walls[-1], 1), "cpu_p50_ms": round(statistics.median(cpus), 1)}


def run(dsn: str, agent_id: uuid.UUID, runs: int = RUNS) -> dict:
    results: dict = {"target_ms": TARGET_MS, "commands": {}}
    floor_env = {k: v for k, v in os.environ.items() if not k.startswith("CAP_")}
    results["python_floor"] = _measure([sys.executable, "-c", "pass"], floor_env, runs)
    for name, args in commands(agent_id).items():
        argv, env = _argv(args)
        env["CAP_DATABASE_URL"] = dsn
        results["commands"][name] = _measure(argv, env, runs)
    return results


def print_table(results: dict) -> None:
    floor = results["python_floor"]
    print(f"  {'python -c pass':<14} wall p50 {floor['wall_p50_ms']:>6.1f} ms"
          f"  cpu p50 {floor['cpu_p50_ms']:>6.1f} ms", flush=True)
    for name, r in results["commands"].items():
        print(f"  {name:<14} wall p50 {r['wall_p50_ms']:>6.1f} ms (min {r['wall_min_ms']:.1f},"
              f" max {r['wall_max_ms']:.1f})  cpu p50 {r['cpu_p50_ms']:>6.1f} ms", flush=True)


def main() -> int:
    with database.fresh_database(os.environ.get("CAP_DATABASE_URL")) as (dsn, description):
        agents = asyncio.run(database.make_agents(dsn, ["cli"]))
        print(f"spendguard cold start on {description}", flush=True)
        print_table(run(dsn, agents["cli"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
