"""The eval config documents itself: every field, in every section, says what it is where it is declared
(the README promises it, and `harness eval` users edit these files)."""

from __future__ import annotations

import typing

import pytest
from pydantic import BaseModel

from harness.config import ConfigError, EnvRunConfig, EvalConfig, ModelConfig, load_eval_config, validate_config


def _undocumented(model: type[BaseModel], prefix: str = "") -> list[str]:
    missing = []
    for name, info in model.model_fields.items():
        if not (info.description or "").strip():
            missing.append(prefix + name)
        for kind in (info.annotation, *typing.get_args(info.annotation)):
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                missing += _undocumented(kind, f"{prefix}{name}.")
    return missing


def test_every_field_of_the_eval_config_is_documented():
    assert _undocumented(EvalConfig) == []


def test_every_field_of_the_trainers_configs_is_documented():
    """What `harness train` and `harness probe` read, including the run's own fields the eval config fills in."""
    from prism_train.config import ProbeRunConfig, RLConfig, SFTConfig

    assert [_undocumented(cls) for cls in (SFTConfig, RLConfig, ProbeRunConfig)] == [[], [], []]


def test_the_eval_config_composes_the_trainers_classes():
    """One tree: the eval config's trainer sections are the trainers' own classes, so nothing is declared twice."""
    from prism_train.config import LoRAConfig, ProbeConfig, PromptConfig, RLSettings, SFTSettings

    fields = EvalConfig.model_fields
    assert [fields[name].annotation for name in ("prompt", "probe", "sft", "rl")] == [
        PromptConfig, ProbeConfig, SFTSettings, RLSettings]
    assert ModelConfig.model_fields["lora"].annotation == LoRAConfig | None
    redeclared = {name for section in (ModelConfig, EnvRunConfig, EvalConfig) for name in section.model_fields} & {
        name for section in (ProbeConfig, SFTSettings, RLSettings, LoRAConfig) for name in section.model_fields}
    assert redeclared == {"max_steps"}, redeclared  # homonyms only: an episode's step cap vs SFT's optimiser steps


def test_every_trainer_setting_is_reachable_from_harness_eval(tmp_path):
    """Each field of the SFT and GRPO settings and of the probe set with -s reaches the trainer's config."""
    from foundation.records import RunDir
    from harness.pipeline import TrainingPipeline
    from prism_train.config import RLConfig, SFTConfig

    overrides = ["sft.weight_decay=0.01", "sft.lr_schedule=cosine", "sft.warmup_steps=3", "sft.bucket_size=2",
                 "sft.grad_accum_steps=2", "sft.max_steps=5", "rl.clip_eps=0.1", "rl.top_p=0.9",
                 "rl.updates_per_iteration=2", "rl.scale_rewards=false", "rl.invalid_action_penalty=0.1",
                 "probe.normalization=sqrt-numel", "probe.max_batch_tokens=512", "prompt.style=verl",
                 "model.lora.rank=4", "model.lora.dropout=0.0"]
    cfg = load_eval_config(overrides=[*overrides, "torch_threads=1"])
    pipeline = TrainingPipeline(cfg, RunDir(tmp_path / "run"))
    fields = pipeline._run_fields("webshop", tmp_path / "base", None, 3, tmp_path / "sft")
    pipeline.close()
    sft = SFTConfig(**cfg.sft.model_dump(), **fields)
    rl = RLConfig(**cfg.rl.model_dump(), **fields)
    assert (sft.weight_decay, sft.lr_schedule, sft.warmup_steps, sft.bucket_size, sft.grad_accum_steps,
            sft.max_steps) == (0.01, "cosine", 3, 2, 2, 5)
    assert (rl.clip_eps, rl.top_p, rl.updates_per_iteration, rl.scale_rewards, rl.invalid_action_penalty) == (
        0.1, 0.9, 2, False, 0.1)
    assert sft.lora.rank == 4 and sft.lora.dropout == 0.0 and sft.seed == 3 and sft.prompt.style == "verl"
    assert sft.prompt.history == 0  # the default's WebShop prompt keeps its history from the prompt section
    assert (cfg.probe.normalization, cfg.probe.max_batch_tokens) == ("sqrt-numel", 512)


def test_eval_defaults_are_unchanged_and_partial_sections_keep_them():
    """harness eval's own defaults (tiny models on CPUs) apply to every field a config leaves out."""
    cfg = validate_config({"envs": [{"name": "webshop", "train_split": "train", "train_tasks": 4,
                                     "eval_splits": ["test"]}], "strategies": ["random"], "seeds": [0],
                           "sft": {"epochs": 2}, "rl": {"group_size": 8}})
    assert (cfg.sft.epochs, cfg.sft.learning_rate, cfg.sft.micro_batch_size, cfg.sft.grad_accum_steps) == (
        2, 1e-3, 8, 1)
    assert (cfg.rl.iterations, cfg.rl.tasks_per_iteration, cfg.rl.group_size, cfg.rl.learning_rate,
            cfg.rl.clip_eps, cfg.rl.kl_coef, cfg.rl.temperature) == (4, 4, 8, 5e-4, 0.2, 0.0, 1.0)
    assert (cfg.probe.batch_size, cfg.probe.normalization) == (8, "none")
    assert (cfg.prompt.few_shot, cfg.prompt.history, cfg.prompt.max_length, cfg.prompt.grounding) == (
        False, 2, 1024, "none")
    assert cfg.model.lora is None and cfg.model.max_new_tokens == 48


def test_renamed_and_bad_fields_are_errors_that_name_them():
    with pytest.raises(ConfigError, match=r"sft.batch_size is now sft.micro_batch_size.*rl.clip is now rl.clip_eps"):
        load_eval_config(overrides=["sft.batch_size=4", "rl.clip=0.1"])
    with pytest.raises(ConfigError, match=r"envs.1.history 'model' is now 'prompt'.*model.lora is now a section"):
        load_eval_config(overrides=["model.lora=true", "envs.1.history=model"])
    with pytest.raises(ConfigError, match=r"(?s)sft.bucket_sise: unknown field.*rl.clip_eps: Input should be less"):
        load_eval_config(overrides=["rl.clip_eps=1.5", "sft.bucket_sise=2"])


def test_a_backend_that_cannot_serve_the_trained_weights_is_refused():
    """Each cell evaluates the weights it trained, so a backend that talks to a running server is no fit."""
    with pytest.raises(ConfigError, match=r"model.backend.*'openai' needs base_url.*model directory"):
        load_eval_config(overrides=["model.backend=openai"])
    with pytest.raises(ConfigError, match=r"model.backend.*unknown policy 'transformer'"):
        load_eval_config(overrides=["model.backend=transformer"])
    with pytest.raises(ConfigError, match=r"model.server_url: unknown field"):
        load_eval_config(overrides=["model.server_url=http://127.0.0.1:8000"])
    assert load_eval_config(overrides=["model.backend=vllm"]).model.backend == "vllm"


def test_one_config_error_class():
    import harness.config
    import prism_train.config
    from foundation.errors import ConfigError as Floor

    assert harness.config.ConfigError is prism_train.config.ConfigError is Floor


def test_the_untrained_policy_is_evaluated_once_only_where_no_seed_can_change_it():
    study = load_eval_config(preset="study")
    assert [study.untrained_seeds(env) for env in study.envs] == [[0], [0]]  # greedy, pretrained shared bases
    cells = study.cells()
    assert len(cells) == len(study.envs) * (len(study.strategies) * len(study.seeds) + 1)
    assert [(env.name, seed) for env, strategy, seed in cells if strategy == "untrained"] == [
        ("webshop", 0), ("alfworld", 0)]
    sampled = study.model_copy(update={"temperature_eval": 0.7})
    assert sampled.untrained_seeds(study.envs[0]) == study.seeds
    per_seed_init = study.envs[0].model_copy(update={"pretrain_tasks": 0})  # a tiny model initialised per seed
    assert study.untrained_seeds(per_seed_init) == study.seeds
