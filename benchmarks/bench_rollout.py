"""Rollout throughput: the batched rollout engine against a one-episode-at-a-time loop, same work.

The baseline is how AgentGym runs: one episode at a time, one generation call per action. Here it is
the same engine with ``concurrency=1`` (so both sides pay identical prompt building, parsing,
environment and recording costs, and only batching differs). Both runs use the same policy object
(same model, backend and prefix cache), the same environment and the same episodes, greedy decoding,
in one process, and report episodes per minute, generated tokens per second and their ratio.
``--no-baseline-prefix-cache`` makes the baseline also skip the prefix cache, as AgentGym's
``model.generate`` loop does; the ratio then measures the engine against AgentGym's way of running.

ALFWorld's games play in worker processes, so the engine steps its in-process sessions from threads,
several at once; with ``--env alfworld`` a third run steps the batched run's sessions one after
another (as every in-process environment was before) and ``speedup_threaded_steps`` is the ratio.
All runs share one engine factory, and a warm-up plays the episodes once first, so no run pays for
starting workers or loading games.

    .venv/bin/python benchmarks/bench_rollout.py                        # SmolLM2 if prepared, else tiny
    .venv/bin/python benchmarks/bench_rollout.py --env alfworld --episodes 16 --json out.json
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import time
from typing import Any


def _run(policy: Any, env: str, episodes: list, concurrency: int, make_env: Any):
    from agents.rollout import RolloutConfig, RolloutEngine

    engine = RolloutEngine(policy, RolloutConfig(env=env, max_steps=make_env.max_steps, concurrency=concurrency,
                                                 progress=False), make_env=make_env)
    return engine.run(episodes)


def _stepped_in_turn(make_env: Any) -> Any:
    """``make_env`` on the same factory, but telling the engine to step its sessions one after another."""
    from agents.local_envs import InProcessEnvs

    class InTurn(InProcessEnvs):
        remote = False

    in_turn = InTurn(make_env.spec.name, make_env.max_steps, make_env.env_options)
    in_turn._factory = make_env.factory  # noqa: SLF001 - the same running engine, so only stepping differs
    return in_turn


def _summary(stats) -> dict[str, float]:
    return {
        "episodes": stats.episodes,
        "steps": stats.steps,
        "wall_s": round(stats.wall_s, 2),
        "policy_calls": stats.policy_calls,
        "generated_tokens": stats.generated_tokens,
        "prompt_tokens": stats.prompt_tokens,
        "episodes_per_min": round(60 * stats.episodes_per_s, 2),
        "generated_tokens_per_s": round(stats.tokens_per_s, 1),
        "success_rate": stats.success_rate,
        "mean_reward": round(stats.mean_reward, 4),
    }


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="webshop", choices=["webshop", "alfworld"])
    parser.add_argument("--split", default=None, help="default: test (WebShop) / valid_unseen (ALFWorld)")
    parser.add_argument("--model", default=None, help="model directory or name (default: smollm2 if prepared, "
                                                      "else tiny-llama)")
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--concurrency", type=int, default=None, help="batched run's sessions (default: episodes)")
    parser.add_argument("--max-steps", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--prompt-style", default="react", choices=["react", "verl"])
    parser.add_argument("--few-shot", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--history", type=int, default=2)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads, both runs (2 threads on a shared 2-core box ran up to 7x slower)")
    parser.add_argument("--baseline-prefix-cache", action=argparse.BooleanOptionalAction, default=True,
                        help="let the one-at-a-time baseline use the prefix cache too (default: yes)")
    parser.add_argument("--json", default=None, help="also write the result here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import torch

    from agents.local_envs import InProcessEnvProviders
    from agents.models import is_prepared, prepare, resolve_model
    from agents.registry import make_policy
    from agents.tasks import plan_episodes, split_tasks

    torch.set_num_threads(args.threads)
    model = args.model or ("smollm2" if is_prepared("smollm2") else "tiny-llama")
    if model in ("smollm2", "tiny-llama", "tiny") and not is_prepared(model):
        prepare(model)
    few_shot = args.few_shot and model not in ("tiny-llama", "tiny")  # the tiny context is 2048 tokens
    policy = make_policy("transformers", model=resolve_model(model), dtype=args.dtype, threads=args.threads,
                         max_new_tokens=args.max_new_tokens, temperature=0.0, prompt_style=args.prompt_style,
                         few_shot=few_shot, history=args.history, max_batch_size=32)
    split = args.split or {"webshop": "test", "alfworld": "valid_unseen"}[args.env]
    tasks = split_tasks(args.env, split, args.episodes)
    episodes = plan_episodes(args.env, tasks, "bench", seed=0)

    providers = InProcessEnvProviders()
    make_env = providers.provider(args.env, args.max_steps)
    concurrency = args.concurrency or len(episodes)
    try:
        _run(policy, args.env, episodes, concurrency, make_env)  # warm-up: workers, games, caches, kernels
        began = time.perf_counter()
        policy.backend.prefix_cache = args.baseline_prefix_cache
        seq_trajectories, sequential = _run(policy, args.env, episodes, 1, make_env)
        policy.backend.prefix_cache = True
        batched_trajectories, batched = _run(policy, args.env, episodes, concurrency, make_env)
        in_turn = _run(policy, args.env, episodes, concurrency, _stepped_in_turn(make_env)) if make_env.remote else None
    finally:
        providers.close()
    by_id = {t.id: t.actions for t in batched_trajectories}
    same = sum(by_id.get(t.id) == t.actions for t in seq_trajectories)
    threaded: dict[str, Any] = {}
    if in_turn is not None:
        threaded = {"batched_stepped_in_turn": _summary(in_turn[1]),
                    "speedup_threaded_steps": round(in_turn[1].wall_s / batched.wall_s, 2),
                    "threaded_same_actions": [t.actions for t in in_turn[0]]
                    == [t.actions for t in batched_trajectories]}
    result = {
        "benchmark": "rollout engine vs one episode at a time",
        "env": args.env, "split": split, "model": model, "dtype": args.dtype, "threads": args.threads,
        "prompt": {"style": args.prompt_style, "few_shot": few_shot, "history": args.history},
        "max_steps": args.max_steps, "max_new_tokens": args.max_new_tokens,
        "concurrency": concurrency,
        "baseline_prefix_cache": args.baseline_prefix_cache,
        "sequential": _summary(sequential),
        "batched": _summary(batched),
        "speedup_episodes_per_min": round(batched.episodes_per_s / sequential.episodes_per_s, 2),
        "speedup_tokens_per_s": round(batched.tokens_per_s / sequential.tokens_per_s, 2)
        if sequential.tokens_per_s else None,
        "episodes_with_identical_actions": f"{same}/{len(episodes)}",
        **threaded,
        "total_s": round(time.perf_counter() - began, 1),
        "machine": f"{platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads",
    }
    print(json.dumps(result, indent=2))  # noqa: T201 - a benchmark reports on stdout
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)
    return result


if __name__ == "__main__":
    main()
