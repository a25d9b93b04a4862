"""SFT: loss on action tokens only, gradient accumulation, LoRA and full training, exact resumption."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from typer.testing import CliRunner

from tests.helpers.trajectories import SHORT_PROMPT, short_prompt, short_trajectories


def _config(tiny_model_dir, out, **overrides):
    from prism_train.sft import SFTConfig

    fields = {"model": str(tiny_model_dir), "output_dir": str(out), "prompt": short_prompt(), "micro_batch_size": 2,
              "grad_accum_steps": 2, "max_steps": 6, "save_every": 2, "lr_schedule": "cosine", "warmup_steps": 1,
              "learning_rate": 3e-3, "seed": 7, **overrides}
    return SFTConfig(**fields)


def _state(trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.learner.model.state_dict().items()}


@pytest.mark.parametrize("lora", [None, {"rank": 4, "dropout": 0.1}], ids=["full", "lora"])
def test_an_interrupted_run_resumes_to_the_uninterrupted_weights(tiny_model_dir, tmp_path, lora):
    """Train 6 steps straight; train again, crash at step 5 (checkpoint at 4), resume: same weights and losses.
    An epoch is 4 steps here, so the resumed run also crosses into a new epoch's data order; the LoRA
    case has dropout on, so the RNG state has to be restored too."""
    from prism_train.config import LoRAConfig
    from prism_train.sft import SFTTrainer

    trajectories = short_trajectories()
    lora_config = LoRAConfig(**lora) if lora else None
    straight = SFTTrainer(_config(tiny_model_dir, tmp_path / "a", lora=lora_config, micro_batch_size=4),
                          trajectories)
    assert straight.steps_per_epoch == 4
    reference = straight.train()

    class Crash(Exception):
        pass

    def crash_at_5(report):
        if report.step == 5:
            raise Crash

    config = _config(tiny_model_dir, tmp_path / "b", lora=lora_config, micro_batch_size=4)
    with pytest.raises(Crash):
        SFTTrainer(config, trajectories).train(on_step=crash_at_5)
    resumed = SFTTrainer(config, trajectories)
    assert resumed.step == 4 and resumed.learner.resumed_state["step"] == 4
    result = resumed.train()
    assert [r.step for r in result.history] == [5, 6]
    assert [r.loss for r in result.history] == pytest.approx([r.loss for r in reference.history[4:]], abs=1e-6)
    a, b = _state(straight), _state(resumed)
    assert a.keys() == b.keys()
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-6
    assert reference.history[-1].loss < reference.history[0].loss  # it learns
    assert (result.final_dir / ("adapter_config.json" if lora else "config.json")).is_file()


def test_the_loss_covers_action_tokens_only_and_accumulation_equals_one_big_batch(tiny_model_dir, tmp_path):
    from prism_train.modeling import pad_rows
    from prism_train.sft import SFTTrainer

    trainer = SFTTrainer(_config(tiny_model_dir, tmp_path / "run"), short_trajectories())
    model = trainer.learner.model
    rows = [0, 1, 2, 3]
    total = sum(trainer.rows[i].n_targets for i in rows)
    loss, _ = trainer._micro_step(rows, total)
    # By hand: full logits, cross-entropy at output tokens only.
    batch = pad_rows([trainer.rows[i] for i in rows], trainer.learner.tokenizer.pad_token_id)
    with torch.no_grad():
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[:, :-1]
    labels = batch.input_ids[:, 1:].masked_fill(~batch.target_mask[:, 1:], -100)
    expected = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                                 ignore_index=-100)
    assert loss == pytest.approx(float(expected), rel=1e-5)
    one_batch = [p.grad.clone() for p in trainer.learner.trainable]
    trainer.learner.optimizer.zero_grad(set_to_none=True)
    parts = [trainer._micro_step(rows[:2], total)[0], trainer._micro_step(rows[2:], total)[0]]
    assert sum(parts) == pytest.approx(loss, rel=1e-5)
    for big, accumulated in zip(one_batch, trainer.learner.trainable, strict=True):
        assert torch.allclose(big, accumulated.grad, atol=1e-6, rtol=1e-4)


def test_lora_trains_the_adapter_only_and_the_backend_loads_it(tiny_model_dir, tmp_path):
    from agents.backends.hf import TransformersBackend
    from prism_train.config import LoRAConfig
    from prism_train.modeling import load_causal_lm
    from prism_train.sft import SFTTrainer

    trainer = SFTTrainer(_config(tiny_model_dir, tmp_path / "lora", lora=LoRAConfig(rank=4), max_steps=2,
                                 save_every=0), short_trajectories())
    result = trainer.train()
    base = load_causal_lm(tiny_model_dir).state_dict()
    trained = trainer.learner.model.get_base_model().state_dict()
    frozen = [k for k in trained if "lora_" not in k]
    assert all(torch.equal(trained[k], base[k.replace(".base_layer", "")]) for k in frozen)
    assert all("lora_" in n for n, p in trainer.learner.model.named_parameters() if p.requires_grad)
    backend = TransformersBackend(tiny_model_dir)
    backend.load_adapter(result.final_dir)
    assert backend.adapters == {"default": str(result.final_dir)}


def test_config_errors_are_clear(tiny_model_dir, tmp_path):
    from prism_train.config import ConfigError, LoRAConfig, SFTConfig, load_config
    from prism_train.sft import SFTTrainer

    with pytest.raises(ConfigError, match=r"(?s)lora.rank: Input should be a valid int.*learning_rat: unknown field"):
        load_config(SFTConfig, {"model": "m", "output_dir": "o", "learning_rat": 1e-3, "lora": {"rank": "big"}})
    with pytest.raises(ConfigError, match="output_dir: Field required"):
        load_config(SFTConfig, {"model": "m"})
    built = load_config(SFTConfig, {"model": "m", "output_dir": "o", "lora": {"rank": 8, "targets": ["q_proj"]},
                                    "prompt": {"history": 2}})
    assert built.lora == LoRAConfig(rank=8, targets=("q_proj",)) and built.prompt.history == 2
    with pytest.raises(ValueError, match="lr_schedule"):
        _config(tiny_model_dir, tmp_path, lr_schedule="exotic")
    with pytest.raises(ValueError, match="either adapter"):
        _config(tiny_model_dir, tmp_path, adapter=str(tmp_path), lora=LoRAConfig())
    empty = [dataclasses.replace(short_trajectories()[0], steps=[])]
    with pytest.raises(ValueError, match="no trainable rows"):
        SFTTrainer(_config(tiny_model_dir, tmp_path), empty)


def test_cli_trains_the_routed_sft_set_and_writes_the_ledger(tiny_model_dir, tmp_path):
    import yaml

    from environments.core.trajectory import TrajectoryWriter
    from harness.cli import app
    from prism_train.ledger import read_ledger
    from prism_train.routers import RoutingRequest, route, tasks_of, write_decision

    trajectories = list(short_trajectories())
    with TrajectoryWriter(tmp_path / "expert.jsonl") as writer:
        writer.write_all(trajectories)
    decision = route("random", RoutingRequest(trajectories, {}, tasks_of(trajectories), seed=1))
    write_decision(tmp_path / "routing.jsonl", decision)
    (tmp_path / "sft.yaml").write_text(yaml.safe_dump({"micro_batch_size": 4, "prompt": dict(SHORT_PROMPT),
                                                       "learning_rate": 1e-3}))
    result = CliRunner().invoke(app, [
        "train", "sft", "-t", str(tmp_path / "expert.jsonl"), "-c", str(tmp_path / "sft.yaml"),
        "-s", "max_steps=2", "--model", str(tiny_model_dir), "--out", str(tmp_path / "run"),
        "--routing", str(tmp_path / "routing.jsonl"), "--ledger", str(tmp_path / "ledger.jsonl"),
        "--strategy", "random"])
    assert result.exit_code == 0, result.output
    assert "SFT done: 2 steps" in result.output
    (entry,) = read_ledger(tmp_path / "ledger.jsonl")
    assert entry.phase == "sft" and entry.strategy == "random" and entry.flops > 6 * entry.tokens
    assert entry.meta["rows"] == sum(len(t.steps) for t in decision.sft)
    bad = CliRunner().invoke(app, ["train", "sft", "-t", str(tmp_path / "expert.jsonl"), "-s", "epochs=zero",
                                   "--model", str(tiny_model_dir), "--out", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "epochs: Input should be a valid integer" in bad.output
