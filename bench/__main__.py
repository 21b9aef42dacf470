"""``python -m bench``: SpendGuard's load benchmarks, all figures from one run, side by side.

The fake provider, each SpendGuard, LiteLLM (optional) and each load generator run as separate
processes on 127.0.0.1, against a fresh database (embedded PostgreSQL in a temp dir, or a new
database on ``CAP_DATABASE_URL``). Prints a table and writes bench/results/latest.json.
Every load is closed-loop, bounded in time, and stops by itself; the run takes about three and
a half minutes (four with LiteLLM) on a 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

from bench import (
    cli_startup,
    database,
    hot_agent,
    loadgen,
    memory,
    peer,
    procs,
    profile,
    report,
    stream_scale,
    streaming,
)
from bench.loadgen import Target
from spendguard_proxy.ledger import LOCAL_TENANT_ID

RESULTS_DIR = Path(__file__).parent / "results"
MODEL = "gpt-4o-mini"
CHAT_BODY = json.dumps({
    "model": MODEL,
    "messages": [{"role": "user", "content": "Say hello in one short sentence."}],
    "max_tokens": 32,
}).encode()
STREAM_BODY = json.dumps({
    "model": MODEL,
    "messages": [{"role": "user", "content": "Count slowly."}],
    "max_tokens": 64,
    "stream": True,
}).encode()
JSON_HEADERS = {"Content-Type": "application/json"}
SPREAD_AGENTS = 32


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0,
                        help="seconds per measured load (default 5)")
    parser.add_argument("--warmup", type=float, default=1.0,
                        help="seconds of unmeasured load before each measurement (default 1)")
    parser.add_argument("--streams", type=int, default=10,
                        help="streams read per side for the streaming figures (default 10)")
    parser.add_argument("--stream-delay-ms", type=int, default=10)
    parser.add_argument("--stream-words", type=int, default=30)
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy profile")
    parser.add_argument("--no-peer", action="store_true", help="skip LiteLLM")
    parser.add_argument("--no-memory", action="store_true",
                        help="skip the memory of serve --workers 1 and 2")
    parser.add_argument("--no-stream-scale", action="store_true",
                        help="skip the 5,000 concurrent streams")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "latest.json")
    return parser.parse_args(argv)


def _post_json(url: str, payload: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(),
                                     headers=JSON_HEADERS, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


class Bench:
    def __init__(self, args: argparse.Namespace, dsn: str, work: Path) -> None:
        self.args = args
        self.dsn = dsn
        self.work = work
        self.log_dir = work / "logs"
        self.log_dir.mkdir()
        self.children: list[procs.Child] = []
        self.results: dict = {"loads": {}, "notes": []}

    # -- processes ------------------------------------------------------------------------

    def _spendguard(self, name: str, wait: bool = True) -> procs.Child:
        env = procs.spendguard_env(self.dsn, self.fake, self.work / f"data-{name}")
        child = procs.spendguard(name, env, self.log_dir, wait=wait)
        self.children.append(child)
        return child

    def _floor(self) -> procs.Child:
        """The bare aiohttp relay (bench/floor.py) to the fake provider: the stack's floor."""
        port = procs.free_port()
        argv = [sys.executable, "-m", "bench.floor", "--port", str(port),
                "--upstream", self.fake.origin]
        env = procs.base_env()
        checkout = str(Path(__file__).resolve().parent.parent)  # children run in log_dir
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [checkout, env.get("PYTHONPATH")]))
        child = procs.start("floor", argv, env, port, self.log_dir, health_path="/health")
        self.children.append(child)
        return child

    def stop_all(self) -> None:
        for child in reversed(self.children):
            child.stop()

    # -- loads ----------------------------------------------------------------------------

    def _groups(self, *extra: procs.Child) -> dict:
        groups: dict = {"postgres": "postgres", "fake": [self.fake.pid]}
        for child in extra:
            groups[child.name] = [child.pid]
        return groups

    def load(self, key: str, targets: list[Target], concurrency: int, *servers) -> dict:
        if self.args.warmup > 0:
            loadgen.run(targets, concurrency, self.args.warmup)
        meter = procs.CpuMeter(self._groups(*servers))
        result = loadgen.run(targets, concurrency, self.args.duration, meter)
        self.results["loads"][key] = result
        print(f"  {key:<28} {result['rps']:>9.1f} req/s  p50 {result['p50_ms']:.2f} ms"
              f"  p99 {result['p99_ms']:.2f} ms  errors {result['errors']}"
              f"  cpu {result['cpu_pct']}", flush=True)
        return result

    def target(self, child: procs.Child | None, agent=None, key: str | None = None,
               body: bytes = CHAT_BODY) -> Target:
        if child is None or child.name == "floor":  # the fake provider, directly or relayed
            origin = self.fake.origin if child is None else child.origin
            headers = {**JSON_HEADERS, "Authorization": "Bearer sk-bench-openai"}
            return Target(f"{origin}/v1/chat/completions", body, headers)
        if agent is None:  # LiteLLM
            headers = {**JSON_HEADERS, "Authorization": f"Bearer {key}"}
            return Target(f"{child.origin}/v1/chat/completions", body, headers)
        headers = {**JSON_HEADERS, "x-cynsta-agent-id": str(agent)}
        return Target(f"{child.origin}/v1/chat/completions", body, headers)

    # -- the run --------------------------------------------------------------------------

    def run(self) -> dict:
        args = self.args
        started = time.monotonic()
        self.fake = procs.fake_provider(self.log_dir)
        self.children.append(self.fake)
        litellm_exe = None if args.no_peer else peer.executable()
        litellm = None
        if litellm_exe:  # slow to start: let it boot while the rest runs
            litellm, litellm_key = peer.start_litellm(litellm_exe, self.fake, self.work,
                                                      self.log_dir, wait=False)
            self.children.append(litellm)
        sg1 = self._spendguard("spendguard-1")
        sg2 = self._spendguard("spendguard-2")
        floor = self._floor()
        agents = asyncio.run(database.make_agents(
            self.dsn, ["hot", "c1", "ledger", "ledger_batched", "stream", "profile"]
            + [f"spread{i}" for i in range(SPREAD_AGENTS)]))
        spread = [str(agents[f"spread{i}"]) for i in range(SPREAD_AGENTS)]
        self.results["agents"] = {k: str(v) for k, v in agents.items()}

        print("overhead (one shared agent through SpendGuard vs the fake provider directly)")
        direct = self.target(None)
        self.load("direct_c1", [direct], 1)
        self.load("spendguard_c1", [self.target(sg1, agents["c1"])], 1, sg1)
        self.load("direct_c32", [direct], 32)
        self.load("spendguard_c32", [self.target(sg1, agents["hot"])], 32, sg1)
        spread_target = self.target(sg1, agents["hot"])
        spread_target.rotate = ("x-cynsta-agent-id", spread)
        self.load("spendguard_c32_spread", [spread_target], 32, sg1)
        print("floor (the bare aiohttp relay to the same fake: uvloop, one pooled session)")
        self.load("floor_c1", [self.target(floor)], 1, floor)
        self.load("floor_c32", [self.target(floor)], 32, floor)
        floor.stop()

        print("hot agent")
        self.results["hot_agent_ledger"] = {}
        ceiling_tenant, ceiling_agent = asyncio.run(database.make_ceiling_agent(self.dsn))
        agents["ledger_ceiling"] = ceiling_agent
        for label, mode, agent, tenant in (
            ("direct", "direct", agents["ledger"], LOCAL_TENANT_ID),
            ("batched", "batched", agents["ledger_batched"], LOCAL_TENANT_ID),
            ("batched, tenant ceiling", "batched", ceiling_agent, ceiling_tenant),
        ):
            ledger = hot_agent.run(self.dsn, agent, tasks=64, duration_s=args.duration,
                                   pool_size=20, mode=mode, tenant_id=tenant)
            self.results["hot_agent_ledger"][label] = ledger
            print(f"  ledger reserve+settle {label:<8} {ledger['settled_per_s']:>9.1f} settled/s "
                  f"(64 tasks, pool 20, p50 {ledger['cycle_p50_ms']} ms)", flush=True)
        self.load("spendguard_c64_hot", [self.target(sg1, agents["hot"])], 64, sg1)

        print("policies (c=32, one agent each; limits set far above the load; two rounds)")
        policy_agents = asyncio.run(database.make_policy_agents(self.dsn))
        agents.update(policy_agents)
        for round_no in (1, 2):  # interleaved: the machine's drift hits every variant alike
            for name, agent in policy_agents.items():
                self.load(f"{name}_c32_r{round_no}", [self.target(sg1, agent)], 32, sg1)

        print("scale (two SpendGuard processes, one PostgreSQL, one shared agent)")
        self.load("scale_2x_c16", [self.target(sg1, agents["hot"]),
                                   self.target(sg2, agents["hot"])], 16, sg1, sg2)
        self.load("scale_2x_c32", [self.target(sg1, agents["hot"]),
                                   self.target(sg2, agents["hot"])], 32, sg1, sg2)

        print("streaming")
        self._streaming(sg1, agents["stream"])

        if not args.no_memory:
            self._memory(agents)
        if not args.no_stream_scale:
            self._stream_scale(agents)

        if litellm is not None:
            print(f"peer: LiteLLM {peer.version(litellm_exe)} (no database, pass-through)")
            try:
                procs.wait_healthy(litellm, "/health/liveliness")
                ll = self.target(litellm, key=litellm_key)
                self.load("litellm_c1", [ll], 1, litellm)
                self.load("litellm_c32", [ll], 32, litellm)
                self.results["litellm_version"] = peer.version(litellm_exe)
            except RuntimeError as exc:
                self.results["notes"].append(f"LiteLLM failed: {exc}"[:500])
            litellm.stop()
        else:
            self.results["notes"].append("LiteLLM " + peer.skip_note())

        if not args.no_profile:
            self._profile(sg1, agents["profile"])

        # Last, with every load finished: a cold start measures CPU, so it wants quiet cores.
        print("CLI cold start (`spendguard` as a new process, on this database)")
        self.results["cli_startup"] = cli_startup.run(self.dsn, agents["c1"])
        cli_startup.print_table(self.results["cli_startup"])

        self.results["ledger_check"] = asyncio.run(
            database.ledger_check(self.dsn, list(agents.values())))
        self.results["wall_s"] = round(time.monotonic() - started, 1)
        return self.results

    def _streaming(self, sg: procs.Child, agent) -> None:
        args = self.args
        _post_json(f"{self.fake.origin}/_fake/config",
                   {"delay_ms": args.stream_delay_ms, "words": args.stream_words})
        try:
            result = streaming.compare(self.target(None, body=STREAM_BODY),
                                       self.target(sg, agent, body=STREAM_BODY), args.streams)
        finally:
            _post_json(f"{self.fake.origin}/_fake/reset", {})
        result["delay_ms"] = args.stream_delay_ms
        result["words"] = args.stream_words
        self.results["streaming"] = result
        print(f"  added time to first chunk {result['added_ttfc_ms']} ms, "
              f"added per chunk {result['added_per_chunk_ms']} ms", flush=True)

    def _memory(self, agents: dict) -> None:
        print("memory (spendguard serve --workers 1 and 2 after ~400 calls; smaps_rollup)")
        result = memory.run(self.dsn, self.fake, self.work, self.log_dir)
        self.results["memory"] = result
        for name, entry in result.items():
            agents[f"memory_{name}"] = uuid.UUID(entry["agent"])
            print(f"  --workers {entry['workers_flag']}: PSS per worker "
                  f"{entry['pss_per_worker_mib']} MiB, set {entry['pss_total_mib']} MiB PSS "
                  f"({entry['rss_total_mib']} MiB RSS summed)", flush=True)

    def _stream_scale(self, agents: dict) -> None:
        print(f"stream scale ({stream_scale.STREAMS} concurrent streams through one "
              "spendguard serve)")
        try:
            result = stream_scale.run(self.dsn, self.fake, self.work, self.log_dir)
        except RuntimeError as exc:  # reported as a miss, the rest of the run goes on
            self.results["stream_scale"] = {"failed": str(exc)[:500]}
            print(f"  failed: {exc}"[:500], flush=True)
            return
        agents["stream_scale"] = uuid.UUID(result["agent"])
        self.results["stream_scale"] = result
        print(f"  {result['peak_open']} open at once (all open after {result['open_all_s']} s),"
              f" RSS {result['rss_idle_mib']} → {result['rss_peak_mib']} MiB, "
              f"errors {result['errors']}, ledger "
              f"{'exact' if result['ledger_exact'] else 'NOT exact'}", flush=True)

    def _profile(self, sg: procs.Child, agent) -> None:
        if profile.py_spy() is None:
            self.results["notes"].append("profile skipped: py-spy not installed "
                                         "(.venv/bin/pip install py-spy)")
            return
        seconds = max(3, int(self.args.duration) + 3)
        out = self.work / "profile.txt"
        print(f"profile: py-spy on spendguard-1 under c=32 for {seconds - 2} s")
        target = [self.target(sg, agent)]
        generators = [loadgen.start(t, 32, seconds) for t in target]
        time.sleep(1)
        user0, sys0 = profile.cpu_split(sg.pid)
        t0 = time.monotonic()
        spy = profile.start(sg.pid, seconds - 2, out)
        spy_out, _ = spy.communicate(timeout=seconds + 30)
        user1, sys1 = profile.cpu_split(sg.pid)
        elapsed = time.monotonic() - t0
        ticks = procs.CpuMeter.TICKS_PER_S
        loads = [loadgen.finish(g, 32, 30) for g in generators]
        if spy.returncode != 0 or not out.exists():
            self.results["notes"].append(
                f"profile failed: {spy_out.decode(errors='replace')[-300:]}")
            return
        summary = profile.summarize(out)
        summary["load_rps_while_profiled"] = loads[0]["rps"]
        summary["proxy_cpu_user_pct"] = round(100 * (user1 - user0) / ticks / elapsed, 1)
        summary["proxy_cpu_system_pct"] = round(100 * (sys1 - sys0) / ticks / elapsed, 1)
        self.results["profile"] = summary


def _meta(args, db_description: str, dsn: str) -> dict:
    return {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
                   f"{platform.python_version()}",
        "database": db_description,
        "postgres": asyncio.run(database.server_version(dsn)),
        "load_generator": loadgen.tool_name(),
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "request": json.loads(CHAT_BODY),
        "spendguard_source": os.environ.get("BENCH_SPENDGUARD_SRC", "installed package"),
    }


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="spendguard-bench-run-") as tmp:
        work = Path(tmp)
        with database.fresh_database(os.environ.get("CAP_DATABASE_URL")) as (dsn, db_desc):
            bench = Bench(args, dsn, work)
            try:
                meta = _meta(args, db_desc, dsn)
                print(f"SpendGuard benchmark — {meta['database']}, {meta['postgres']}, "
                      f"load: {meta['load_generator']}", flush=True)
                results = bench.run()
            except BaseException:
                for child in bench.children:
                    tail = child.log_tail(15)
                    if tail:
                        print(f"--- {child.name} log tail ---\n{tail}", file=sys.stderr)
                raise
            finally:
                bench.stop_all()
    results = {"meta": meta, **results}
    results["summary"] = report.summary(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    report.print_report(results)
    print(f"\nJSON: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
