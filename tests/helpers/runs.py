"""Run directories for the leaderboard tests, written with the real writers.

``build_main_run`` is a 3-seed run on both environments with a failed and a running cell and shared
ledgers; ``build_second_run`` a 1-seed WebShop run of another model with fewer episodes. The numbers
are chosen so that every aggregate in the tests can be checked by hand (see each test).
"""

from __future__ import annotations

from pathlib import Path

from foundation.records import (
    CellStatus,
    EpisodeResult,
    LedgerEntry,
    RoutingSummary,
    RunDir,
    append_jsonl,
    cell_id,
    write_json_atomic,
)
from harness.config import validate_config
from harness.runs import open_run

WEBSHOP_REWARDS = {  # strategy -> per seed, 4 test episodes each
    "untrained": {0: [0, 0, 0.5, 0], 1: [0, 0.25, 0, 0], 2: [0, 0, 0, 0]},
    "rl-only": {0: [1, 1, 0.5, 0.5], 1: [1, 0.5, 0.5, 0], 2: [1, 1, 1, 0]},
    "sft-only": {0: [1, 0.5, 0.5, 0.5], 1: [0.5, 0.5, 0.5, 0.5], 2: [1, 0.5, 0.25, 0.25]},
    "prism-gini": {0: [1, 1, 1, 0.5], 1: [1, 1, 0.5, 0.5], 2: [1, 1, 1, 0.25]},
    "random": {0: [1, 0.5, 0.5, 0.5], 1: [1, 1, 0.5, 0]},  # seed 2 failed
}
ALFWORLD_SUCCESS = {  # strategy -> per seed: [seen 1, seen 2, unseen 1, unseen 2]
    "untrained": {0: [0, 0, 0, 0], 1: [1, 0, 0, 0], 2: [0, 0, 0, 0]},
    "rl-only": {0: [1, 1, 1, 0], 1: [1, 0, 1, 0], 2: [1, 1, 0, 0]},
    "sft-only": {0: [1, 0, 0, 0], 1: [1, 1, 0, 0], 2: [0, 1, 0, 0]},
    "prism-gini": {0: [1, 1, 1, 1], 1: [1, 1, 0, 1]},  # seed 2 still running
}
ALFWORLD_TASKS = [("valid_seen", "pick_and_place_simple"), ("valid_seen", "look_at_obj_in_light"),
                  ("valid_unseen", "pick_and_place_simple"), ("valid_unseen", "pick_clean_then_place_in_recep")]

# Training compute of one cell (FLOPs by phase), the same for every seed; evaluation adds (1 + seed)e12.
TRAINING = {
    "untrained": {},
    "rl-only": {"rollout": 4e14, "rl_update": 6e14},
    "sft-only": {"sft": 2e14},
    "prism-gini": {"sft": 1e14, "rollout": 2e14, "rl_update": 3e14},
    "random": {"sft": 1e14, "rollout": 2e14, "rl_update": 3e14},
}
SHARED_PHASES = {"sft-only": ["expert"], "rl-only": [], "prism-gini": ["expert", "probe"], "random": ["expert"]}
ROUTING_SIZES = {"sft-only": (8, 0), "rl-only": (0, 8), "prism-gini": (4, 4), "random": (4, 4)}
ROUTING_REASONS = {"prism-gini": {"concentration <= median": 4, "concentration > median": 4}}
SHARED = {"expert": 0.0, "probe": 5e13}  # per environment and seed
SECONDS_PER_FLOP = 1e-11  # device and wall seconds charged per FLOP in these fixtures


def entry(phase: str, flops: float, **extra) -> LedgerEntry:
    return LedgerEntry(phase=phase, flops=flops, tokens=int(flops / 1e9), wall_s=flops * SECONDS_PER_FLOP,
                       device_s=flops * SECONDS_PER_FLOP, **extra)


def make_config(name: str, model: str, seeds: list[int], envs: list[dict]) -> dict:
    return validate_config({"name": name, "envs": envs, "seeds": seeds, "model": {"source": model},
                            "strategies": ["rl-only", "sft-only", "prism-gini", "random", "sft-then-rl"]})


def write_cell(run: RunDir, env: str, strategy: str, seed: int, episodes: list[EpisodeResult],
               state: str = "done", phase: str = "done", error: str = "") -> None:
    """A cell as the runner and pipeline leave it: ledger, episodes, routing, then status last."""
    cid = cell_id(env, strategy, seed)
    cell_dir = run.cell_dir(cid)
    ledger = [entry(p, f) for p, f in TRAINING[strategy].items()] + [entry("evaluation", (1 + seed) * 1e12,
                                                                           env_steps=len(episodes) * 5)]
    append_jsonl(cell_dir / "ledger.jsonl", [e.to_json() for e in ledger])
    if episodes:
        append_jsonl(cell_dir / "episodes.jsonl", [e.to_json() for e in episodes])
    if strategy in SHARED_PHASES:
        sft, rl = ROUTING_SIZES[strategy]
        routing = RoutingSummary(strategy, sft_count=sft, rl_count=rl, reasons=ROUTING_REASONS.get(strategy, {}),
                                 shared_phases=SHARED_PHASES[strategy])
        write_json_atomic(cell_dir / "routing.json", routing.to_json())
    run.write_status(CellStatus(cid, env, strategy, seed, state=state, phase=phase, error=error,
                                started_at=1.0, finished_at=2.0 if state in ("done", "failed") else None))


def webshop_episodes(strategy: str, seed: int, rewards: list[float]) -> list[EpisodeResult]:
    return [EpisodeResult("webshop", strategy, seed, "test", f"goal-{i}", float(r), r == 1, 7)
            for i, r in enumerate(rewards)]


def alfworld_episodes(strategy: str, seed: int, successes: list[int]) -> list[EpisodeResult]:
    return [EpisodeResult("alfworld", strategy, seed, split, f"{split}-{i}", float(s), bool(s), 12, task_type)
            for i, (s, (split, task_type)) in enumerate(zip(successes, ALFWORLD_TASKS, strict=True))]


def write_shared(run: RunDir, env: str, seed: int) -> None:
    entries = [entry(phase, flops, env_steps=100 if phase == "expert" else 0) for phase, flops in SHARED.items()]
    append_jsonl(run.shared_dir(env, seed) / "ledger.jsonl", [e.to_json() for e in entries])


def build_main_run(root: Path) -> Path:
    config = make_config("main", "tiny", [0, 1, 2], [
        {"name": "webshop", "train_split": "train", "train_tasks": 8, "eval_splits": ["test"], "eval_episodes": 4},
        {"name": "alfworld", "train_split": "train", "train_tasks": 8, "eval_splits": ["valid_seen", "valid_unseen"],
         "eval_episodes": 2},
    ])
    run = open_run(config, root)
    for seed in (0, 1, 2):
        for env in ("webshop", "alfworld"):
            write_shared(run, env, seed)
    for strategy, seeds in WEBSHOP_REWARDS.items():
        for seed, rewards in seeds.items():
            write_cell(run, "webshop", strategy, seed, webshop_episodes(strategy, seed, rewards))
    for strategy, seeds in ALFWORLD_SUCCESS.items():
        for seed, successes in seeds.items():
            write_cell(run, "alfworld", strategy, seed, alfworld_episodes(strategy, seed, successes))
    write_cell(run, "webshop", "random", 2, [], state="failed", phase="rl_update", error="RuntimeError: out of memory")
    write_cell(run, "alfworld", "prism-gini", 2, [], state="running", phase="rollout")
    return root


SECOND_REWARDS = {"untrained": [0, 0.5, 0], "rl-only": [1, 1, 0.5], "prism-gini": [1, 0.5, 0.5]}


def build_second_run(root: Path) -> Path:
    config = make_config("second", "smollm2", [0], [
        {"name": "webshop", "train_split": "train", "train_tasks": 8, "eval_splits": ["test"], "eval_episodes": 3},
    ])
    run = open_run(config, root)
    write_shared(run, "webshop", 0)
    for strategy, rewards in SECOND_REWARDS.items():
        write_cell(run, "webshop", strategy, 0, webshop_episodes(strategy, 0, rewards))
    return root
