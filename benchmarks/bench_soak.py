"""Soak: many sessions, many steps, one fresh server per environment; errors and memory over the run.

WebShop: 64 sessions play the load benchmark's shopping mix (``bench_webshop_load.py``) until
10,000 steps in all. ALFWorld: 16 sessions replay validation games' walkthroughs, one game after
another, until 2,000 steps in all. The server (with its ALFWorld workers) runs as ``harness env
serve``; its resident memory is sampled every half second. A soak passes with zero errors.

    .venv/bin/python benchmarks/bench_soak.py                       # both environments
    .venv/bin/python benchmarks/bench_soak.py --envs webshop --json soak.json

``tests/test_soak.py`` (``pytest -m soak``) runs this and checks it.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench_webshop_load import Record, drive, summarize
from serving import REPO_ROOT, ApiClient, ApiFailure, RssSampler, ServerProcess

sys.path.insert(0, str(REPO_ROOT))

PLANS = {"webshop": (64, 10_000), "alfworld": (16, 2_000)}
"""Environment -> (sessions, total steps)."""
TIME_LIMIT_S = 1800.0


def drive_alfworld(port: int, sessions: int, total_steps: int) -> list[Record]:
    """Each session replays walkthroughs of the validation games (its own rotation) until the total is reached."""
    from environments.alfworld.games import GameCatalogue

    games = GameCatalogue.from_data().games("valid_seen")
    records = [Record() for _ in range(sessions)]
    deadline = time.perf_counter() + TIME_LIMIT_S

    def played() -> int:
        return sum(len(record.steps) for record in records)

    def run(index: int) -> None:
        client, record = ApiClient(port), records[index]
        try:
            client.open()
            for game in itertools.islice(itertools.cycle(games), index, None, sessions):
                if played() >= total_steps or time.perf_counter() > deadline:
                    break
                client.reset({"game": game.id})
                for action in game.walkthrough():
                    started = time.perf_counter()
                    outcome = client.step(action)
                    record.steps.append((started, time.perf_counter() - started))
                    if outcome["terminated"]:
                        break
                if not outcome["info"].get("won"):
                    record.errors.append(f"walkthrough of {game.id} did not win")
                record.episodes += 1
        except (OSError, ApiFailure, KeyError) as exc:
            record.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            client.close()

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(sessions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return records


def soak(env: str, sessions: int, total_steps: int) -> dict[str, Any]:
    with ServerProcess(env, REPO_ROOT, ["--max-sessions", str(sessions)]) as server:
        with RssSampler(server.pid, interval_s=0.5) as rss:
            if env == "webshop":
                records = drive(server.port, sessions, TIME_LIMIT_S, seed=0, max_steps=total_steps)
            else:
                records = drive_alfworld(server.port, sessions, total_steps)
        summary = summarize(records, burst_s=10.0)
    return {"env": env, "sessions": sessions, **summary, **rss.summary(), "rss_samples": rss.samples}


def print_report(results: list[dict[str, Any]]) -> None:
    print("\nSoak (fresh server per environment; RSS of the server and its workers, sampled every 0.5 s)")
    print(f"{'env':<9} {'sessions':>8} {'steps':>7} {'episodes':>8} {'steps/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'RSS start/peak/end MiB':>23} {'errors':>7}")
    for row in results:
        rss = f"{row['rss_start_mib']:.0f} / {row['rss_peak_mib']:.0f} / {row['rss_end_mib']:.0f}"
        print(f"{row['env']:<9} {row['sessions']:>8} {row['steps']:>7} {row['episodes']:>8} "
              f"{row['steps_per_s']:>8.0f} {row['p50_ms']:>8.1f} {row['p99_ms']:>8.1f} {rss:>23} {row['errors']:>7}")
        for sample in row["error_samples"]:
            print(f"  error: {sample}")
        quarters = [row["rss_samples"][int(q * (len(row["rss_samples"]) - 1))][1] for q in (0, 0.25, 0.5, 0.75, 1)]
        print(f"  RSS at 0/25/50/75/100 % of the run: {' / '.join(f'{mib:.0f}' for mib in quarters)} MiB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", default="webshop,alfworld", help="environments to soak (default both)")
    parser.add_argument("--json", type=Path, help="also write the results (with every RSS sample) here")
    args = parser.parse_args(argv)

    results = []
    for env in args.envs.split(","):
        sessions, total = PLANS[env]
        print(f"soaking {env}: {sessions} sessions, {total} steps ...", file=sys.stderr, flush=True)
        results.append(soak(env, sessions, total))
    print_report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if all(row["errors"] == 0 and row["steps"] >= PLANS[row["env"]][1] for row in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
