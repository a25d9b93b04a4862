"""Rollout throughput against the number of environment workers: local server processes and Ray actors.

For each backend and N in 1, 2, 4 workers, the rollout engine plays the same episodes (the first
``--episodes`` tasks of the split) with ``--concurrency`` sessions open at a time:

- ``servers``: N ``harness env serve`` processes (ALFWorld with one game process each), the sessions
  spread over them by the server-pool provider (``harness.distributed.make_server_pool_provider``);
- ``ray``: N environment actors (one CPU each) on a private local Ray, the sessions spread over
  them by the Ray provider (``harness.distributed.make_ray_env_provider``).

The policy is the environment's scripted expert, which costs next to nothing, so the curve is the
environments' own: it shows how far extra workers help on this machine and where it flattens (the
cores run out). A serial in-process run (one session, environment in the driver) measures the
per-episode costs that docs/scaling.md projects to multi-node GPU setups from: environment CPU
seconds per step and per episode, steps per episode.

    .venv/bin/python benchmarks/bench_scaling.py                        # alfworld, 40 episodes
    .venv/bin/python benchmarks/bench_scaling.py --env webshop --episodes 150 --json out.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from agents.rollout import RolloutConfig, RolloutEngine, RolloutStats  # noqa: E402
from agents.scripted import ExpertPolicy  # noqa: E402
from agents.tasks import EpisodeSpec, plan_episodes, split_tasks  # noqa: E402
from environments.core.trajectory import Trajectory  # noqa: E402
from harness.distributed import EnvProvider, make_ray_env_provider, make_server_pool_provider  # noqa: E402

log = logging.getLogger("bench_scaling")

SPLITS = {"webshop": "test", "alfworld": "valid_unseen"}
SERVER_OPTIONS = {"alfworld": ["-o", "workers=1"]}  # one game process per server: one worker, one core
SERVER_START_TIMEOUT_S = 180


@contextmanager
def local_servers(env: str, count: int) -> Iterator[list[str]]:
    """``count`` environment servers, each its own process on a free port; stopped on exit."""
    procs: list[subprocess.Popen[str]] = []
    try:
        urls = []
        for _ in range(count):
            proc = subprocess.Popen(
                [sys.executable, "-m", "harness.cli", "env", "serve", env, "--port", "0",
                 *SERVER_OPTIONS.get(env, [])],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO_ROOT,
                env={**os.environ, "COLUMNS": "300"},
            )
            procs.append(proc)
            urls.append(_server_url(proc))
        yield urls
    finally:
        for proc in procs:
            proc.send_signal(2)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _server_url(proc: subprocess.Popen[str]) -> str:
    """The address a starting server prints (it picks a free port itself)."""
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"an environment server exited before serving (exit {proc.wait()})")
        match = re.search(r"http://127\.0\.0\.1:\d+", line)
        if match:
            return match.group(0)
    raise RuntimeError(f"no environment server address within {SERVER_START_TIMEOUT_S} s")


@contextmanager
def server_provider(env: str, workers: int) -> Iterator[EnvProvider]:
    with local_servers(env, workers) as urls, make_server_pool_provider(urls, env) as provider:
        yield provider


def ray_provider(env: str, workers: int) -> AbstractContextManager[EnvProvider]:
    return make_ray_env_provider("local", env, workers=workers)  # joins the Ray started in main()


BACKENDS: dict[str, Callable[[str, int], AbstractContextManager[EnvProvider]]] = {
    "servers": server_provider,
    "ray": ray_provider,
}


def run(env: str, episodes: Sequence[EpisodeSpec], concurrency: int,
        provider: EnvProvider | None) -> tuple[list[Trajectory], RolloutStats]:
    config = RolloutConfig(env=env, concurrency=concurrency, env_threads=concurrency, progress=False)
    trajectories, stats = RolloutEngine(ExpertPolicy(), config, make_env=provider).run(episodes)
    if stats.failed:
        raise RuntimeError(f"{stats.failed} episode(s) failed")
    return trajectories, stats


def row(trajectories: list[Trajectory], stats: RolloutStats, **labels: Any) -> dict[str, Any]:
    """Throughput, and the environment's own time split into the episode start (reset) and its steps."""
    step_s = sum(step.info["env_time_s"] for t in trajectories for step in t.steps)
    reset_s = sum(t.metadata["env_time_s"] for t in trajectories) - step_s
    return {
        **labels,
        "episodes": stats.episodes,
        "episodes_per_min": round(60 * stats.episodes_per_s, 1),
        "steps_per_s": round(stats.steps / stats.wall_s, 1),
        "wall_s": round(stats.wall_s, 2),
        "steps_per_episode": round(stats.steps / stats.episodes, 2),
        "success_rate": round(stats.success_rate, 3),
        "env_s_per_episode": round(stats.env_s / stats.episodes, 3),
        "reset_s_per_episode": round(reset_s / stats.episodes, 3),
        "env_s_per_step": round(step_s / stats.steps, 4),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="alfworld", choices=sorted(SPLITS))
    parser.add_argument("--episodes", type=int, default=40, help="episodes per measurement")
    parser.add_argument("--concurrency", type=int, default=8, help="sessions open at once (all worker counts)")
    parser.add_argument("--workers", default="1,2,4", help="worker counts, comma-separated")
    parser.add_argument("--backends", default=",".join(BACKENDS), help=f"of {', '.join(BACKENDS)}")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    counts = [int(n) for n in args.workers.split(",")]
    backends = args.backends.split(",")
    unknown = sorted(set(backends) - set(BACKENDS))
    if unknown or args.episodes < 1 or min(counts) < 1:
        parser.error(f"bad arguments: unknown backends {unknown}" if unknown else "episodes and workers must be >= 1")
    # Tasks spread evenly over the split (its order groups task types; ALFWorld's first games are short).
    every = split_tasks(args.env, SPLITS[args.env])
    wanted = args.episodes + 2 * max(counts)
    if wanted > len(every):
        parser.error(f"the {SPLITS[args.env]} split has {len(every)} tasks; ask for fewer episodes")
    tasks = every[::len(every) // wanted][:wanted]
    episodes = plan_episodes(args.env, tasks[:args.episodes], "expert")
    # Warms each backend's processes up (imports, catalogue, noun tagger, planner) on other tasks than
    # the measured ones, so that a game is not already memoised in a worker when it is measured.
    warmup = plan_episodes(args.env, tasks[args.episodes:], "expert")
    results: dict[str, Any] = {"env": args.env, "concurrency": args.concurrency, "cores": os.cpu_count(),
                               "runs": []}

    print(f"priming: {len(tasks)} {args.env} episodes in-process (fills the engines' disk caches)", flush=True)
    run(args.env, episodes + warmup, args.concurrency, None)
    results["serial_in_process"] = row(*run(args.env, episodes, 1, None), backend="in-process", workers=1,
                                       concurrency=1)
    print(json.dumps(results["serial_in_process"]), flush=True)

    if "ray" in backends:
        import ray

        ray.init(num_cpus=max(counts), include_dashboard=False, log_to_driver=False)
    try:
        for backend in backends:
            for workers in counts:
                with BACKENDS[backend](args.env, workers) as provider:
                    run(args.env, warmup, args.concurrency, provider)
                    measured = run(args.env, episodes, args.concurrency, provider)
                results["runs"].append(row(*measured, backend=backend, workers=workers, concurrency=args.concurrency))
                print(json.dumps(results["runs"][-1]), flush=True)
    finally:
        if "ray" in backends:
            ray.shutdown()

    print(f"\n{args.env}: episodes/min by workers ({args.concurrency} sessions, expert policy, "
          f"{os.cpu_count()} cores)")
    for backend in backends:
        runs = [r for r in results["runs"] if r["backend"] == backend]
        base = runs[0]["episodes_per_min"]
        curve = "  ".join(f"{r['workers']}: {r['episodes_per_min']:7.1f} (x{r['episodes_per_min'] / base:.2f})"
                          for r in runs)
        print(f"  {backend:8s} {curve}")
    print(f"  serial in-process: {results['serial_in_process']['episodes_per_min']:.1f} episodes/min, "
          f"{results['serial_in_process']['env_s_per_episode']:.3f} env-s per episode")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
