"""The benchmark's table and its verdicts against the issue's targets."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

TARGET_C32_RPS = 1000
TARGET_C32_OF_DIRECT = 0.40
TARGET_C1_ADDED_P50_MS = 2.0
TARGET_C1_ADDED_P50_STRICT_MS = 1.5
TARGET_C32_OF_FLOOR = 0.5
TARGET_HOT_SETTLED_PER_S = 1000
TARGET_VS_LITELLM = 10.0
TARGET_PSS_PER_WORKER_MIB = 150  # "≤ 150 MB PSS per worker" read as MiB, as /proc reports
TARGET_STREAMS = 5000
TARGET_STREAM_RSS_MIB = 600


def _load(results: dict, key: str) -> dict | None:
    return results.get("loads", {}).get(key)


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "MISS")


def summary(results: dict) -> list[dict]:
    """One line per target: what was measured, the target, pass/miss."""
    rows = []
    sg32, d32 = _load(results, "spendguard_c32"), _load(results, "direct_c32")
    if sg32 and d32:
        rows.append({"target": "c=32 calls/s ≥ 1,000", "measured": sg32["rps"],
                     "verdict": _verdict(sg32["rps"] >= TARGET_C32_RPS)})
        share = sg32["rps"] / d32["rps"] if d32["rps"] else 0
        rows.append({"target": "c=32 ≥ 40% of direct", "measured": f"{share:.0%}",
                     "verdict": _verdict(share >= TARGET_C32_OF_DIRECT)})
    sg1, d1 = _load(results, "spendguard_c1"), _load(results, "direct_c1")
    if sg1 and d1:
        added = round(sg1["p50_ms"] - d1["p50_ms"], 3)
        rows.append({"target": "c=1 added median latency ≤ 2 ms", "measured": f"{added} ms",
                     "verdict": _verdict(added <= TARGET_C1_ADDED_P50_MS)})
        rows.append({"target": "c=1 added p50 over direct ≤ 1.5 ms", "measured": f"{added} ms",
                     "verdict": _verdict(added <= TARGET_C1_ADDED_P50_STRICT_MS)})
    floor32 = _load(results, "floor_c32")
    if sg32 and floor32:
        share = sg32["rps"] / floor32["rps"] if floor32["rps"] else 0
        rows.append({"target": "budgeted c=32 ≥ 0.5 of the bare relay (one worker)",
                     "measured": f"{share:.2f}",
                     "verdict": _verdict(share >= TARGET_C32_OF_FLOOR)})
    for mode, ledger in results.get("hot_agent_ledger", {}).items():
        what = {"direct": "ledger.reserve/settle, a transaction each",
                "batched": "LedgerBatcher, as the server"}.get(mode, mode)
        rows.append({"target": f"hot shared agent ≥ 1,000 settled/s ({what})",
                     "measured": ledger["settled_per_s"],
                     "verdict": _verdict(ledger["settled_per_s"] >= TARGET_HOT_SETTLED_PER_S)})
    hot = _load(results, "spendguard_c64_hot")
    if hot:
        rows.append({"target": "hot shared agent ≥ 1,000 settled/s (HTTP, c=64)",
                     "measured": hot["rps"],
                     "verdict": _verdict(hot["rps"] >= TARGET_HOT_SETTLED_PER_S)})
    rows.extend(_policy_rows(results))
    rows.extend(_memory_rows(results))
    rows.extend(_stream_scale_rows(results))
    cli = results.get("cli_startup")
    for name, measured in (cli or {}).get("commands", {}).items():
        target_ms = cli["target_ms"]
        rows.append({"target": f"CLI cold start ≤ {target_ms} ms: spendguard {name}",
                     "measured": f"{measured['wall_p50_ms']:.0f} ms",
                     "verdict": _verdict(measured["wall_p50_ms"] <= target_ms)})
    ll32 = _load(results, "litellm_c32")
    if sg32 and ll32:
        ratio = sg32["rps"] / ll32["rps"] if ll32["rps"] else float("inf")
        rows.append({"target": "≥ 10× LiteLLM (c=32 calls/s)", "measured": f"{ratio:.1f}×",
                     "verdict": _verdict(ratio >= TARGET_VS_LITELLM)})
    else:
        rows.append({"target": "≥ 10× LiteLLM (c=32 calls/s)", "measured": "not run",
                     "verdict": "n/a"})
    return rows


def policy_costs(results: dict) -> dict[str, dict]:
    """Per policy variant: req/s and proxy + PostgreSQL CPU ms per call, averaged over the
    rounds, and the change against the agent without policies."""
    variants: dict[str, list[dict]] = {}
    for key, load in results.get("loads", {}).items():
        if key.startswith("policy_"):
            variants.setdefault(key.split("_c32_")[0], []).append(load)
    out = {}
    for name, loads in variants.items():
        cpu = [cpu_ms_per_request(load) for load in loads]
        out[name] = {
            "rps": round(sum(load["rps"] for load in loads) / len(loads), 1),
            "cpu_ms": round(sum(v for c in cpu for k, v in c.items()
                                if k.startswith(("spendguard", "postgres"))) / len(cpu), 3),
        }
    base = out.get("policy_none")
    for costs in out.values():
        if base and base["rps"]:
            costs["rps_vs_none"] = round(costs["rps"] / base["rps"], 3)
            costs["cpu_ms_vs_none"] = round(costs["cpu_ms"] - base["cpu_ms"], 3)
    return out


def _policy_rows(results: dict) -> list[dict]:
    return [{"target": f"policies on ({name.removeprefix('policy_')}): calls/s vs none",
             "measured": f"{c['rps']} ({c['rps_vs_none']:.2f}×, {c['cpu_ms_vs_none']:+.3f} ms "
                         f"CPU/call)", "verdict": "info"}
            for name, c in policy_costs(results).items()
            if name != "policy_none" and "rps_vs_none" in c]


def _memory_rows(results: dict) -> list[dict]:
    two = results.get("memory", {}).get("workers_2")
    if not two:
        return []
    worst = two["pss_worker_max_mib"]
    return [{"target": "memory per worker ≤ 150 MB PSS (--workers 2)",
             "measured": f"{worst:.0f} MiB ({two['pss_worker_max_with_forkserver_mib']:.0f} "
                         f"with its share of the forkserver; the set {two['pss_total_mib']:.0f})",
             "verdict": _verdict(two["workers"] == 2 and worst <= TARGET_PSS_PER_WORKER_MIB)}]


def _stream_scale_rows(results: dict) -> list[dict]:
    scale = results.get("stream_scale")
    if not scale:
        return []
    if scale.get("failed"):
        return [{"target": "5,000 concurrent streams, RSS ≤ 600 MB, ledger exact",
                 "measured": f"failed: {scale['failed'][:80]}", "verdict": "MISS"}]
    ok = (scale["peak_open"] >= TARGET_STREAMS and scale["errors"] == 0
          and scale["unfinished"] == 0 and scale["rss_peak_mib"] <= TARGET_STREAM_RSS_MIB
          and scale["ledger_exact"])
    return [{"target": "5,000 concurrent streams, RSS ≤ 600 MB, ledger exact",
             "measured": f"{scale['peak_open']} open at once, RSS {scale['rss_peak_mib']:.0f} MiB,"
                         f" {scale['errors']} errors, ledger "
                         f"{'exact' if scale['ledger_exact'] else 'NOT exact'}",
             "verdict": _verdict(ok)}]


def _ratio(a: dict | None, b: dict | None) -> str:
    if not a or not b or not b["rps"]:
        return ""
    return f"{a['rps'] / b['rps']:.2f}"


def cpu_ms_per_request(result: dict) -> dict[str, float]:
    """CPU each process group spent per answered request (ms), from its % of one core."""
    rps = result.get("rps") or 0
    if not rps:
        return {}
    return {group: round(pct / 100 / rps * 1000, 3)
            for group, pct in result.get("cpu_pct", {}).items()}


def _cpu_per_request(result: dict) -> str:
    per = cpu_ms_per_request(result)
    proxy = sum(v for k, v in per.items() if k.startswith(("spendguard", "litellm", "floor")))
    if not per:
        return ""
    parts = [f"{proxy:.2f}" if proxy else "-", f"{per.get('postgres', 0):.2f}",
             f"{per.get('fake', 0):.2f}"]
    return " / ".join(parts)


def print_report(results: dict, console: Console | None = None) -> None:
    console = console or Console(width=150)
    meta = results["meta"]
    console.print(f"\n[bold]SpendGuard benchmark[/bold]  {meta['when']}  {meta['machine']}")
    console.print(f"database: {meta['database']}, {meta['postgres']}; "
                  f"load generator: {meta['load_generator']}; "
                  f"{meta['duration_s']} s per load after {meta['warmup_s']} s warm-up; "
                  f"request: non-stream chat, {meta['request']['model']}, max_tokens 32")

    table = Table(title="Throughput and latency (closed loop, non-stream chat)")
    for column in ("load", "conc.", "req/s", "p50 ms", "p99 ms", "errors", "ratio",
                   "CPU ms per request: proxy / postgres / fake"):
        table.add_column(column, justify="left" if column in ("load", "ratio") else "right")
    loads = results["loads"]
    sg32, d32 = loads.get("spendguard_c32"), loads.get("direct_c32")
    sg1, d1 = loads.get("spendguard_c1"), loads.get("direct_c1")
    ratios = {
        "spendguard_c1": f"{_ratio(sg1, d1)} of direct",
        "spendguard_c32": f"{_ratio(sg32, d32)} of direct",
        "floor_c1": f"SG/floor {_ratio(sg1, loads.get('floor_c1'))}",
        "floor_c32": f"SG/floor {_ratio(sg32, loads.get('floor_c32'))}",
        "spendguard_c32_spread": f"{_ratio(loads.get('spendguard_c32_spread'), d32)} of direct",
        "litellm_c1": f"SG/LiteLLM {_ratio(sg1, loads.get('litellm_c1'))}",
        "litellm_c32": f"SG/LiteLLM {_ratio(sg32, loads.get('litellm_c32'))}",
        "scale_2x_c16": f"{_ratio(loads.get('scale_2x_c16'), sg32)} of 1×c32",
        "scale_2x_c32": f"{_ratio(loads.get('scale_2x_c32'), loads.get('spendguard_c64_hot'))}"
                        " of 1×c64",
    }
    labels = {
        "direct_c1": "direct (fake provider)",
        "spendguard_c1": "SpendGuard",
        "direct_c32": "direct (fake provider)",
        "spendguard_c32": "SpendGuard, 1 shared agent",
        "spendguard_c32_spread": "SpendGuard, 32 agents",
        "spendguard_c64_hot": "SpendGuard hot agent",
        "scale_2x_c16": "2 SpendGuards, 1 agent",
        "scale_2x_c32": "2 SpendGuards, 1 agent",
        "floor_c1": "bare aiohttp relay (floor)",
        "floor_c32": "bare aiohttp relay (floor)",
        "litellm_c1": "LiteLLM pass-through",
        "litellm_c32": "LiteLLM pass-through",
    }
    for key, result in loads.items():
        cpu = _cpu_per_request(result)
        table.add_row(labels.get(key, key), str(result["concurrency"]), f"{result['rps']:.0f}",
                      f"{result['p50_ms']:.2f}", f"{result['p99_ms']:.2f}",
                      str(result["errors"]), ratios.get(key, ""), cpu)
    for mode, ledger in results.get("hot_agent_ledger", {}).items():
        table.add_row(f"ledger reserve+settle, 1 agent, {mode}", f"{ledger['tasks']} tasks",
                      f"{ledger['settled_per_s']:.0f}", f"{ledger['cycle_p50_ms']:.2f}",
                      f"{ledger['cycle_p99_ms']:.2f}", str(ledger["failures"]),
                      "settled calls/s", "")
    console.print(table)

    stream = results.get("streaming")
    if stream:
        st = Table(title=f"Streaming ({stream['words']} events, {stream['delay_ms']} ms apart"
                         f" at the fake; {stream['direct']['streams']} streams each)")
        for column in ("path", "first chunk p50 ms", "gap mean ms", "gap p99 ms",
                       "whole stream p50 ms"):
            st.add_column(column, justify="left" if column == "path" else "right")
        for name in ("direct", "spendguard"):
            s = stream[name]
            st.add_row(name, f"{s['ttfc_p50_ms']:.2f}", f"{s['gap_mean_ms']:.3f}",
                       f"{s['gap_p99_ms']:.3f}", f"{s['total_p50_ms']:.1f}")
        st.add_row("added by SpendGuard", f"{stream['added_ttfc_ms']:.2f}",
                   f"{stream['added_per_chunk_ms']:.3f}", f"{stream['added_gap_p99_ms']:.3f}",
                   "")
        console.print(st)

    print_memory(results, console)
    print_stream_scale(results, console)

    cli = results.get("cli_startup")
    if cli:
        ct = Table(title=f"CLI cold start (a new process each run, {cli['python_floor']['runs']} "
                         "runs after one unmeasured; CPU = user + system)")
        for column in ("command", "wall p50 ms", "wall min ms", "wall max ms", "CPU p50 ms"):
            ct.add_column(column, justify="left" if column == "command" else "right")
        rows = [("python -c pass (floor)", cli["python_floor"])]
        rows += [(f"spendguard {name}", r) for name, r in cli["commands"].items()]
        for name, r in rows:
            ct.add_row(name, f"{r['wall_p50_ms']:.1f}", f"{r['wall_min_ms']:.1f}",
                       f"{r['wall_max_ms']:.1f}", f"{r['cpu_p50_ms']:.1f}")
        console.print(ct)

    tt = Table(title="Targets (from the issue)")
    for column in ("target", "measured", "verdict"):
        tt.add_column(column)
    for row in results["summary"]:
        tt.add_row(row["target"], str(row["measured"]), row["verdict"])
    console.print(tt)

    prof = results.get("profile")
    if prof:
        pt = Table(title=f"Profile of spendguard serve under c=32, one shared agent (py-spy --gil: "
                         f"{prof['samples']} samples at {prof['rate_hz']} Hz; "
                         f"{prof['load_rps_while_profiled']:.0f} req/s while profiled; process "
                         f"CPU {prof.get('proxy_cpu_user_pct')}% user + "
                         f"{prof.get('proxy_cpu_system_pct')}% system of one core; "
                         f"% of samples)")
        pt.add_column("area (self time)")
        pt.add_column("%", justify="right")
        pt.add_column("function (self time)")
        pt.add_column("%", justify="right")
        areas, selfs = prof["areas"][:12], prof["self"][:12]
        for i in range(max(len(areas), len(selfs))):
            a = areas[i] if i < len(areas) else {"area": "", "pct": ""}
            f = selfs[i] if i < len(selfs) else {"function": "", "pct": ""}
            pt.add_row(a["area"], str(a["pct"]), f["function"][:80], str(f["pct"]))
        console.print(pt)

    if prof:
        for area in prof["areas"][:10]:
            if area.get("from"):
                sources = ", ".join(f"{f['function']} {f['pct']}%" for f in area["from"])
                console.print(f"  {area['area']} {area['pct']}% ← {sources}")

    check = results.get("ledger_check")
    if check:
        console.print(f"ledger after the run: {check['charges']} charges on {check['agents']} "
                      f"agents, Σ deltas ≠ remaining on {check['mismatched']}, overrun "
                      f"{check['overrun_microcents']} µ¢")
    for note in results.get("notes", []):
        console.print(f"note: {note}")
    console.print(f"wall time {results.get('wall_s')} s")


def print_memory(results: dict, console: Console) -> None:
    memory = results.get("memory")
    if not memory:
        return
    mt = Table(title="Memory of spendguard serve after warm-up (/proc/<pid>/smaps_rollup, MiB; "
                     "PSS shares each shared page among the processes mapping it)")
    for column in ("set", "process", "pid", "RSS", "PSS", "PSS anon", "private",
                   "warm-up CPU ms"):
        mt.add_column(column, justify="left" if column in ("set", "process") else "right")
    for entry in memory.values():
        label = (f"--workers {entry['workers_flag']} ({entry['warmup']['calls']} calls, "
                 f"{entry['warmup']['errors']} errors)")
        for row in entry["processes"]:
            mt.add_row(label, row["role"], str(row["pid"]), f"{row['rss_mib']:.1f}",
                       f"{row['pss_mib']:.1f}", f"{row['pss_anon_mib']:.1f}",
                       f"{row['private_mib']:.1f}", str(row.get("warmup_cpu_ms", "")))
            label = ""
        mt.add_row("", "[bold]set total[/bold]", "", f"{entry['rss_total_mib']:.1f}",
                   f"[bold]{entry['pss_total_mib']:.1f}[/bold]", "", "", "",
                   end_section=True)
    console.print(mt)


def print_stream_scale(results: dict, console: Console) -> None:
    scale = results.get("stream_scale")
    if not scale:
        return
    if scale.get("failed"):
        console.print(f"stream scale failed: {scale['failed']}")
        return
    st = Table(title=f"Concurrent streams through one spendguard serve (1 worker): "
                     f"{scale['streams']} streams of {scale['words']} words "
                     f"{scale['delay_ms']} ms apart at the fake, one asyncio client")
    st.add_column("figure")
    st.add_column("value", justify="right")
    ledger = scale["ledger"]
    rows = [
        ("streams open at once (peak)", f"{scale['peak_open']}"),
        ("completed / errors / unfinished",
         f"{scale['completed']} / {scale['errors']} / {scale['unfinished']}"),
        ("errors by kind", ", ".join(f"{k} {v}" for k, v in scale["error_kinds"].items()) or "-"),
        ("time to open all (s)", f"{scale['open_all_s']}"),
        (f"request → first event p50 / p99 (ms), ≤ {scale.get('open_parallel', '?')} waiting",
         f"{scale.get('first_event_p50_ms')} / {scale.get('first_event_p99_ms')}"),
        ("wall time of the client (s)", f"{scale['wall_s']}"),
        ("SpendGuard RSS idle → peak (MiB)",
         f"{scale['rss_idle_mib']:.0f} → {scale['rss_peak_mib']:.0f}"),
        ("RSS per open stream (KiB)", f"{scale['rss_per_stream_kib']:.0f}"),
        ("CPU over the run, % of one core: "
         + " / ".join(scale["cpu_pct"]), " / ".join(f"{v:.0f}" for v in scale["cpu_pct"].values())),
        ("fake provider RSS peak (MiB)", f"{scale['fake_rss_peak_mib']:.0f}"),
        ("ledger: charges / Σ deltas ≠ remaining / overrun µ¢ / holds left",
         (f"{ledger['charges']} / {ledger['mismatched']} / {ledger['overrun_microcents']}"
          f" / {scale['holds_left']}")),
    ]
    for name, value in rows:
        st.add_row(name, value)
    console.print(st)
