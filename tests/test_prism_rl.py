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

from tests.helpers.trajectories import webshop_expert_trajectories

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
    from prism_train.config import LoRAConfig
    from prism_train.formatting import PromptConfig
    from prism_train.rl import RLConfig

    fields = {"model": str(model), "output_dir": str(out), "prompt": PromptConfig(**PROMPT), "iterations": 2,
              "tasks_per_iteration": 2, "group_size": 4, "max_new_tokens": 96, "max_episode_steps": 1,
              "learning_rate": 2e-3, "invalid_action_penalty": 0.1, "lora": LoRAConfig(rank=8, dropout=0.0),
              "seed": 5, **overrides}
    return RLConfig(**fields)


def test_recomputed_logprobs_equal_the_rollouts(tiny_model_dir, tmp_path):
    """Two-step episodes (the second prompt carries history; the backend serves the system prompt from
    its prefix cache): the training model's log-probs of the generated ids match the rollout's."""
    from agents.backends.hf import TransformersBackend
    from agents.lm_policy import LMPolicy
    from agents.policy import SamplingParams
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
        _rl_config(tiny_model_dir, tmp_path, group_size=1)
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


def _recording_trainer(config, backend):
    """The real trainer, recording what its clipped surrogate saw and returned, token by token."""
    from prism_train.rl import RLTrainer

    class Recording(RLTrainer):
        def _policy_loss(self, ratio, advantage):
            loss = super()._policy_loss(ratio, advantage)
            self.seen.append((ratio.detach().clone(), advantage.clone(), loss.detach().clone()))
            return loss

    trainer = Recording(config, _tasks(), backend)
    trainer.seen = []  # (ratio, advantage, per-token loss) of every micro-batch
    return trainer


def test_lora_dropout_is_off_in_grpo_so_the_on_policy_ratio_is_exactly_one(warm_model, tmp_path):
    """With LoRA dropout 0.5 on an adapter that is not zero, the first (on-policy) update's ratios are all
    exactly 1 and the surrogate's log-probs equal the rollout's: it sees the dropout-free network that
    sampled (with dropout on, the rollout gap would be dropout noise)."""
    from agents.backends.hf import TransformersBackend
    from prism_train.config import LoRAConfig

    config = _rl_config(warm_model, tmp_path, iterations=1, lora=LoRAConfig(rank=8, dropout=0.5),
                        micro_batch_size=1)  # one row per pass: the same shapes in both passes
    trainer = _recording_trainer(config, TransformersBackend(warm_model))
    dropouts = [m for name, m in trainer.learner.model.named_modules() if "lora_dropout" in name
                and isinstance(m, torch.nn.Dropout)]
    assert dropouts and all(m.p == 0.5 for m in dropouts)
    with torch.no_grad():  # a trained adapter: its output, and so LoRA dropout, now matters
        for name, parameter in trainer.learner.model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=2e-3)
    (report,) = trainer.train().history
    assert report.trained_rows > 0 and trainer.seen
    assert all(torch.equal(ratio, torch.ones_like(ratio)) for ratio, _, _ in trainer.seen)
    assert report.clip_fraction == 0.0 and report.rollout_logprob_gap < 1e-4


def test_an_on_policy_update_runs_no_separate_old_logprob_pass(warm_model, tmp_path):
    """One optimiser step over one pass scores every row with the weights that sampled it, so the old
    log-probs come from the surrogate's own forward pass; the ledger counts the passes that ran: the
    surrogate and the policy-shift pass, and with two updates per iteration the old log-probs' pass too."""
    from agents.backends.hf import TransformersBackend
    from prism_train.ledger import Ledger
    from prism_train.rl import RLTrainer

    tokens = {}
    for updates in (1, 2):
        ledger = Ledger(None, strategy="rl-only")
        config = _rl_config(warm_model, tmp_path / f"u{updates}", iterations=1, updates_per_iteration=updates)
        (report,) = RLTrainer(config, _tasks(), TransformersBackend(warm_model), ledger=ledger).train().history
        assert report.trained_rows > 0 and report.rollout_logprob_gap < 1e-4
        (update,) = [e for e in ledger.entries if e.phase == "rl_update"]
        tokens[updates] = update.tokens
    # the same seeded rollouts (the same starting weights) in both runs: L tokens of rows
    assert tokens[1] * 3 == tokens[2] * 2


def test_several_updates_per_iteration_exercise_the_clipped_surrogate(warm_model, tmp_path):
    """Later updates of an iteration are off-policy: tokens whose ratio has left [1-ε, 1+ε] in the direction of
    their advantage must get the clipped value (no further push), those on the other side the unclipped one
    (PPO's pessimistic bound). Swapping min for max in the surrogate fails here."""
    from agents.backends.hf import TransformersBackend

    eps = 0.1
    config = _rl_config(warm_model, tmp_path, iterations=1, updates_per_iteration=4, epochs_per_iteration=2,
                        clip_eps=eps, learning_rate=2e-2)
    trainer = _recording_trainer(config, TransformersBackend(warm_model))
    (report,) = trainer.train().history
    ratio, advantage, loss = (torch.cat(parts) for parts in zip(*trainer.seen, strict=True))
    assert report.clip_fraction > 0
    pushed_past = ((advantage > 0) & (ratio > 1 + eps)) | ((advantage < 0) & (ratio < 1 - eps))
    pulled_back = ((advantage > 0) & (ratio < 1 - eps)) | ((advantage < 0) & (ratio > 1 + eps))
    assert pushed_past.any() and pulled_back.any()  # both branches of the min were taken
    clipped = ratio.clamp(1 - eps, 1 + eps)
    assert torch.allclose(loss[pushed_past], -(clipped * advantage)[pushed_past])
    assert torch.allclose(loss[pulled_back], -(ratio * advantage)[pulled_back])
    inside = ~(pushed_past | pulled_back)
    assert torch.allclose(loss[inside], -(ratio * advantage)[inside])


def test_env_options_reach_the_rl_engine(warm_model, tmp_path):
    """RLConfig.env_options are the rollouts' engine options: here WebShop's url observations."""
    from agents.backends.hf import TransformersBackend
    from environments.core.trajectory import read_trajectories
    from prism_train.rl import RLTrainer

    options = {"observation_mode": "url", "base_url": "http://options.example"}
    config = _rl_config(warm_model, tmp_path, iterations=1, tasks_per_iteration=1, group_size=2,
                        env_options=options)
    trainer = RLTrainer(config, _tasks(1), TransformersBackend(warm_model))
    trainer.train()
    trajectories = list(read_trajectories(tmp_path / "rollouts" / "iter-000000.jsonl"))
    observations = [step.observation for t in trajectories for step in t.steps]
    assert len(trajectories) == 2 and observations
    assert all(o.startswith("http://options.example/") for o in observations)
