"""The pretrained base: built once from a disjoint pretraining split, cached by recipe and data, reused."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from agents.registry import make_policy
from agents.rollout import RolloutConfig, RolloutEngine
from agents.tiny_models import TinyModelConfig
from environments.core.trajectory import TrajectoryWriter
from harness.base_model import BaseRecipe, ensure_base, pretrain_tasks
from harness.config import load_eval_config
from harness.pipeline import PlanError, _train_tasks
from prism_train.formatting import PromptConfig
from prism_train.ledger import Ledger


def _recipe(**changes) -> BaseRecipe:
    recipe = BaseRecipe(env="webshop", split="train",
                        task_ids=tuple(t.task_id for t in pretrain_tasks("webshop", "train", 4)),
                        model=asdict(TinyModelConfig(vocab_size=400, hidden_size=32, intermediate_size=64)),
                        epochs=1, learning_rate=3e-3, batch_size=8,
                        prompt=PromptConfig(few_shot=False, history=0, max_length=2048).model_dump())
    return replace(recipe, **changes)


class _Expert:
    """Plays the expert for real and counts how many episodes it was asked to play."""

    def __init__(self) -> None:
        self.played = 0

    def __call__(self, episodes, path: Path, advance) -> list[dict]:
        engine = RolloutEngine(make_policy("expert"), RolloutConfig(env="webshop", concurrency=4, source="expert",
                                                                    progress=False))
        ledger = Ledger(None, strategy="shared")
        with TrajectoryWriter(path) as writer, ledger.phase("expert") as meter:
            new, stats = engine.run(episodes, writer=writer, on_finish=lambda _trajectory: advance(1))
            meter.add(env_steps=stats.steps)
        self.played += len(new)
        return [e.to_json() for e in ledger.entries]


def _progress(phases: list[str], advanced: dict[str, int] | None = None):
    advanced = {} if advanced is None else advanced

    def start(phase: str, total: int):
        phases.append(phase)

        def advance(n: int) -> None:
            advanced[phase] = advanced.get(phase, 0) + n
        return advance
    return start


def _weights(path: Path) -> bytes:
    return (path / "model.safetensors").read_bytes()


def test_base_is_built_once_and_reused_from_the_cache(tmp_path):
    expert, phases, advanced = _Expert(), [], {}
    first = ensure_base(_recipe(), expert, _progress(phases, advanced), root=tmp_path)
    assert first.built and expert.played == 4
    assert "base model: pretraining" in phases
    assert advanced["base model: expert data"] == 4  # progress is shown episode by episode
    assert {entry["phase"] for entry in first.ledger} == {"pretrain"}  # charged to no strategy
    assert sum(entry["flops"] for entry in first.ledger) > 0 and sum(entry["env_steps"] for entry in first.ledger) > 0

    again = ensure_base(_recipe(), expert, _progress(phases := []), root=tmp_path)
    assert not again.built and again.path == first.path and again.key == first.key
    assert expert.played == 4 and phases == []  # a cache hit: no expert episode, no training
    assert _weights(again.path) == _weights(first.path)

    other = ensure_base(_recipe(epochs=2), expert, _progress([]), root=tmp_path)
    assert other.built and other.key != first.key and expert.played == 4  # new recipe, same cached expert data
    assert _weights(other.path) != _weights(first.path)
    # expert play timed differently (another machine) is the same data: the same key, a cache hit
    data = next(tmp_path.glob("webshop-expert-*")) / "expert.jsonl"
    retimed = [json.loads(line) for line in data.read_text().splitlines()]
    for record in retimed:
        record["metadata"]["wall_time_s"] += 1.0
        for step in record["steps"]:
            step["info"]["env_time_s"] += 1.0
    data.write_text("".join(json.dumps(record) + "\n" for record in retimed))
    same = ensure_base(_recipe(), expert, _progress([]), root=tmp_path)
    assert not same.built and same.key == first.key
    # the build's threads order its float sums, so they are part of the recipe, not of the machine
    assert _recipe(torch_threads=2).key("data") != _recipe().key("data")


def test_the_pretraining_split_is_fixed_and_disjoint_from_every_seeds_training_tasks():
    cfg = load_eval_config(overrides=["envs.0.pretrain_tasks=50", "envs.0.train_tasks=40"])
    env = cfg.envs[0]
    reserved = {t.task_id for t in pretrain_tasks(env.name, env.train_split, 50)}
    assert len(reserved) == 50
    assert reserved == {t.task_id for t in pretrain_tasks(env.name, env.train_split, 50)}  # seed-independent
    for seed in range(4):
        assert not reserved & {t.task_id for t in _train_tasks(env, seed)}


def test_a_pretraining_split_that_leaves_no_training_tasks_is_refused():
    cfg = load_eval_config(overrides=["envs.1.pretrain_tasks=3550"])
    with pytest.raises(PlanError, match="pretrain"):
        _train_tasks(cfg.envs[1], 0)


def test_which_expert_played_the_data_is_part_of_the_base_and_the_expert_data_keys():
    """A base trained on another expert's play is another base; the environment's own expert keeps the keys
    that bases built before expert options existed have (they are still found in the cache)."""
    plain, search = _recipe(), _recipe(expert={"kind": "search"})
    assert plain.expert_key() == "8e49a0406326249e" and plain.key("data") == "fddab1b208840ca3"
    assert search.expert_key() != plain.expert_key() and search.key("data") != plain.key("data")


def test_unknown_expert_options_are_refused_before_anything_runs():
    from harness.pipeline import check_plan

    cfg = load_eval_config(overrides=["envs.1.expert={kind: oracle}"])
    with pytest.raises(PlanError, match="alfworld: expert options .*unknown ALFWorld expert 'oracle'"):
        check_plan(cfg)
    cfg = load_eval_config(overrides=["envs.0.expert={kind: search}"])
    with pytest.raises(PlanError, match="webshop: expert options"):
        check_plan(cfg)
    assert any("expert kind=search" in line
               for line in check_plan(load_eval_config(overrides=["envs.1.expert={kind: search}"])))
