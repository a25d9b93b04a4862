"""PRISM probe throughput: the batched Gram-trick probe against the naive per-trajectory loop and
against one SFT step on the same data.

All three run on the same model, the same real WebShop expert trajectories (tokenised exactly as the
trainers see them: one row per step, the agents' prompt + the action) and the same batches:

* batched: :func:`prism_train.probe.batched_norms`, one forward + one backward per batch of
  ``--batch-size`` trajectories, no weight gradients;
* naive: one forward + backward per trajectory, norms read from ``.grad`` (the reference);
* SFT step: forward + backward with every weight trained + an AdamW step, per batch.

Rounds are interleaved (batched, naive, SFT, batched, ...) and the median round is reported, so a
busy machine slows all three alike. The model is built from a config (random weights, real
architecture) unless ``--model`` names a directory or a prepared model.

    .venv/bin/python benchmarks/bench_probe.py                         # small Llama, 32 trajectories
    .venv/bin/python benchmarks/bench_probe.py --preset smollm2-shape --trajectories 16 --json out.json
    .venv/bin/python benchmarks/bench_probe.py --model smollm2 --device cuda   # on a GPU machine
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

PRESETS: dict[str, dict[str, int]] = {
    "tiny": {"hidden_size": 64, "intermediate_size": 176, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 2},
    "small": {"hidden_size": 256, "intermediate_size": 688, "num_hidden_layers": 4, "num_attention_heads": 4,
              "num_key_value_heads": 2},
    # SmolLM2-135M's shape (random weights, our tokenizer's vocabulary).
    "smollm2-shape": {"hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
                      "num_attention_heads": 9, "num_key_value_heads": 3},
}


def _model_dir(args: argparse.Namespace, scratch: Path) -> str:
    if args.model:
        from agents.models import resolve_model

        return resolve_model(args.model)
    from agents.models import tiny_corpus
    from agents.tiny_models import TinyModelConfig, save_tiny_model

    return str(save_tiny_model(tiny_corpus(), scratch / args.preset, TinyModelConfig(**PRESETS[args.preset])))


def _timed(fn, sync) -> float:
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="model directory or prepared name (default: --preset)")
    parser.add_argument("--preset", default="small", choices=sorted(PRESETS))
    parser.add_argument("--trajectories", type=int, default=32, help="WebShop expert episodes (goals 0..N-1)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="float32", help="float32 | bfloat16 | auto")
    parser.add_argument("--few-shot", action=argparse.BooleanOptionalAction, default=False)
    parser.add_argument("--history", type=int, default=0)
    parser.add_argument("--max-length", type=int, default=1024, help="steps longer than this are left out")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import torch

    torch.set_num_threads(args.threads)
    from environments.webshop.engine import WebShopFactory
    from environments.webshop.expert import play_expert_episode
    from prism_train.device import autocast, resolve_device, synchronizer
    from prism_train.formatting import PromptConfig, TrajectoryTokenizer
    from prism_train.modeling import load_causal_lm, load_tokenizer, pad_rows, target_logprobs
    from prism_train.probe import batched_norms, find_projections, naive_norms

    device = resolve_device(args.device)
    sync = synchronizer(device)
    with tempfile.TemporaryDirectory() as scratch:
        path = _model_dir(args, Path(scratch))
        tokenizer = load_tokenizer(path)
        model = load_causal_lm(path, device=device)
    session = WebShopFactory().new_session()
    trajectories = [play_expert_episode(session, goal, split="all") for goal in range(args.trajectories)]
    prompt = PromptConfig(few_shot=args.few_shot, history=args.history, max_length=args.max_length)
    tokenized = [t for t in TrajectoryTokenizer(tokenizer, prompt).tokenize_all(trajectories) if t.n_targets]
    tokenized.sort(key=lambda t: -max(len(r.input_ids) for r in t.rows))  # as the probe batches them
    batches = [tokenized[i:i + args.batch_size] for i in range(0, len(tokenized), args.batch_size)]
    projections = find_projections(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-12)  # a real step that barely moves the weights

    def batched() -> list[torch.Tensor]:
        return [batched_norms(model, b, projections, args.precision)[0] for b in batches]

    def naive() -> list[torch.Tensor]:
        return [naive_norms(model, s, projections, args.precision)[0] for s in tokenized]

    def sft_steps() -> None:
        for b in batches:
            rows = [r for s in b for r in s.rows]
            batch = pad_rows(rows, tokenizer.pad_token_id or 0, device)
            with autocast(device, args.precision):
                loss = -target_logprobs(model, batch).sum() / sum(r.n_targets for r in rows)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    agreement = torch.cat(batched()).cpu()
    reference = torch.stack(naive()).cpu()
    max_rel = float(((agreement - reference).abs() / reference).max())
    rounds: dict[str, list[float]] = {"batched": [], "naive": [], "sft_step": []}
    for _ in range(args.rounds):
        rounds["batched"].append(_timed(batched, sync))
        rounds["naive"].append(_timed(naive, sync))
        rounds["sft_step"].append(_timed(sft_steps, sync))
    median = {k: statistics.median(v) for k, v in rounds.items()}
    n = len(tokenized)
    result = {
        "device": str(device),
        "machine": platform.processor() or platform.machine(),
        "threads": args.threads,
        "model": args.model or f"preset:{args.preset}",
        "parameters_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "projections": len(projections),
        "trajectories": n,
        "rows": sum(len(t.rows) for t in tokenized),
        "tokens": sum(len(r.input_ids) for t in tokenized for r in t.rows),
        "batch_size": args.batch_size,
        "precision": args.precision,
        "max_relative_difference": max_rel,
        "seconds_per_round": {k: round(v, 3) for k, v in median.items()},
        "all_rounds": {k: [round(x, 3) for x in v] for k, v in rounds.items()},
        "trajectories_per_s": {k: round(n / v, 2) for k, v in median.items()},
        "batched_speedup_over_naive": round(median["naive"] / median["batched"], 2),
        "probe_time_over_sft_step_time": round(median["batched"] / median["sft_step"], 2),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
