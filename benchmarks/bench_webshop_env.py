"""WebShop environment speed: in-process steps, HTTP steps under concurrency, server cold start and memory.

Every episode plays the same fixed action mix, driven by the page's available actions so that it
works on any goal: search for the goal's query, next page, previous page, open the first product,
pick the first value of up to two option groups, Description, back, Features, back, one invalid
click, Buy Now. Episodes cycle through goal indices 0, 1, 2, ... so queries (and the engine's
caches) see a realistic mix rather than one repeated page.

    .venv/bin/python benchmarks/bench_webshop_env.py                 # everything
    .venv/bin/python benchmarks/bench_webshop_env.py --episodes 100 --sessions 1,8,32 --json out.json

Targets (from the issue): server cold start < 3 s, in-process search step < 5 ms p50, >= 300 HTTP
steps/s with 8 concurrent sessions. The HTTP server runs in its own process (``harness env serve``,
waitress), as in production; client threads use :class:`RemoteSession`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from serving import ServerProcess, tree_rss_mib  # noqa: E402

from environments.core.client import RemoteSession  # noqa: E402
from environments.core.engine import TextSession  # noqa: E402
from environments.webshop.catalogue import load_catalogue  # noqa: E402

TARGETS = {"cold_start_s": 3.0, "search_p50_ms": 5.0, "http_steps_per_s_at_8": 300.0}
_ASIN = re.compile(r"^b[0-9a-z]{9}$")
_BUTTONS = {"back to search", "< prev", "next >", "description", "features", "reviews", "attributes", "buy now"}


def action_mix(query: str) -> Iterator[Callable[[dict[str, Any]], str]]:
    """The fixed mix, as functions of the current available actions (so it adapts to each goal)."""

    def first_product(actions: dict[str, Any]) -> str:
        return f"click[{next((c for c in actions['clickables'] if _ASIN.match(c)), 'none')}]"

    def option(n: int) -> Callable[[dict[str, Any]], str]:
        def pick(actions: dict[str, Any]) -> str:
            values = [c for c in actions["clickables"] if c not in _BUTTONS]
            return f"click[{values[n]}]" if len(values) > n else "click[description]"

        return pick

    yield lambda _: f"search[{query}]"
    yield lambda _: "click[next >]"
    yield lambda _: "click[< prev]"
    yield first_product
    yield option(0)
    yield option(1)
    for action in ("click[description]", "click[< prev]", "click[features]", "click[< prev]", "click[no such button]"):
        yield lambda _, action=action: action
    yield lambda _: "click[buy now]"


class Stats:
    """Per-action latencies (seconds), keyed by action verb."""

    def __init__(self) -> None:
        self.latencies: dict[str, list[float]] = {"search": [], "click": [], "reset": []}
        self.steps = 0
        self.episodes = 0

    def merge(self, other: Stats) -> None:
        for key, values in other.latencies.items():
            self.latencies[key].extend(values)
        self.steps += other.steps
        self.episodes += other.episodes


def play_episodes(session: TextSession, goal_indices: list[int], stats: Stats) -> None:
    goals = load_catalogue().synthetic_goals
    for index in goal_indices:
        started = time.perf_counter()
        _, info = session.reset({"goal_index": index})
        stats.latencies["reset"].append(time.perf_counter() - started)
        actions = info["available_actions"]
        for choose in action_mix(goals[index].query):
            action = choose(actions)
            started = time.perf_counter()
            outcome = session.step(action)
            stats.latencies["search" if action.startswith("search[") else "click"].append(time.perf_counter() - started)
            stats.steps += 1
            actions = outcome.info["available_actions"]
            if outcome.terminated:
                break
        stats.episodes += 1


def ms(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_in_process(episodes: int, observation_mode: str, run: int = 0, uncached_queries: int = 150) -> dict[str, Any]:
    from environments.webshop.engine import WebShopFactory

    started = time.perf_counter()
    factory = WebShopFactory(observation_mode=observation_mode)
    build_s = time.perf_counter() - started
    session = factory.new_session()
    play_episodes(session, [0], Stats())  # warm-up: loads the noun tagger on the first purchase
    stats = Stats()
    started = time.perf_counter()
    play_episodes(session, list(range(1, episodes + 1)), stats)
    wall = time.perf_counter() - started
    steps = stats.latencies["search"] + stats.latencies["click"]

    # Search steps that no cache has seen: each query (words of a goal instruction) is new, so the
    # engine runs BM25 and renders and parses a results layout it has not parsed before.
    uncached = []
    session.reset({"goal_index": 0})
    fresh = dict.fromkeys(" ".join(goal.instruction_text.split()[2:9]) for goal in factory.catalogue.synthetic_goals)
    # Each run takes its own slice, since the caches are shared by every factory in the process.
    for query in list(fresh)[::-1][run * uncached_queries : (run + 1) * uncached_queries]:
        t = time.perf_counter()
        session.step(f"search[{query}]")
        uncached.append(time.perf_counter() - t)

    queries = sorted({goal.query for goal in factory.catalogue.synthetic_goals})
    index = factory.search._index  # raw BM25, bypassing the engine's per-query cache
    raw = []
    for query in queries:
        t = time.perf_counter()
        index.search(query)
        raw.append(time.perf_counter() - t)
    return {
        "mode": observation_mode,
        "factory_build_s": build_s,
        "episodes": stats.episodes,
        "steps": stats.steps,
        "steps_per_s": stats.steps / wall,
        "step_p50_ms": ms(steps, 0.5),
        "step_p95_ms": ms(steps, 0.95),
        "search_step_p50_ms": ms(stats.latencies["search"], 0.5),
        "uncached_search_step_p50_ms": ms(uncached, 0.5),
        "uncached_search_step_p95_ms": ms(uncached, 0.95),
        "click_step_p50_ms": ms(stats.latencies["click"], 0.5),
        "reset_p50_ms": ms(stats.latencies["reset"], 0.5),
        "raw_bm25_p50_ms": ms(raw, 0.5),
        "raw_bm25_queries": len(raw),
    }


def bench_http(url: str, sessions: int, episodes_per_session: int) -> dict[str, Any]:
    clients = [RemoteSession(url) for _ in range(sessions)]
    play_episodes(clients[0], [0], Stats())  # warm-up (noun tagger, first renders)
    results = [Stats() for _ in clients]
    barrier = threading.Barrier(sessions + 1)

    def run(n: int) -> None:
        barrier.wait()
        first = 1 + n * episodes_per_session
        play_episodes(clients[n], list(range(first, first + episodes_per_session)), results[n])

    threads = [threading.Thread(target=run, args=(n,)) for n in range(sessions)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    for client in clients:
        client.close()
    total = Stats()
    for stats in results:
        total.merge(stats)
    steps = total.latencies["search"] + total.latencies["click"]
    return {
        "sessions": sessions,
        "steps": total.steps,
        "steps_per_s": total.steps / wall,
        "step_p50_ms": ms(steps, 0.5),
        "step_p95_ms": ms(steps, 0.95),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=60, help="in-process episodes (default 60)")
    parser.add_argument("--http-episodes", type=int, default=16, help="episodes per HTTP session (default 16)")
    parser.add_argument("--sessions", default="1,8,32", help="concurrent HTTP sessions (default 1,8,32)")
    parser.add_argument(
        "--modes", default="text,text_rich", help="in-process observation modes (default text,text_rich)"
    )
    parser.add_argument("--skip-http", action="store_true", help="only the in-process benchmark")
    parser.add_argument("--json", type=Path, help="also write the results here as JSON")
    args = parser.parse_args(argv)

    report: dict[str, Any] = {"in_process": [], "http": []}
    for run, mode in enumerate(args.modes.split(",")):
        report["in_process"].append(bench_in_process(args.episodes, mode, run))
    if not args.skip_http:
        counts = [int(n) for n in args.sessions.split(",")]
        with ServerProcess("webshop", args=["--max-sessions", str(max(64, max(counts) + 1))]) as server:
            report["cold_start_s"] = server.cold_start_s
            report["server_rss_mib_idle"] = tree_rss_mib(server.pid)
            for count in counts:
                report["http"].append(bench_http(server.url, count, args.http_episodes))
            report["server_rss_mib_after_load"] = tree_rss_mib(server.pid)

    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


def print_report(report: dict[str, Any]) -> None:
    print("\nIn-process (one session, fixed action mix)")
    print(
        f"{'mode':<10} {'steps/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'search p50':>11} {'new-query search p50/p95':>25} "
        f"{'click p50':>10} {'reset p50':>10} {'raw BM25 p50':>13}"
    )
    for row in report["in_process"]:
        print(
            f"{row['mode']:<10} {row['steps_per_s']:>9.0f} {row['step_p50_ms']:>8.2f} {row['step_p95_ms']:>8.2f} "
            f"{row['search_step_p50_ms']:>11.2f} "
            f"{row['uncached_search_step_p50_ms']:>15.2f} / {row['uncached_search_step_p95_ms']:>7.2f} "
            f"{row['click_step_p50_ms']:>10.2f} {row['reset_p50_ms']:>10.2f} "
            f"{row['raw_bm25_p50_ms']:>13.2f}"
        )
    if report["http"]:
        print("\nHTTP (server process: harness env serve webshop, waitress; client threads)")
        print(f"{'sessions':>8} {'steps':>7} {'steps/s':>9} {'p50 ms':>8} {'p95 ms':>8}")
        for row in report["http"]:
            print(
                f"{row['sessions']:>8} {row['steps']:>7} {row['steps_per_s']:>9.0f} {row['step_p50_ms']:>8.2f} "
                f"{row['step_p95_ms']:>8.2f}"
            )
        print(f"\nserver cold start (spawn to first healthy /api/health): {report['cold_start_s']:.2f} s")
        print(
            f"server RSS: {report['server_rss_mib_idle']:.0f} MiB idle, "
            f"{report['server_rss_mib_after_load']:.0f} MiB after the load"
        )
    search_p50 = max(row["uncached_search_step_p50_ms"] for row in report["in_process"])
    checks = [("in-process new-query search step p50 < 5 ms", search_p50 < TARGETS["search_p50_ms"])]
    if report["http"]:
        at8 = [row["steps_per_s"] for row in report["http"] if row["sessions"] == 8]
        checks.append(("cold start < 3 s", report["cold_start_s"] < TARGETS["cold_start_s"]))
        if at8:
            checks.append((">= 300 HTTP steps/s at 8 sessions", at8[0] >= TARGETS["http_steps_per_s_at_8"]))
    print("\nTargets: " + "; ".join(f"{name}: {'met' if ok else 'NOT met'}" for name, ok in checks))


if __name__ == "__main__":
    raise SystemExit(main())
