"""What a run can and cannot tell, and where runs cannot be compared: read from the manifests and rows.

These sentences travel with the numbers (HTML and Markdown), so that a single-seed run on a handful of
episodes is read as what it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from leaderboard.aggregate import RL_REFERENCE, Leaderboard, RunInfo
from leaderboard.stats import CONFIDENCE, t_critical

GENERAL_NOTES = (
    "Compute is per seed (the mean over a row's finished seeds): the cell's own ledger (training and "
    "evaluation) plus the shared work (expert data, probe) its strategy uses. FLOPs are analytic estimates "
    "(forward ≈ 2·N·tokens, forward+backward ≈ 6·N·tokens, plus attention); the ratio is to rl-only of the same run.",
    "The Pareto frontier holds the measured points that no other point beats on both axes (lower or equal "
    "compute and higher or equal score, one strictly); it uses the mean over seeds, not the interval.",
    "Published rows come from other papers, models and hardware: context, not comparable measurements. "
    "They are never ranked, highlighted, plotted or put on a frontier.",
)


def _model_description(config: dict[str, Any]) -> str:
    model = config.get("model") or {}
    lora = model.get("lora")  # a section ({rank: ...}); runs before the one config tree held lora: true, lora_rank
    rank = lora.get("rank") if isinstance(lora, dict) else model.get("lora_rank")
    tuning = f"LoRA rank {rank}" if lora else "full fine-tuning"
    details = ", ".join(str(x) for x in (model.get("backend"), model.get("dtype"), tuning) if x)
    return f"{model.get('source', 'unknown model')} ({details})"


def _seed_sentence(seed_counts: set[int]) -> str:
    if not seed_counts:
        return "No finished cells: nothing can be told yet."
    fewest, most = min(seed_counts), max(seed_counts)
    if most == 1:
        return ("One seed: every number comes from a single training run per strategy, so no interval can be "
                "given (rows show n=1) and differences between strategies cannot be told apart from "
                "seed-to-seed variation.")
    sentence = (f"± is the half-width of a {CONFIDENCE:.0%} Student-t interval over per-seed values "
                f"(t = {t_critical(most - 1):.2f} for {most} seeds)")
    if most == 2:
        sentence += "; an interval from two seeds is very wide"
    if fewest != most:
        sentence += (f". Rows have between {fewest} and {most} finished seeds (column 'seeds'); rows with one "
                     "seed show n=1 and no interval")
    return sentence + "."


def _episode_sentence(env: str, split_counts: dict[str, set[int]], configured: dict[str, Any]) -> str:
    """Held-out episodes per seed and split, and how far one episode moves a split's success rate."""
    parts = [f"{split} {'/'.join(str(n) for n in sorted(counts))}" for split, counts in sorted(split_counts.items())]
    asked = configured.get("eval_episodes")
    sentence = (f"{env}: held-out episodes per seed: {', '.join(parts)} "
                f"({f'configured: {asked} per split' if asked else 'configured: whole splits'})")
    smallest = min(n for counts in split_counts.values() for n in counts)
    if smallest:
        sentence += f"; one episode moves a split's success rate by {100 / smallest:.3g} points"
    return sentence + "."


def run_notes(board: Leaderboard, info: RunInfo) -> list[str]:
    """The caption of one run: model, seeds, episodes per split, cells left out, missing reference."""
    config = info.manifest.config
    rows = [row for b in board.boards for row in b.rows if row.run.run_id == info.run_id]
    notes = [f"Run {info.run_id}: model {_model_description(config)} on {info.machine}"
             + (f", preset {info.manifest.preset}" if info.manifest.preset else "")
             + f"; configured seeds {config.get('seeds', '?')}.",
             _seed_sentence({len(row.seeds) for row in rows})]
    configured = {env.get("name"): env for env in config.get("envs", [])}
    for b in board.boards:
        split_counts: dict[str, set[int]] = {}
        for row in b.rows:
            if row.run.run_id == info.run_id:
                for split, counts in row.split_episodes.items():
                    split_counts.setdefault(split, set()).update(counts)
        if split_counts:
            notes.append(_episode_sentence(b.env, split_counts, configured.get(b.env, {})))
    left_out = sum(1 for run, _ in board.not_counted if run.run_id == info.run_id)
    if left_out:
        notes.append(f"{left_out} cell(s) are not done and are left out of every number (listed under "
                     "'Cells not counted').")
    if rows and not any(row.strategy == RL_REFERENCE for row in rows):
        notes.append(f"No finished {RL_REFERENCE} cell: compute ratios to {RL_REFERENCE} cannot be given.")
    return notes


_COMPARED_ENV_FIELDS = ("eval_splits", "eval_episodes", "max_steps")
_COMPARED_FIELDS = ("temperature_eval",)


def incomparabilities(runs: Sequence[RunInfo]) -> list[str]:
    """Config differences that make runs' scores incomparable: evaluation splits, episode counts, step caps."""
    if len(runs) < 2:
        return []
    warnings = []
    for name in _COMPARED_FIELDS:
        values = {run.label: run.manifest.config.get(name) for run in runs}
        if len({repr(v) for v in values.values()}) > 1:
            warnings.append(f"runs differ in {name}: " + ", ".join(f"{k}: {v}" for k, v in values.items()))
    per_env: dict[str, dict[str, dict[str, Any]]] = {}
    for run in runs:
        for env in run.manifest.config.get("envs", []):
            per_env.setdefault(env.get("name"), {})[run.label] = env
    for env_name, by_run in sorted(per_env.items()):
        if len(by_run) < len(runs):
            warnings.append(f"{env_name} is only in runs {', '.join(by_run)}")
        for name in _COMPARED_ENV_FIELDS:
            values = {label: env.get(name) for label, env in by_run.items()}
            if len({repr(v) for v in values.values()}) > 1:
                warnings.append(f"{env_name}: runs differ in {name} ("
                                + ", ".join(f"{k}: {v}" for k, v in values.items())
                                + "); their scores are not comparable")
    return warnings
