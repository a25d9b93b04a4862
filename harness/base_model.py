"""The pretrained base every strategy starts from: a small Llama trained once per environment on expert
trajectories of a *pretraining split* that no cell trains on and no evaluation plays.

Why: PRISM's probe measures how much a trajectory conflicts with what the initial model already
knows. A randomly initialised model knows nothing, so its gradient concentration carries no meaning.
The base here has imitated the expert on tasks of its own (``pretrain_tasks`` of the training split,
a fixed sample independent of the run's seeds, which :func:`harness.pipeline` then keeps out of every
seed's training tasks), so the probe sees a model that already does part of the task.

Built once and shared by every cell, seed and run with the same recipe: the expert trajectories are
cached under ``cache_dir()/base-models/<env>-expert-<hash of the task list>/`` (resumable per
episode), the model under ``cache_dir()/base-models/<env>-<key>/`` where the key hashes the recipe
(model shape, tokenizer size, epochs, learning rate, prompt format, the build's torch threads, seed)
together with the SHA-256 of those trajectories less their timings (``trajectory_digest``), so the
same recipe and expert play give the same key on any machine. A file lock serialises builders; a
build killed at any moment leaves a temporary directory from which the next build resumes (expert
episodes already played, the initial weights, the newest pretraining checkpoint), and the cache entry
appears only, complete, at the end.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import random
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agents.rollout import TIMING_FIELDS
from agents.tasks import plan_episodes, split_tasks
from agents.tiny_models import TinyModelConfig, save_tiny_model
from environments.core.trajectory import read_trajectories
from foundation.data import cache_dir
from foundation.jsonl import write_json_atomic
from prism_train.ledger import Ledger

log = logging.getLogger(__name__)

RECIPE_VERSION = 1
MARKER = "base.json"
CHECKPOINT_EVERY = 50  # optimiser steps between checkpoints of the pretraining, so a kill loses at most these


@dataclass(frozen=True)
class BaseRecipe:
    """Everything that decides the base's weights besides its data; hashed into the cache key."""

    env: str
    split: str
    task_ids: tuple[str, ...]
    model: dict[str, Any]  # agents.tiny_models.TinyModelConfig fields
    epochs: int
    learning_rate: float
    batch_size: int
    prompt: dict[str, Any]  # the prompt settings that decide the tokens the base is trained on
    torch_threads: int = 1  # the build's intra-op threads: they order the float sums, so they decide the weights
    seed: int = 0
    version: int = RECIPE_VERSION
    expert: dict[str, Any] = field(default_factory=dict)  # the expert's options (EnvRunConfig.expert)

    def expert_key(self) -> str:
        return _digest({"env": self.env, "split": self.split, "task_ids": self.task_ids, **self._expert_identity()})

    def key(self, data_digest: str) -> str:
        return _digest({**{k: v for k, v in asdict(self).items() if k != "expert"}, **self._expert_identity(),
                        "data": data_digest})

    def _expert_identity(self) -> dict[str, Any]:
        """The expert's options where any are set: the environment's own expert hashes as it always has, so
        bases built before the option existed are still found in the cache."""
        return {"expert": self.expert} if self.expert else {}


@dataclass(frozen=True)
class BaseModel:
    """A built base: where it is, its cache key, what building it cost, and whether this call built it."""

    path: Path
    key: str
    ledger: tuple[dict[str, Any], ...]
    built: bool


def _digest(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=list).encode()).hexdigest()[:16]


def pretrain_tasks(env: str, split: str, count: int) -> list[Any]:
    """The pretraining split: ``count`` tasks of ``split`` in a fixed sample that no run seed changes."""
    if count <= 0:
        return []
    tasks = split_tasks(env, split)
    if count >= len(tasks):
        raise ValueError(f"{env}: pretrain_tasks={count} leaves no training tasks in split {split!r} "
                         f"({len(tasks)} tasks)")
    chosen = random.Random(f"pretrain-tasks:{env}:{split}").sample(range(len(tasks)), count)
    return [tasks[i] for i in sorted(chosen)]


def tokenizer_texts(trajectories: Sequence[Any], prompt: Any) -> list[str]:
    """The text a model trained on ``trajectories`` sees (every step's prompt and action), to fit a tokenizer."""
    from prism_train.formatting import TrajectoryTokenizer

    class _Plain:  # renders prompts without a tokenizer, to collect the text the model will see
        chat_template = "plain"

        def apply_chat_template(self, messages: Sequence[dict[str, str]], **_: Any) -> str:
            return "\n".join(m["content"] for m in messages)

    renderer = TrajectoryTokenizer(_Plain(), prompt)
    texts = [m["content"] for t in trajectories for i in range(len(t.steps)) for m in renderer.messages(t, i)]
    return texts + [s.action for t in trajectories for s in t.steps]


def trajectory_digest(path: Path) -> str:
    """SHA-256 of the trajectories in ``path`` without their timings: what a base is trained on, so the same
    expert play gives the same cache key on every machine (the file's own hash differs with its timings)."""
    digest = hashlib.sha256()
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        record["metadata"] = {k: v for k, v in record.get("metadata", {}).items() if k not in TIMING_FIELDS}
        for step in record.get("steps", []):
            step["info"] = {k: v for k, v in step.get("info", {}).items() if k not in TIMING_FIELDS}
        digest.update(json.dumps(record, sort_keys=True).encode())
    return digest.hexdigest()


def _as_pretrain(entries: Sequence[dict[str, Any]], what: str) -> list[dict[str, Any]]:
    """Ledger entries relabelled as phase ``pretrain``: the base's cost, which no strategy is charged for."""
    return [{**entry, "phase": "pretrain", "meta": {**entry.get("meta", {}), "purpose": what}} for entry in entries]


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (released by the OS if the holder is killed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# (episodes, jsonl path, advance(n) per finished episode) -> ledger entries
PlayExpert = Callable[[list[Any], Path, Callable[[int], None]], list[dict[str, Any]]]
Progress = Callable[[str, int], Callable[[int], None]]  # (phase, total) -> advance(n)


def _expert_data(recipe: BaseRecipe, root: Path, play: PlayExpert, progress: Progress) -> tuple[Path, dict]:
    """The pretraining split's expert trajectories (played once, resumable) and their marker."""
    folder = root / f"{recipe.env}-expert-{recipe.expert_key()}"
    marker = folder / "done.json"
    path = folder / "expert.jsonl"
    if not marker.exists():
        wanted = set(recipe.task_ids)
        tasks = [t for t in split_tasks(recipe.env, recipe.split) if t.task_id in wanted]
        advance = progress("base model: expert data", len(tasks))
        folder.mkdir(parents=True, exist_ok=True)
        ledger = play(plan_episodes(recipe.env, tasks, source="pretrain", seed=0), path, advance)
        write_json_atomic(marker, {"version": 1, "ledger": _as_pretrain(ledger, "expert data")})
    return path, json.loads(marker.read_text(encoding="utf-8"))


def ensure_base(recipe: BaseRecipe, play: PlayExpert, progress: Progress, root: Path | None = None) -> BaseModel:
    """The base for ``recipe``: from the cache, or built now (expert data, tokenizer, init, SFT)."""
    root = root or cache_dir() / "base-models"
    with _locked(root / f"{recipe.env}.lock"):
        data_path, expert = _expert_data(recipe, root, play, progress)
        data_digest = trajectory_digest(data_path)
        key = recipe.key(data_digest)
        target = root / f"{recipe.env}-{key}"
        if (target / MARKER).exists():
            info = json.loads((target / MARKER).read_text(encoding="utf-8"))
            log.info("%s: pretrained base %s from the cache", recipe.env, key)
            return BaseModel(target, key, tuple(info["ledger"]), built=False)
        ledger = _build(recipe, data_path, target, progress)
        write_json_atomic(target / MARKER, {"version": 1, "key": key, "recipe": asdict(recipe),
                                            "data_sha256": data_digest, "ledger": [*expert["ledger"], *ledger]})
        return BaseModel(target, key, tuple([*expert["ledger"], *ledger]), built=True)


def _build(recipe: BaseRecipe, data_path: Path, target: Path, progress: Progress) -> list[dict[str, Any]]:
    """Tokenizer and random init from the pretraining text, then SFT on it; moved into ``target`` at the end."""
    import torch

    from prism_train.formatting import PromptConfig
    from prism_train.sft import SFTConfig, SFTTrainer

    trajectories = [t for t in read_trajectories(data_path) if t.success]
    if len(trajectories) < 2:
        raise RuntimeError(f"{recipe.env}: the expert succeeded on only {len(trajectories)} pretraining tasks")
    prompt = PromptConfig(**recipe.prompt)
    work = target.with_name(f".{target.name}.tmp")  # kept across attempts: the key names one recipe and data
    init = work / "init"
    if not (init / "config.json").exists():
        progress("base model: init", 0)
        shutil.rmtree(init.with_name("init.tmp"), ignore_errors=True)
        save_tiny_model(tokenizer_texts(trajectories, prompt), init.with_name("init.tmp"),
                        TinyModelConfig(**recipe.model), seed=recipe.seed)
        init.with_name("init.tmp").rename(init)
    ledger = Ledger(None, strategy="shared", run=f"{recipe.env}-base")
    config = SFTConfig(model=str(init), output_dir=str(work / "sft"), seed=recipe.seed,
                       learning_rate=recipe.learning_rate, epochs=recipe.epochs, micro_batch_size=recipe.batch_size,
                       prompt=prompt, log_every=1000, save_every=CHECKPOINT_EVERY)
    # resumes from the newest checkpoint of an interrupted build (the SFT plan is a function of the seed)
    trainer = SFTTrainer(config, trajectories, ledger=ledger, resume=True)
    advance = progress("base model: pretraining", trainer.total_steps)
    advance(trainer.step)
    resumed_at = trainer.step  # the steps before it were paid for by the interrupted attempt, not counted here
    callers_threads = torch.get_num_threads()
    torch.set_num_threads(recipe.torch_threads)  # what the recipe says, whatever the caller's process uses
    try:
        final = trainer.train(on_step=lambda _report: advance(1)).final_dir
    finally:
        torch.set_num_threads(callers_threads)
    entries = _as_pretrain([{**e.to_json(), "meta": {**e.meta, "resumed_at_step": resumed_at}} for e in ledger.entries],
                           f"SFT on {len(trajectories)} trajectories")
    shutil.rmtree(target, ignore_errors=True)
    Path(final).rename(target)
    shutil.rmtree(work, ignore_errors=True)
    log.info("%s: pretrained base built from %d expert trajectories into %s", recipe.env, len(trajectories), target)
    return entries
