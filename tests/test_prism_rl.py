"""GRPO in the real WebShop environment, through the agents layer's rollout engine and backend.

The untrained tiny model never produces a valid action, so every reward ties and GRPO has nothing to
learn from. The ``warm_model`` fixture therefore first imitates the expert's first step for a few
seconds (SFT); the resulting policy writes ``search[...]`` about half of the time, so the verl-agent
invalid-action penalty gives groups with different rewards. Episodes are one step long to keep the
tests fast; everything else (environment, rollout engine, backend, trainer) is the real thing.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from typer.testing import CliRunner

from tests.test_prism_formatting import webshop_expert_trajectories

PROMPT = {"few_shot": False, "history": 0, "max_length": 2048}


def _tasks(count: int = 4):
    from prism_train.routers import Task

    return [Task("webshop", t.task_id, split=t.split) for t in webshop_expert_trajectories()[:count]]


@pytest.fixture(scope="module")
def warm_model(tiny_model_dir, tmp_path_factory):
    from prism_train.formatting import PromptConfig
    from prism_train.sft import SFTConfig, SFTTrainer

    first_steps = [dataclasses.replace(t, steps=t.steps[:1]) for t in webshop_expert_trajectories()[:4]]
    config = SFTConfig(model=str(tiny_model_dir), output_dir=str(tmp_path_factory.mktemp("warm")),
                       prompt=PromptConfig(**PROMPT), micro_batch_size=4, max_steps=40, learning_rate=5e-3)
    return SFTTrainer(config, first_steps).train().final_dir


def _rl_config(model, out, **overrides):
    from prism_train.formatting import PromptConfig
    from prism_train.rl import RLConfig
    from prism_train.trainer import LoRAConfig

    fields = {"model": str(model), "output_dir": str(out), "prompt": PromptConfig(**PROMPT), "iterations": 2,
              "tasks_per_iteration": 2, "group_size": 4, "max_new_tokens": 96, "max_episode_steps": 1,
              "learning_rate": 2e-3, "invalid_action_penalty": 0.1, "lora": LoRAConfig(rank=8, dropout=0.0),
              "seed": 5, **overrides}
    return RLConfig(**fields)


def test_recomputed_logprobs_equal_the_rollouts(tiny_model_dir, tmp_path):
    """Two-step episodes (the second prompt carries history; the backend serves the system prompt from
    its prefix cache): the training model's log-probs of the generated ids match the rollout's."""
    from agents.backends.hf import TransformersBackend
    from agents.policy import LMPolicy, SamplingParams
    from agents.rollout import RolloutConfig, RolloutEngine
    from agents.tasks import plan_episodes
    from prism_train.formatting import PromptConfig, TrajectoryTokenizer
    from prism_train.modeling import load_causal_lm, load_tokenizer
    from prism_train.rl import env_tasks, recompute_logprobs, rollout_rows

    prompt = PromptConfig(few_shot=False, history=1, max_length=8192)
    backend = TransformersBackend(tiny_model_dir, max_prompt_tokens=8192)
    policy = LMPolicy(backend, SamplingParams(max_new_tokens=12, temperature=1.0), few_shot=False, history=1)
    engine = RolloutEngine(policy, RolloutConfig(env="webshop", max_steps=2, progress=False))
    trajectories, _ = engine.run(plan_episodes("webshop", env_tasks(_tasks(2)), "test", samples=2, seed=3))
    formatter = TrajectoryTokenizer(load_tokenizer(tiny_model_dir), prompt)
    pairs = [pair for t in trajectories for pair in rollout_rows(formatter, t)]
    assert len(pairs) == 8
    recomputed = recompute_logprobs(load_causal_lm(tiny_model_dir).eval(), [row for row, _ in pairs], "float32",
                                    micro_batch_size=3, pad_id=0)
    gap = max(float((new - torch.tensor(old)).abs().max()) for new, (_, old) in zip(recomputed, pairs, strict=True))
    assert gap < 1e-4


def _direction(trainer, iteration: int) -> tuple[float, float]:
    """Mean change of the summed log-prob of generated tokens, for rows of positive / negative advantage."""
    from environments.core.trajectory import read_trajectories
    from prism_train.rl import episode_reward, group_advantages, recompute_logprobs, rollout_rows

    path = trainer.config.output_dir + f"/rollouts/iter-{iteration:06d}.jsonl"
    trajectories = list(read_trajectories(path))
    rewards = {t.id: episode_reward(t, trainer.config.invalid_action_penalty) for t in trajectories}
    advantages = group_advantages(trajectories, rewards)
    rows, old, signs = [], [], []
    for t in trajectories:
        for row, logprobs in rollout_rows(trainer.formatter, t):
            rows.append(row)
            old.append(sum(logprobs))
            signs.append(advantages[t.id])
    new = recompute_logprobs(trainer.learner.model.eval(), rows, "float32", 8, 0)
    trainer.learner.model.train()
    delta = [float(n.sum()) - o for n, o in zip(new, old, strict=True)]
    up = [d for d, a in zip(delta, signs, strict=True) if a > 0]
    down = [d for d, a in zip(delta, signs, strict=True) if a < 0]
    return sum(up) / len(up), sum(down) / len(down)


def test_grpo_moves_towards_better_episodes_and_resumes_exactly(warm_model, tmp_path):
    from agents.backends.hf import TransformersBackend
    from prism_train.ledger import Ledger
    from prism_train.rl import RLTrainer

    ledger = Ledger(None, strategy="rl-only")
    straight = RLTrainer(_rl_config(warm_model, tmp_path / "a"), _tasks(), TransformersBackend(warm_model),
                         ledger=ledger)
    directions = []
    result = straight.train(on_iteration=lambda report: directions.append(_direction(straight, report.iteration)))
    for report, (up, down) in zip(result.history, directions, strict=True):
        assert report.trained_rows > 0  # rewards differed within groups
        assert report.rollout_logprob_gap < 1e-4  # the backend sampled from the learner's current weights
        assert up > 0 > down  # better-than-group episodes became more likely, worse ones less
    assert [e.phase for e in ledger.entries] == ["rollout", "rl_update"] * 2
    rollout, update = ledger.entries[:2]
    assert rollout.env_steps == 8 and rollout.tokens > 0 and rollout.flops > 0 and rollout.device_s > 0
    assert update.flops > 0 and update.meta["rows"] == 8

    class Crash(Exception):
        pass

    def crash(report):
        raise Crash

    config = _rl_config(warm_model, tmp_path / "b")
    with pytest.raises(Crash):
        RLTrainer(config, _tasks(), TransformersBackend(warm_model)).train(on_iteration=crash)
    resumed = RLTrainer(config, _tasks(), TransformersBackend(warm_model))
    assert resumed.iteration == 1
    again = resumed.train()
    assert [r.iteration for r in again.history] == [1]
    assert again.history[0].loss == pytest.approx(result.history[1].loss, abs=1e-6)
    a = straight.learner.model.state_dict()
    b = resumed.learner.model.state_dict()
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-6


def test_full_weights_with_kl_to_the_reference(warm_model, tmp_path):
    from agents.backends.hf import TransformersBackend
    from prism_train.rl import RLTrainer

    backend = TransformersBackend(warm_model)
    trainer = RLTrainer(_rl_config(warm_model, tmp_path, lora=None, iterations=1, kl_coef=0.5, learning_rate=1e-3,
                                   updates_per_iteration=2), _tasks(), backend)
    (report,) = trainer.train().history
    assert report.trained_rows > 0 and report.kl > 0  # the second update step is off the reference
    learner_state = trainer.learner.model.state_dict()
    backend_state = backend.model.state_dict()
    assert all(torch.equal(learner_state[k], backend_state[k]) for k in learner_state)  # pushed to the backend
    assert any(not torch.equal(learner_state[k], trainer.reference.state_dict()[k]) for k in learner_state)


def test_bad_rl_setups_are_refused(tiny_model_dir, tmp_path):
    from agents.backends.hf import TransformersBackend
    from prism_train.rl import RLError, RLTrainer, env_tasks
    from prism_train.routers import Task

    with pytest.raises(ValueError, match="group_size"):
        _rl_config(tiny_model_dir, tmp_path, group_size=1).validate()
    with pytest.raises(RLError, match="not in the webshop 'all' split"):
        env_tasks([Task("webshop", "goal-99999999", split="all")])
    with pytest.raises(ValueError, match="tasks come from"):
        RLTrainer(_rl_config(tiny_model_dir, tmp_path), [Task("alfworld", "x", split="valid_seen")],
                  TransformersBackend(tiny_model_dir))


def test_cli_runs_rl_on_a_split_and_writes_checkpoints_and_ledger(tiny_model_dir, tmp_path):
    import yaml

    from harness.cli import app
    from prism_train.ledger import read_ledger

    (tmp_path / "rl.yaml").write_text(yaml.safe_dump({
        "iterations": 1, "tasks_per_iteration": 2, "group_size": 2, "max_new_tokens": 8, "max_episode_steps": 1,
        "prompt": PROMPT, "lora": {"rank": 4}}))
    result = CliRunner().invoke(app, ["train", "rl", "-c", str(tmp_path / "rl.yaml"), "--model", str(tiny_model_dir),
                                      "--out", str(tmp_path / "run"), "--split", "all", "--limit", "3",
                                      "--ledger", str(tmp_path / "ledger.jsonl"), "--strategy", "rl-only"])
    assert result.exit_code == 0, result.output
    assert "RL done: 1 iterations" in result.output
    assert (tmp_path / "run" / "checkpoints" / "step-000001" / "model" / "adapter_config.json").is_file()
    assert [e.phase for e in read_ledger(tmp_path / "ledger.jsonl")] == ["rollout", "rl_update"]
    both = CliRunner().invoke(app, ["train", "rl", "--model", str(tiny_model_dir), "--out", str(tmp_path / "x")])
    assert both.exit_code == 2 and "exactly one of --routing and --split" in both.output
