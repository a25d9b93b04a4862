"""PRISM probe throughput: the batched Gram-trick probe against the naive per-trajectory loop and
against one SFT step on the same data.

All three run on the same model, the same real WebShop expert trajectories (tokenised exactly as the
trainers see them: one row per step, the agents' prompt + the action) and the same batches:

* batched: :func:`prism_train.probe.batched_norms`, one forward + one backward per batch of
  ``--batch-size`` trajectories, split as :func:`prism_train.probe.probe` splits it: at most
  ``--max-batch-tokens`` rows × padded length per pass (default: the probe's default for the
  device, 4096 on a CPU, 65536 on a GPU; a huge value gives one pass per batch); no weight gradients;
* naive: one forward + backward per trajectory, norms read from ``.grad`` (the reference);
* SFT step: forward + backward with every weight trained + an AdamW step, per batch.

Rounds are interleaved (batched, naive, SFT, batched, ...) and the median round is reported, so a
busy machine slows all three alike; on a CPU the process CPU time is reported too (less sensitive to
other jobs than wall time). The model is built from a config (random weights, real architecture)
unless ``--model`` names a directory or a prepared model. ``--precision auto`` runs bf16 autocast on
a GPU that has it and float32 on a CPU.

    .venv/bin/python benchmarks/bench_probe.py --threads 1             # small Llama, 32 trajectories
    .venv/bin/python benchmarks/bench_probe.py --max-batch-tokens 1000000   # one pass per 16 trajectories
    .venv/bin/python benchmarks/bench_probe.py --preset smollm2-4layers --max-length 1536 --json out.json
    .venv/bin/python benchmarks/bench_probe.py --model smollm2 --device cuda   # on a GPU machine
"""

from __future__ import annotations

import argparse
import json
import logging
import os
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
    # 4 of SmolLM2-135M's 30 layers (random weights, our tokenizer's vocabulary): its matrix shapes at CPU cost.
    "smollm2-4layers": {"hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 4,
                        "num_attention_heads": 9, "num_key_value_heads": 3},
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


def _timed(fn, sync) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of ``fn()``, the device's queue drained at both ends."""
    sync()
    start, cpu = time.perf_counter(), time.process_time()
    fn()
    sync()
    return time.perf_counter() - start, time.process_time() - cpu


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="model directory or prepared name (default: --preset)")
    parser.add_argument("--preset", default="small", choices=sorted(PRESETS))
    parser.add_argument("--trajectories", type=int, default=32, help="WebShop expert episodes (goals 0..N-1)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-batch-tokens", type=int, default=None,
                        help="rows x padded length per batched pass (default: the probe's default for the device)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:1 ...")
    parser.add_argument("--precision", default="auto", help="auto (bf16 on a capable GPU, else float32) | float32 | "
                        "bfloat16")
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
    from prism_train.device import autocast, autocast_dtype, resolve_device, synchronizer
    from prism_train.formatting import PromptConfig, TrajectoryTokenizer
    from prism_train.modeling import load_causal_lm, load_tokenizer, pad_rows, target_logprobs
    from prism_train.probe import batched_norms, default_batch_tokens, find_projections, naive_norms, probe_batches

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
    starts = range(0, len(tokenized), args.batch_size)
    batches = [tokenized[i:i + args.batch_size] for i in starts]
    max_tokens = args.max_batch_tokens or default_batch_tokens(device)
    passes = [[start + i for i in p] for start, b in zip(starts, batches, strict=True)
              for p in probe_batches(b, args.batch_size, max_tokens)]  # indices into tokenized
    projections = find_projections(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-12)  # a real step that barely moves the weights

    def batched() -> list[torch.Tensor]:
        return [batched_norms(model, [tokenized[i] for i in p], projections, args.precision)[0] for p in passes]

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

    agreement = torch.zeros(len(tokenized), len(projections))
    for p, norms in zip(passes, batched(), strict=True):
        agreement[p] = norms
    reference = torch.stack(naive()).cpu()
    max_rel = float(((agreement - reference).abs() / reference).max())
    load_before = os.getloadavg()[0]
    runs = {"batched": batched, "naive": naive, "sft_step": sft_steps}
    rounds: dict[str, list[tuple[float, float]]] = {k: [] for k in runs}
    for _ in range(args.rounds):
        for name, fn in runs.items():
            rounds[name].append(_timed(fn, sync))
    median = {k: statistics.median(wall for wall, _ in v) for k, v in rounds.items()}
    cpu = {k: statistics.median(c for _, c in v) for k, v in rounds.items()}
    n = len(tokenized)
    result = {
        "device": str(device),
        "machine": platform.processor() or platform.machine(),
        "threads": args.threads,
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],  # other jobs on the machine
        "model": args.model or f"preset:{args.preset}",
        "parameters_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "projections": len(projections),
        "trajectories": n,
        "rows": sum(len(t.rows) for t in tokenized),
        "tokens": sum(len(r.input_ids) for t in tokenized for r in t.rows),
        "batch_size": args.batch_size,
        "max_batch_tokens": max_tokens,
        "batched_passes": len(passes),
        "precision": str(autocast_dtype(device, args.precision) or torch.float32),
        "max_relative_difference": max_rel,
        "seconds_per_round": {k: round(v, 3) for k, v in median.items()},
        "all_rounds": {k: [round(wall, 3) for wall, _ in v] for k, v in rounds.items()},
        "trajectories_per_s": {k: round(n / v, 2) for k, v in median.items()},
        "batched_speedup_over_naive": round(median["naive"] / median["batched"], 2),
        "probe_time_over_sft_step_time": round(median["batched"] / median["sft_step"], 2),
    }
    if device.type == "cpu":
        result["cpu_seconds_per_round"] = {k: round(v, 3) for k, v in cpu.items()}
        result["batched_speedup_over_naive_cpu_time"] = round(cpu["naive"] / cpu["batched"], 2)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
