"""ALFWorld speed and memory: this harness's engine against alfworld's stock ``AlfredTWEnv`` path.

Both play the same games with the same stored walkthrough actions. Ours runs through Gymnasium,
in-process and over HTTP with 1, 4 and 16 concurrent sessions on a worker pool, each configuration
with a fresh (cold) translation cache unless ``--warm``; the stock env runs the way alfworld runs it
(``AlfredTWEnv(config, train_eval=...).init_env(batch_size)``, batch 1 in-process and batch 2 on
two processes). Then RSS after ``--memory-games`` game loads, ours (one reused worker) vs stock.

    .venv/bin/python benchmarks/bench_alfworld.py                     # the full run (~15 min on 2 cores)
    .venv/bin/python benchmarks/bench_alfworld.py --games 12 --memory-games 40 --sessions 1,4

The stock env finds games through ``traj_data.json`` files, which json_2.1.1 does not ship, so its
game list is set to the chosen files after construction; everything else is alfworld's own code.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import multiprocessing
import os
import queue
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from environments.alfworld.games import Game, GameCatalogue  # noqa: E402
from environments.alfworld.gym_env import ALFWorldEnv  # noqa: E402
from environments.alfworld.session import ALFWorldFactory  # noqa: E402
from environments.core.server import RunningServer, ServerSettings, create_app  # noqa: E402

console = Console(width=170)


@dataclass
class Run:
    """Timings of one configuration playing the game list."""

    name: str
    workers: str
    episodes: int = 0
    won: int = 0
    wall_s: float = 0.0
    reset_s: list[float] = field(default_factory=list)
    step_s: list[float] = field(default_factory=list)
    rss_mb: float | None = None
    memory_run: bool = False  # the long run whose RSS is compared

    @property
    def episodes_per_min(self) -> float:
        return 60 * self.episodes / self.wall_s if self.wall_s else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "workers": self.workers,
            "episodes": self.episodes,
            "won": self.won,
            "wall_s": round(self.wall_s, 2),
            "episodes_per_min": round(self.episodes_per_min, 1),
            "reset_mean_s": _mean(self.reset_s),
            "reset_p95_s": _p95(self.reset_s),
            "step_mean_ms": _ms(_mean(self.step_s)),
            "step_p95_ms": _ms(_p95(self.step_s)),
            "steps_per_s": round(len(self.step_s) / self.wall_s, 1) if self.wall_s else None,
            "rss_mb": self.rss_mb,
        }


def _mean(values: Sequence[float]) -> float | None:
    return round(statistics.fmean(values), 4) if values else None


def _p95(values: Sequence[float]) -> float | None:
    return round(sorted(values)[min(len(values) - 1, int(0.95 * len(values)))], 4) if values else None


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(1000 * seconds, 1)


# -- ours -------------------------------------------------------------------------------------


def play_ours(
    name: str, workers: str, make_env: Callable[[], ALFWorldEnv], games: Sequence[Game], sessions: int
) -> Run:
    """``sessions`` threads, each with its own Gymnasium env, play the games' walkthroughs."""
    run = Run(name, workers)
    todo: queue.Queue[Game] = queue.Queue()
    for game in games:
        todo.put(game)
    lock = threading.Lock()
    envs = [make_env() for _ in range(sessions)]

    def player(env: ALFWorldEnv) -> None:
        while True:
            try:
                game = todo.get_nowait()
            except queue.Empty:
                return
            started = time.perf_counter()
            env.reset(options={"game": game.id})
            resets = [time.perf_counter() - started]
            steps, won = [], False
            for action in game.walkthrough():
                started = time.perf_counter()
                _, _, won, truncated, _ = env.step(action)
                steps.append(time.perf_counter() - started)
                if won or truncated:
                    break
            with lock:
                run.reset_s += resets
                run.step_s += steps
                run.episodes += 1
                run.won += int(won)

    started = time.perf_counter()
    threads = [threading.Thread(target=player, args=(env,)) for env in envs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    run.wall_s = time.perf_counter() - started
    for env in envs:
        env.close()
    return run


def _started_factory(workers: int, cache_dir: Path, **options: Any) -> ALFWorldFactory:
    factory = ALFWorldFactory(workers=workers, cache_dir=str(cache_dir), **options)
    factory.pool.start(wait=True)  # start-up is not a load
    return factory


def _cache(cache_root: Path, name: str, warm: bool) -> Path:
    """A fresh translation cache per configuration, or one shared cache with ``--warm``."""
    return cache_root / ("shared" if warm else name)


def bench_ours_in_process(games: Sequence[Game], cache_root: Path, warm: bool) -> list[Run]:
    factory = _started_factory(1, _cache(cache_root, "in-process", warm))
    try:
        make_env = lambda: ALFWorldEnv(session=factory.new_session())  # noqa: E731
        return [
            play_ours("ours in-process", "1", make_env, games, 1),
            play_ours("ours in-process, same games again", "1", make_env, games, 1),
        ]
    finally:
        factory.close()


def bench_ours_http(games: Sequence[Game], sessions: int, workers: int, cache_root: Path, warm: bool) -> Run:
    factory = _started_factory(workers, _cache(cache_root, f"http-{sessions}", warm))
    settings = ServerSettings(port=0, threads=max(8, 2 * sessions))
    try:
        with RunningServer(create_app("alfworld", factory, settings), settings) as server:
            label = f"ours HTTP, {sessions} session{'s' * (sessions > 1)}"
            return play_ours(label, str(workers), lambda: ALFWorldEnv(server.url), games, sessions)
    finally:
        factory.close()


def bench_ours_memory(games: Sequence[Game], cache_root: Path, warm: bool) -> Run:
    """One session plays every game in turn on the default pool (recycling included); worker RSS."""
    factory = _started_factory(1, _cache(cache_root, "memory", warm))
    try:
        before = factory.pool.worker_stats()[0]["rss_mb"]
        make_env = lambda: ALFWorldEnv(session=factory.new_session())  # noqa: E731
        run = play_ours(f"ours in-process, {len(games)} games (memory)", "1", make_env, games, 1)
        run.rss_mb = max(stats["rss_mb"] for stats in factory.pool.worker_stats())
        run.memory_run = True
        recycled = factory.pool.describe()["recycled"]
    finally:
        factory.close()
    console.print(
        f"ours: worker RSS {before:.0f} MB at start, {run.rss_mb:.0f} MB after {len(games)} games "
        f"({recycled} recycling(s) at {factory.config.games_per_worker} games per worker)"
    )
    return run


def bench_engine_costs(games: Sequence[Game], cache_root: Path, steps: int = 20) -> dict[str, dict[str, float]]:
    """Worker CPU of a first load, a repeated reset and a random admissible step, memoised vs stock
    textworld (a step renders its observation and admissible commands through the text grammar).

    CPU seconds of the worker process, so other jobs on shared cores do not inflate them.
    """
    costs: dict[str, dict[str, float]] = {}
    for memoise in (False, True):
        factory = _started_factory(1, cache_root / f"resets-{memoise}", memoise=memoise)
        session = factory.new_session()
        cpu_s = lambda pool=factory.pool: pool.worker_stats()[0]["cpu_s"]  # noqa: E731
        loads, resets, step_s = [], [], []
        rng = random.Random(0)
        try:
            for game in games:
                before = cpu_s()
                session.reset({"game": game.id})
                loads.append(cpu_s() - before)
                for _ in range(2):
                    before = cpu_s()
                    _, info = session.reset({"game": game.id})
                    resets.append(cpu_s() - before)
                before, taken = cpu_s(), 0
                for _ in range(steps):
                    outcome = session.step(rng.choice(sorted(info["available_actions"])))
                    info, taken = outcome.info, taken + 1
                    if outcome.terminated or info["step_limit_reached"]:
                        break
                step_s.append((cpu_s() - before) / taken)
        finally:
            session.close()
            factory.close()
        costs["memoised" if memoise else "stock textworld"] = {
            "first_load_mean_s": _mean(loads), "first_load_max_s": round(max(loads), 3),
            "repeated_reset_mean_s": _mean(resets), "repeated_reset_max_s": round(max(resets), 3),
            "random_step_mean_ms": _ms(_mean(step_s)),
        }
    table = Table(title=f"ALFWorld engine, worker CPU ({len(games)} games, {steps} random steps each, one worker)")
    for column in ("engine", "first load mean / max s", "repeated reset mean / max s", "random step mean ms"):
        table.add_column(column)
    for name, c in costs.items():
        table.add_row(name, f"{c['first_load_mean_s']} / {c['first_load_max_s']}",
                      f"{c['repeated_reset_mean_s']} / {c['repeated_reset_max_s']}", f"{c['random_step_mean_ms']}")
    console.print(table)
    return costs


# -- stock ------------------------------------------------------------------------------------


def _stock_env(paths: Sequence[str], batch_size: int) -> Any:
    from alfworld.agents.environment.alfred_tw_env import AlfredTWEnv

    data = str(Path(paths[0]).parents[2])
    config = {
        "env": {"goal_desc_human_anns_prob": 0, "task_types": [1, 2, 3, 4, 5, 6], "domain_randomization": False,
                "expert_type": "handcoded"},
        "dataset": {"data_path": data, "eval_id_data_path": data, "eval_ood_data_path": data,
                    "num_train_games": -1, "num_eval_games": -1},
        "general": {"training_method": "dagger"},
        "dagger": {"training": {"max_nb_steps_per_episode": 50}},
    }
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        stock = AlfredTWEnv(config, train_eval="eval_in_distribution")
    stock.game_files = list(paths)  # json_2.1.1 has no traj_data.json for it to find games by
    stock.num_games = len(paths)
    return stock.init_env(batch_size=batch_size)


def _rss_tree_mb() -> float:
    """RSS of this process and its children (the stock batch env's workers)."""
    from environments.alfworld.worker import rss_mb

    total = rss_mb()
    for child in multiprocessing.active_children():
        try:
            with open(f"/proc/{child.pid}/statm") as fh:
                total += int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
        except OSError:
            pass
    return total


def _stock_child(paths: list[str], walkthroughs: dict[str, list[str]], batch_size: int, out: Any) -> None:
    """Runs in a fresh process: play every game once with the stock env; report timings and RSS."""
    env = _stock_env(paths, batch_size)
    run = Run(f"stock AlfredTWEnv, batch {batch_size}", str(batch_size))
    started = time.perf_counter()
    for _ in range(0, len(paths), batch_size):
        t0 = time.perf_counter()
        _, infos = env.reset()
        run.reset_s.append(time.perf_counter() - t0)
        plans = [list(walkthroughs[path]) for path in infos["extra.gamefile"]]
        dones = [False] * batch_size
        while not all(dones) and any(plans):
            actions = [plan.pop(0) if plan else "look" for plan in plans]
            t0 = time.perf_counter()
            _, _, dones, infos = env.step(actions)
            run.step_s.append(time.perf_counter() - t0)
        run.episodes += batch_size
        run.won += sum(bool(w) for w in infos["won"])
    run.wall_s = time.perf_counter() - started
    run.rss_mb = round(_rss_tree_mb(), 1)
    env.close()
    out.put(run)


def bench_stock(games: Sequence[Game], batch_size: int) -> Run:
    usable = list(games)[: len(games) - len(games) % batch_size]
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    child = ctx.Process(
        target=_stock_child,
        args=([str(g.path) for g in usable], {str(g.path): g.walkthrough() for g in usable}, batch_size, out),
    )
    child.start()
    run = out.get()
    child.join()
    return run


# -- report -----------------------------------------------------------------------------------


def print_table(runs: Sequence[Run]) -> None:
    table = Table(title="ALFWorld: same games, same walkthrough actions")
    for column in ("configuration", "workers", "episodes (won)", "episodes/min", "reset mean / p95 s",
                   "step mean / p95 ms", "steps/s", "RSS MB"):
        table.add_column(column, justify="left" if column == "configuration" else "right")
    for run in runs:
        s = run.summary()
        table.add_row(
            run.name, run.workers, f"{run.episodes} ({run.won})", f"{s['episodes_per_min']:.1f}",
            f"{s['reset_mean_s']} / {s['reset_p95_s']}", f"{s['step_mean_ms']} / {s['step_p95_ms']}",
            str(s["steps_per_s"]), "" if run.rss_mb is None else f"{run.rss_mb:.0f}",
        )
    console.print(table)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", default="valid_seen", help="split whose games are played (default valid_seen)")
    parser.add_argument("--games", type=int, default=24, help="games per configuration (default 24, spread over types)")
    parser.add_argument("--sessions", default="1,4,16", help="concurrent HTTP sessions to try (default 1,4,16)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes for the HTTP runs (default 2)")
    parser.add_argument("--memory-games", type=int, default=300, help="games for the RSS comparison (0 skips it)")
    parser.add_argument("--warm", action="store_true", help="reuse one translation cache across configurations")
    parser.add_argument("--reset-games", type=int, default=18,
                        help="games for the engine CPU costs: load, reset, random step (default 18; 0 skips)")
    parser.add_argument("--skip-stock", action="store_true", help="do not run alfworld's AlfredTWEnv")
    parser.add_argument("--json", type=Path, help="also write the results here as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    catalogue = GameCatalogue.from_data()
    pool = catalogue.games(args.split)
    games = [pool[i * len(pool) // args.games] for i in range(min(args.games, len(pool)))]
    sessions = [int(s) for s in args.sessions.split(",") if s]
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="alfworld-bench-") as tmp:
        cache_root = Path(tmp)
        console.print(f"{len(games)} {args.split} games, {os.cpu_count()} CPUs")
        reset_costs = bench_engine_costs(games[: args.reset_games], cache_root) if args.reset_games else {}
        runs += bench_ours_in_process(games, cache_root, args.warm)
        for count in sessions:
            runs.append(bench_ours_http(games, count, args.workers, cache_root, args.warm))
        if not args.skip_stock:
            runs += [bench_stock(games, batch) for batch in (1, 2)]
        if args.memory_games:
            memory_games = [g for split in ("valid_seen", "valid_unseen", "valid_train", "train")
                            for g in catalogue.games(split)][: args.memory_games]
            runs.append(bench_ours_memory(memory_games, cache_root, args.warm))
            if not args.skip_stock:
                stock_memory = bench_stock(memory_games, 1)
                stock_memory.name = f"stock batch 1, {len(memory_games)} games (memory)"
                stock_memory.memory_run = True
                runs.append(stock_memory)
    print_table(runs)
    ratios = _ratios(runs)
    if reset_costs:
        stock, ours = reset_costs["stock textworld"], reset_costs["memoised"]
        ratios["first load CPU, stock textworld vs memoised"] = stock["first_load_mean_s"] / ours["first_load_mean_s"]
        ratios["repeated reset CPU, stock textworld vs memoised"] = (
            stock["repeated_reset_mean_s"] / ours["repeated_reset_mean_s"])
        ratios["random step CPU, stock textworld vs memoised"] = (
            stock["random_step_mean_ms"] / ours["random_step_mean_ms"])
    for label, value in ratios.items():
        console.print(f"{label}: [bold]{value:.2f}x[/]")
    if args.json:
        args.json.write_text(json.dumps(
            {"runs": [r.summary() for r in runs], "reset_costs": reset_costs, "ratios": ratios}, indent=2))
    return 0


def _ratios(runs: Sequence[Run]) -> dict[str, float]:
    """Ours over stock: episodes per minute on the same games, and stock RSS over ours."""
    ratios: dict[str, float] = {}
    for ours in (r for r in runs if r.name.startswith("ours")):
        for stock in (r for r in runs if r.name.startswith("stock") and r.memory_run == ours.memory_run):
            ratios[f"episodes/min, {ours.name} vs {stock.name}"] = ours.episodes_per_min / stock.episodes_per_min
            if ours.memory_run and ours.rss_mb:
                ratios[f"RSS, {stock.name} vs {ours.name}"] = (stock.rss_mb or 0.0) / ours.rss_mb
    return ratios


if __name__ == "__main__":
    raise SystemExit(main())
