"""The study setting: its preset validates end to end, and on a tiny config the pretrained base is built
once (ahead of the run by ``--prepare``) and shared, GRPO really updates it, and rl-only is not the
untrained policy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from agents.tasks import split_tasks
from foundation.records import RunDir
from harness.config import load_eval_config
from prism_train.routers import BUILTIN_ROUTERS

REPO = Path(__file__).resolve().parents[1]

# The smallest base that buys something within 6 steps when sampled at temperature 1 (a 32-wide base
# pretrained on 8 tasks never does, and then every group has equal rewards); the sampling is seeded.
TINY_RL = {
    "name": "tiny-rl",
    "envs": [{"name": "webshop", "train_split": "train", "train_tasks": 4, "pretrain_tasks": 32,
              "eval_splits": ["test"], "eval_episodes": 2, "max_steps": 6}],
    "strategies": ["rl-only"],
    "seeds": [0],
    "model": {"source": "tiny", "tiny_hidden_size": 64, "tiny_vocab_size": 1024, "max_new_tokens": 24,
              "pretrain_epochs": 3},
    "prompt": {"history": 0, "grounding": "nearest"},
    "sft": {"epochs": 1, "micro_batch_size": 8},
    "rl": {"iterations": 2, "tasks_per_iteration": 2, "group_size": 4, "temperature": 1.0, "learning_rate": 1e-3},
    "torch_threads": 1,
    "rollout_concurrency": 8,
}


def _harness(*args: str, cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "160", "HARNESS_CACHE_DIR": str(cache)}
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=900)


def test_the_study_preset_validates_end_to_end():
    cfg = load_eval_config(preset="study")
    assert {env.name for env in cfg.envs} == {"webshop", "alfworld"}
    assert set(cfg.strategies) == set(BUILTIN_ROUTERS) and cfg.include_untrained
    assert len(cfg.seeds) >= 5 and all(env.pretrain_tasks > 0 for env in cfg.envs)
    result = _harness("eval", "--preset", "study", "--dry-run", cache=Path.home() / ".cache" / "prism-harness")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 environments × 12 strategies × 5 seeds = 112 cells (the untrained policy of webshop, alfworld once" \
        in " ".join(result.stdout.split())
    assert "pretrained once per environment" in result.stdout


def test_step_sizes_are_chosen_on_a_dev_split_that_no_cell_trains_on_and_no_evaluation_plays():
    select = load_eval_config(preset="select")
    dev = select.envs[0]
    assert (dev.name, dev.eval_splits, select.strategies) == ("webshop", ["dev"], ["sft-only", "rl-only"])
    for preset in ("default", "study"):  # it trains what the comparison trains, with the values it then uses
        cfg = load_eval_config(preset=preset)
        env = next(e for e in cfg.envs if e.name == "webshop")
        assert (env.train_split, env.train_tasks, env.pretrain_tasks) == (dev.train_split, dev.train_tasks,
                                                                           dev.pretrain_tasks)
        assert (cfg.model, cfg.prompt, cfg.sft, cfg.rl) == (select.model, select.prompt, select.sft, select.rl)
        assert "dev" not in {split for e in cfg.envs for split in e.eval_splits}
    dev_goals = {t.task_id for t in split_tasks("webshop", "dev")}
    assert not dev_goals & {t.task_id for t in split_tasks("webshop", "test")}
    result = _harness("eval", "--preset", "select", "--dry-run", cache=Path.home() / ".cache" / "prism-harness")
    assert result.returncode == 0, result.stdout + result.stderr  # the plan refuses dev goals among training tasks
    assert "evaluation on dev (200 episodes)" in result.stdout


def _pretrain_marker(run: RunDir) -> dict:
    return json.loads((run.shared_dir("webshop", 0) / "pretrain.done.json").read_text())


def test_grpo_updates_the_pretrained_base_and_the_base_is_built_once(tmp_path):
    config, cache = tmp_path / "tiny.yaml", tmp_path / "cache"
    config.write_text(yaml.safe_dump(TINY_RL))
    first = RunDir(tmp_path / "first")
    refused = _harness("eval", "--config", str(config), "--run-dir", str(first.root), "--prepare", cache=cache)
    assert refused.returncode == 2 and "--run-dir would be ignored" in refused.stdout  # it opens no run
    config.write_text(yaml.safe_dump({**TINY_RL, "output_dir": str(tmp_path / "runs")}))
    prepared = _harness("eval", "--config", str(config), "--prepare", cache=cache)
    assert prepared.returncode == 0, prepared.stdout + prepared.stderr
    assert "webshop: pretrained base" in prepared.stdout and " built in " in prepared.stdout
    assert not (tmp_path / "runs").exists() and not first.root.exists()  # set-up only: no run directory, no cell
    result = _harness("eval", "--config", str(config), "--run-dir", str(first.root), "--no-report", cache=cache)
    assert result.returncode == 0, result.stdout + result.stderr
    assert {s.state for s in first.cells()} == {"done"}
    marker = _pretrain_marker(first)
    assert not marker["built_here"] and Path(marker["base_model"]).parent == cache / "base-models"
    assert [e.phase for e in first.shared_ledger("webshop", 0)].count("pretrain") >= 2  # expert data + SFT

    updates = [e.meta for e in first.ledger("webshop__rl-only__seed0") if e.phase == "rl_update"]
    assert len(updates) == 2 and all(m["groups"] == 2 for m in updates)
    assert sum(m["groups_with_signal"] for m in updates) > 0  # WebShop's dense reward separates the samples
    assert any(m["policy_kl"] > 0 for m in updates)
    base = (Path(marker["base_model"]) / "model.safetensors").read_bytes()
    trained = first.cell_dir("webshop__rl-only__seed0") / "rl" / "final" / "model.safetensors"
    assert trained.read_bytes() != base  # rl-only is a real RL-from-base run, not the untrained policy

    second = RunDir(tmp_path / "second")  # another run of the same recipe: a cache hit, nothing rebuilt
    prepared = _harness("eval", "--config", str(config), "--prepare", "-s", "strategies=[sft-only]", cache=cache)
    assert "webshop: pretrained base" in prepared.stdout and "already in the cache" in prepared.stdout
    result = _harness("eval", "--config", str(config), "--run-dir", str(second.root), "--no-report",
                      "-s", "strategies=[sft-only]", cache=cache)
    assert result.returncode == 0, result.stdout + result.stderr
    again = _pretrain_marker(second)
    assert not again["built_here"] and again["key"] == marker["key"] and again["base_model"] == marker["base_model"]


def test_prepare_says_so_when_a_config_has_no_base_to_build(tmp_path):
    config = tmp_path / "random-init.yaml"
    config.write_text(yaml.safe_dump({**TINY_RL, "envs": [{**TINY_RL["envs"][0], "pretrain_tasks": 0}]}))
    result = _harness("eval", "--config", str(config), "--prepare", cache=tmp_path / "cache")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "nothing to prepare: this config has no pretrained base to build" in " ".join(result.stdout.split())
    assert not (tmp_path / "cache" / "base-models").exists()
