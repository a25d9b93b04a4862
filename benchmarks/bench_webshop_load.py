"""WebShop server under concurrent sessions: throughput, tail latency, the first burst and memory.

For each session count a *fresh* server (``harness env serve webshop``, its defaults) is started
and that many client sessions step it at once for ``--seconds``, each playing shopping episodes
with a seeded mix of actions: a search (the goal's query, or words of its instruction), sometimes
next/previous results page, a product, up to two options, sometimes a sub-page and back, sometimes
back to the results and another product, and a purchase. Reported per case: steps/s, p50/p99
step latency, p99 of the first ``--burst-seconds`` (a fresh server's first burst) against p99 of
the rest (steady), peak and final server RSS, the server's CPU time per step (user + system: the
figure that depends least on what else loads the machine), its start time (process start to a
healthy answer, warm-up included) and errors.

``--baseline REV`` runs the same cases, in the same run, against the server of git revision REV
(unpacked to a temporary directory) and prints each figure's ratio; ``--repeat N`` runs every case N
times, the trees taking turns, and counts the runs that met each target.

    .venv/bin/python benchmarks/bench_webshop_load.py                          # 1, 8, 32, 64 sessions
    .venv/bin/python benchmarks/bench_webshop_load.py --baseline 82b5253 --json load.json
    .venv/bin/python benchmarks/bench_webshop_load.py --sessions 64 --seconds 20 --repeat 3 --baseline d9b1bfc

Targets (issue 12) at 64 sessions: >= 500 steps/s, p99 <= 300 ms, server RSS <= 250 MiB, and the
first-burst p99 within 2x the steady p99. The client shares the machine's cores with the server, the
same client for both trees: by default one thread and one keep-alive ``http.client`` connection per
session in this process; ``--client-processes N`` deals the sessions to N processes instead (so
that no response waits for one client interpreter's lock). Its CPU per step is reported too.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import queue
import random
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from serving import (
    REPO_ROOT,
    ApiClient,
    ApiFailure,
    RssSampler,
    ServerProcess,
    baseline_tree,
    cpu_seconds,
    percentile_ms,
)

TARGETS = {"steps_per_s": 500.0, "p99_ms": 300.0, "rss_peak_mib": 250.0, "burst_over_steady_p99": 2.0}
_BUTTONS = frozenset({"back to search", "< prev", "next >", "description", "features", "reviews", "attributes",
                      "buy now"})


@dataclass
class Record:
    """What one client thread saw: (start time, latency) per step, episodes and errors."""

    steps: list[tuple[float, float]] = field(default_factory=list)
    episodes: int = 0
    errors: list[str] = field(default_factory=list)


class Shopper:
    """Plays seeded shopping episodes on one session and times every step."""

    def __init__(self, client: ApiClient, seed: int, record: Record, goals: int) -> None:
        self.client = client
        self.goals = goals
        self.rng = random.Random(seed)
        self.record = record
        self.clickables: list[str] = []

    def step(self, action: str) -> dict[str, Any]:
        started = time.perf_counter()
        outcome = self.client.step(action)
        self.record.steps.append((started, time.perf_counter() - started))
        self.clickables = outcome["info"]["available_actions"]["clickables"]
        return outcome

    def _products(self) -> list[str]:
        return [c for c in self.clickables if len(c) == 10 and c.startswith("b") and c.isalnum()]

    def _open_product(self) -> bool:
        products = self._products()
        if products:
            self.step(f"click[{self.rng.choice(products)}]")
        return bool(products)

    def episode(self) -> None:
        """One episode; ends with a purchase unless the search found nothing."""
        rng = self.rng
        goal = self.client.reset({"goal_index": rng.randrange(self.goals)})["info"]["goal"]
        words = goal["instruction"].split()
        start = rng.randrange(max(1, len(words) - 4))
        query = goal["query"] if rng.random() < 0.6 else " ".join(words[start : start + 5])
        self.step(f"search[{query}]")
        if "next >" in self.clickables and rng.random() < 0.3:
            self.step("click[next >]")
            self.step("click[< prev]")
        if not self._open_product():
            return
        if rng.random() < 0.2:  # not this one: back to the results and another product
            self.step("click[< prev]")
            self._open_product()
        options = [c for c in self.clickables if c not in _BUTTONS]
        for value in rng.sample(options, min(len(options), rng.randint(0, 2))):
            self.step(f"click[{value}]")
        if rng.random() < 0.5:
            self.step(f"click[{rng.choice(['description', 'features', 'reviews'])}]")
            self.step("click[< prev]")
        if rng.random() < 0.1:
            self.step("click[no such button]")
        self.step("click[buy now]")
        self.record.episodes += 1


def drive(
    port: int, sessions: int, seconds: float, seed: int = 0, max_steps: int | None = None, processes: int = 1
) -> list[Record]:
    """``sessions`` clients playing until ``seconds`` pass (or ``max_steps`` steps in all).

    The sessions are dealt round-robin to ``processes`` client processes, one thread per session in
    each: 64 threads in one interpreter queue for its lock, so a response can wait there unread.
    """
    goals = ApiClient(port).call("GET", "/api/health")["engine"]["goals"]
    shares = [list(range(first, sessions, processes)) for first in range(min(processes, sessions))]
    quotas = [None if max_steps is None else -(-max_steps * len(share) // sessions) for share in shares]
    if len(shares) == 1:
        return _play(port, shares[0], seconds, seed, goals, quotas[0], ready=lambda: None)
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(len(shares) + 1)
    results = context.Queue()
    children = [
        context.Process(target=_play_in_child, args=(port, share, seconds, seed, goals, quota, start, results),
                        daemon=True)
        for share, quota in zip(shares, quotas, strict=True)
    ]
    for child in children:
        child.start()
    try:
        start.wait(timeout=_CLIENT_START_S)
        records = [record for _ in children for record in results.get(timeout=seconds + _CLIENT_START_S)]
    except (threading.BrokenBarrierError, queue.Empty) as exc:
        codes = [child.exitcode for child in children]
        raise RuntimeError(f"a client process did not start or report (exit codes {codes})") from exc
    finally:
        for child in children:
            child.join(timeout=_CLIENT_START_S)
    return records


_CLIENT_START_S = 120.0


def _play_in_child(
    port: int, indices: list[int], seconds: float, seed: int, goals: int, max_steps: int | None,
    start: Any, results: Any,
) -> None:
    """A client process: its sessions' threads start with the other processes' and report their records."""
    results.put(_play(port, indices, seconds, seed, goals, max_steps, ready=lambda: start.wait(_CLIENT_START_S)))


def _play(
    port: int, indices: list[int], seconds: float, seed: int, goals: int, max_steps: int | None,
    ready: Callable[[], object],
) -> list[Record]:
    """One thread per session in ``indices``; each opens its session, then all play from ``ready()`` on."""
    records = [Record() for _ in indices]
    opened, go = threading.Barrier(len(indices) + 1), threading.Barrier(len(indices) + 1)
    deadline: list[float] = []

    def run(slot: int, index: int) -> None:
        client = ApiClient(port)
        shopper = Shopper(client, seed * 100_003 + index, records[slot], goals)
        try:
            client.open()
        except (OSError, ApiFailure) as exc:
            records[slot].errors.append(f"open: {exc}")
        opened.wait()
        go.wait()
        try:
            while time.perf_counter() < deadline[0]:
                if max_steps is not None and sum(len(r.steps) for r in records) >= max_steps:
                    break
                shopper.episode()
        except (OSError, ApiFailure, KeyError) as exc:
            records[slot].errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            client.close()

    threads = [threading.Thread(target=run, args=(slot, index), daemon=True) for slot, index in enumerate(indices)]
    for thread in threads:
        thread.start()
    opened.wait()
    ready()
    deadline.append(time.perf_counter() + seconds)
    go.wait()
    for thread in threads:
        thread.join()
    return records


def summarize(records: list[Record], burst_s: float) -> dict[str, Any]:
    steps = sorted(step for record in records for step in record.steps)
    if not steps:
        return {"steps": 0, "errors": sum(len(r.errors) for r in records)}
    origin = steps[0][0]
    wall = max(start + latency for start, latency in steps) - origin
    latencies = [latency for _, latency in steps]
    burst = [latency for start, latency in steps if start - origin < burst_s]
    steady = [latency for start, latency in steps if start - origin >= burst_s]
    return {
        "steps": len(steps),
        "episodes": sum(r.episodes for r in records),
        "errors": sum(len(r.errors) for r in records),
        "error_samples": [e for r in records for e in r.errors][:3],
        "steps_per_s": len(steps) / wall,
        "p50_ms": percentile_ms(latencies, 0.5),
        "p99_ms": percentile_ms(latencies, 0.99),
        "burst_p99_ms": percentile_ms(burst, 0.99),
        "steady_p99_ms": percentile_ms(steady, 0.99),
    }


def run_case(
    root: Path, sessions: int, seconds: float, burst_s: float, seed: int, server_args: list[str], processes: int = 1
) -> dict[str, Any]:
    args = ["--max-sessions", str(max(64, sessions)), *server_args]
    load_before = os.getloadavg()[0]
    with ServerProcess("webshop", root, args) as server:
        cpu_before, client_before = cpu_seconds(server.pid), _client_cpu_s()
        with RssSampler(server.pid) as rss:
            records = drive(server.port, sessions, seconds, seed, processes=processes)
        result = {"sessions": sessions, "load_before": load_before, "cold_start_s": server.cold_start_s,
                  **summarize(records, burst_s)}
        # Server CPU per step barely depends on what else loads the machine, unlike the latencies.
        steps = max(1, result["steps"])
        result["server_cpu_ms_per_step"] = 1000 * (cpu_seconds(server.pid) - cpu_before) / steps
        result["client_cpu_ms_per_step"] = 1000 * (_client_cpu_s() - client_before) / steps
        return {**result, **rss.summary()}


def _client_cpu_s() -> float:
    """User + system CPU of this process and its finished client processes."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def print_table(title: str, rows: list[dict[str, Any]]) -> None:
    print(f"\n{title}")
    print(f"{'run':>3} {'sessions':>8} {'load':>5} {'steps':>7} {'steps/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'burst p99':>10} {'steady p99':>11} {'RSS start/peak/end MiB':>23} {'CPU ms/step':>12} "
          f"{'client CPU':>11} {'start s':>8} {'errors':>7}")
    for row in rows:
        rss = f"{row['rss_start_mib']:.0f} / {row['rss_peak_mib']:.0f} / {row['rss_end_mib']:.0f}"
        print(f"{row['run']:>3} {row['sessions']:>8} {row['load_before']:>5.1f} {row['steps']:>7} "
              f"{row['steps_per_s']:>8.0f} {row['p50_ms']:>8.1f} {row['p99_ms']:>8.1f} {row['burst_p99_ms']:>10.1f} "
              f"{row['steady_p99_ms']:>11.1f} {rss:>23} {row['server_cpu_ms_per_step']:>12.2f} "
              f"{row['client_cpu_ms_per_step']:>11.2f} {row['cold_start_s']:>8.1f} {row['errors']:>7}")


def print_ratios(current: list[dict[str, Any]], baseline: list[dict[str, Any]]) -> None:
    print("\nRatios, this tree / baseline (steps/s: higher is better; the rest: lower is better)")
    print(f"{'run':>3} {'sessions':>8} {'steps/s':>8} {'p99':>8} {'burst p99':>10} {'steady p99':>11} "
          f"{'peak RSS':>9} {'CPU/step':>9}")
    for now, before in zip(current, baseline, strict=True):
        keys = ("steps_per_s", "p99_ms", "burst_p99_ms", "steady_p99_ms", "rss_peak_mib", "server_cpu_ms_per_step")
        ratios = [now[key] / before[key] for key in keys]
        cells = " ".join(f"{r:>{w}.2f}" for r, w in zip(ratios, (8, 8, 10, 11, 9, 9), strict=True))
        print(f"{now['run']:>3} {now['sessions']:>8} {cells}")


def check_targets(rows: list[dict[str, Any]]) -> list[tuple[str, int, int]]:
    """Each 64-session target: (what, runs that met it, runs)."""
    at64 = [row for row in rows if row["sessions"] == 64]
    if not at64:
        return []
    checks = {
        f">= {TARGETS['steps_per_s']:.0f} steps/s": lambda row: row["steps_per_s"] >= TARGETS["steps_per_s"],
        f"p99 <= {TARGETS['p99_ms']:.0f} ms": lambda row: row["p99_ms"] <= TARGETS["p99_ms"],
        f"peak RSS <= {TARGETS['rss_peak_mib']:.0f} MiB": lambda row: row["rss_peak_mib"] <= TARGETS["rss_peak_mib"],
        "first-burst p99 <= 2x steady p99":
            lambda row: row["burst_p99_ms"] <= TARGETS["burst_over_steady_p99"] * row["steady_p99_ms"],
        "no errors": lambda row: row["errors"] == 0,
    }
    return [(name, sum(check(row) for row in at64), len(at64)) for name, check in checks.items()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", default="1,8,32,64", help="concurrent sessions per case (default 1,8,32,64)")
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds per case (default 30)")
    parser.add_argument("--burst-seconds", type=float, default=10.0, help="the first burst (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the clients' action mix (default 0)")
    parser.add_argument("--baseline", metavar="REV", help="also run git revision REV's server and print ratios")
    parser.add_argument("--server-args", default="", help="extra `harness env serve` arguments, e.g. '--threads 8'")
    parser.add_argument("--client-processes", type=int, default=1,
                        help="client processes the sessions are dealt to (default 1: one thread per session here)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run every case this many times, the trees taking turns (default 1)")
    parser.add_argument("--json", type=Path, help="also write the results here as JSON")
    args = parser.parse_args(argv)
    if args.client_processes < 1 or args.repeat < 1:
        parser.error("--client-processes and --repeat must be at least 1")

    counts = [int(n) for n in args.sessions.split(",")]
    trees = {"this tree": None} | ({f"baseline {args.baseline}": args.baseline} if args.baseline else {})
    report: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    with contextlib.ExitStack() as stack:
        roots = {name: stack.enter_context(baseline_tree(rev)) if rev else REPO_ROOT for name, rev in trees.items()}
        for run in range(1, args.repeat + 1):
            for name, root in roots.items():
                for count in counts:
                    print(f"run {run}, {name}: {count} sessions for {args.seconds:g} s ...", file=sys.stderr,
                          flush=True)
                    case = run_case(root, count, args.seconds, args.burst_seconds, args.seed,
                                    args.server_args.split(), args.client_processes)
                    report[name].append({"run": run, **case})
    for name, rows in report.items():
        print_table(f"WebShop server, {name} (fresh server per case; first burst = first {args.burst_seconds:g} s; "
                    f"load = 1-min load average before the case; client CPU ms/step)", rows)
    if args.baseline:
        print_ratios(report["this tree"], report[f"baseline {args.baseline}"])
    for name, rows in report.items():
        checks = check_targets(rows)
        if checks:
            print(f"\nTargets at 64 sessions, {name}: " + "; ".join(f"{what}: {met} of {runs} runs"
                                                                 for what, met, runs in checks))
    if args.json:
        meta = {"seconds": args.seconds, "seed": args.seed, "client_processes": args.client_processes}
        args.json.write_text(json.dumps({**meta, **report}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
