"""Experiment configuration for ``harness eval``: typed, validated, loadable from YAML or TOML.

Every field is documented where it is declared: the comparison's own here, the trainers' (the ``probe``,
``sft``, ``rl`` and ``prompt`` sections and ``model.lora``) in ``prism_train/config.py``, whose classes
this config composes rather than redefines, so every trainer setting is reachable from here. Validation
errors name the bad field by its dotted path (``envs.1.train_tasks``), unknown keys are errors (a typo
must not silently fall back to a default), and ``--set a.b=value`` overrides go through the same
validation.
"""

from __future__ import annotations

import json
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, field_validator, model_validator

from agents.registry import UnknownPolicyError, get_policy_spec
from foundation.errors import ConfigError
from prism_train.config import (
    LoRAConfig,
    ProbeConfig,
    PromptConfig,
    RLSettings,
    Section,
    SFTSettings,
    WeightsDtype,
    load_config,
)

__all__ = ["UNTRAINED", "ConfigError", "EnvRunConfig", "EvalConfig", "ModelConfig", "RayConfig", "load_eval_config",
           "validate_config"]

UNTRAINED = "untrained"

# harness eval trains tiny models on CPUs in minutes; the trainers' own defaults suit real models. These
# replace the trainers' defaults wherever an eval config leaves the field out (the same for every strategy).
EVAL_DEFAULTS: dict[str, dict[str, Any]] = {
    "prompt": {"few_shot": False, "history": 2, "max_length": 1024},
    "probe": {"batch_size": 8},
    "sft": {"epochs": 3, "learning_rate": 1e-3, "micro_batch_size": 8, "log_every": 1000},
    "rl": {"iterations": 4, "tasks_per_iteration": 4, "learning_rate": 5e-4, "save_every": 0},
}
# Fields that were renamed when the eval config and the trainers' configs became one tree.
RENAMED = {
    "sft.batch_size": "sft.micro_batch_size", "sft.grad_accum": "sft.grad_accum_steps",
    "sft.max_seq_len": "prompt.max_length", "rl.clip": "rl.clip_eps",
    "probe.normalize_by_size": "probe.normalization (none or sqrt-numel)", "model.few_shot": "prompt.few_shot",
    "model.history": "prompt.history", "model.grounding": "prompt.grounding", "model.lora_rank": "model.lora.rank",
}


def _section_doc(cls: type[Section], name: str) -> str:
    """A section's description: its class's, plus the defaults harness eval sets differently."""
    changed = ", ".join(f"{key} {value}" for key, value in EVAL_DEFAULTS.get(name, {}).items())
    own = f" Defaults are the trainers' (prism_train/config.py) except {changed}." if changed else ""
    return f"{(cls.__doc__ or '').strip()}{own}"


def _refuse_renamed(raw: dict[str, Any]) -> None:
    """Name the new field of every renamed one ``raw`` still uses (an old config must not half-apply)."""
    found = []
    for old, new in RENAMED.items():
        section, field = old.split(".")
        if isinstance(raw.get(section), dict) and field in raw[section]:
            found.append(f"{old} is now {new}")
    envs = raw.get("envs") if isinstance(raw.get("envs"), list) else []
    found += [f"envs.{i}.history 'model' is now 'prompt' (prompt.history)" for i, env in enumerate(envs)
              if isinstance(env, dict) and env.get("history") == "model"]
    if isinstance(raw.get("model"), dict) and isinstance(raw["model"].get("lora"), bool):
        found.append("model.lora is now a section: {rank: 16} trains LoRA adapters, null (the default) every weight")
    if found:
        raise ValueError("renamed field(s): " + "; ".join(found))


class ModelConfig(Section):
    """The policy being trained."""

    source: str = Field("tiny", description="'tiny' (a small Llama built from a config, tokenizer trained on the "
                        "expert trajectories), 'smollm2' (SmolLM2-135M-Instruct, see `harness models prepare`), "
                        "a local model directory, or a hub id where the network allows.")
    backend: str = Field("transformers", description="Generation backend (see `harness models list`).")
    dtype: WeightsDtype = Field("float32", description="Weights dtype the trainers load the model in (bfloat16 "
                                "halves memory; CPUs are fastest in float32).")
    lora: LoRAConfig | None = Field(None, description="Train LoRA adapters (e.g. {rank: 16}) instead of all weights; "
                                    "null: every weight.")
    tiny_hidden_size: int = Field(128, ge=16, description="Width of the 'tiny' model.")
    tiny_layers: int = Field(2, ge=1, description="Depth of the 'tiny' model.")
    tiny_vocab_size: int = Field(2048, ge=300, description="Tokenizer size of the 'tiny' model.")
    pretrain_epochs: int = Field(3, ge=1, description="Epochs of the 'tiny' base's pretraining on the expert "
                                 "data of an environment's pretraining split (envs.N.pretrain_tasks).")
    pretrain_learning_rate: float = Field(3e-3, gt=0, description="Learning rate of that pretraining.")
    max_new_tokens: int = Field(48, ge=1, description="Generation budget per action (evaluation and GRPO).")

    @field_validator("backend")
    @classmethod
    def _backend_loads_the_trained_weights(cls, value: str) -> str:
        """Every cell serves the weights it has just trained, so the backend must load a model directory."""
        try:
            spec = get_policy_spec(value)
        except UnknownPolicyError as exc:
            raise ValueError(str(exc)) from None
        others = sorted(set(spec.required_options()) - {"model"})
        if "model" not in spec.options or others:
            needs = f"needs {', '.join(others)}" if others else "takes no model directory"
            raise ValueError(f"backend {value!r} {needs}: harness eval serves the weights each cell trains, so "
                             "its backend must load a model directory (e.g. transformers, vllm)")
        return value


class EnvRunConfig(Section):
    """One environment of the comparison: where the training tasks and held-out tasks come from."""

    name: str = Field(description="Environment name (see `harness env list`).")
    train_split: str = Field(description="Split the expert trajectories and RL tasks are drawn from.")
    train_tasks: int = Field(ge=2, description="How many training tasks (expert trajectories) to use.")
    pretrain_tasks: int = Field(0, ge=0, description="With model.source 'tiny': tasks of train_split set aside (a "
                                "fixed sample, the same for every seed) whose expert trajectories pretrain the base "
                                "every strategy starts from, built once and cached (harness/base_model.py); no "
                                "seed trains on them. 0: a randomly initialised model per seed.")
    eval_splits: list[str] = Field(min_length=1, description="Held-out splits to evaluate on.")
    eval_episodes: int | None = Field(None, ge=1, description="Episodes per evaluation split (its first N tasks, "
                                      "in a fixed order; ALFWorld's interleaves the six task types); "
                                      "omitted: the whole split.")
    max_steps: int | None = Field(None, ge=1, description="Step cap; default: the environment's.")
    train_max_steps: int | None = Field(None, ge=1, description="Step cap of the agent's training rollouts "
                                        "(GRPO's groups, difficulty's rollouts), where a long-horizon environment "
                                        "spends most of a cell's time; evaluation always plays to max_steps. "
                                        "Default: max_steps.")
    history: Literal["prompt"] | int | None = Field(
        "prompt", description="Past steps shown in this environment's prompt ('prompt': prompt.history; null: all).")
    server_url: str | None = Field(None, description="Use a running environment server instead of in-process.")
    options: dict[str, Any] = Field(default_factory=dict, description="Engine options (observation mode, ...).")
    expert: dict[str, Any] = Field(default_factory=dict, description="Options of the environment's scripted expert, "
                                   "which plays the training and pretraining tasks (ALFWorld: kind: walkthrough, "
                                   "the stored oracle plan, or search, which looks for the object). Default: its own.")

    @property
    def training_step_cap(self) -> int | None:
        """The step cap of this environment's training rollouts."""
        return self.train_max_steps or self.max_steps

    @field_validator("history")
    @classmethod
    def _history_not_negative(cls, value: str | int | None) -> str | int | None:
        if isinstance(value, int) and value < 0:
            raise ValueError("must be >= 0, null (all steps) or 'prompt'")
        return value


class RayConfig(Section):
    """Every rollout's environment sessions on a Ray cluster's actors (the optional ``ray`` extra).

    Generation stays batched in the driver, and the results equal an in-process run's for the same
    seeds (docs/scaling.md), so this says where sessions run, not what is measured.
    """

    address: str = Field(min_length=1, description="Cluster address (HOST:PORT, ray://HOST:PORT, auto), or "
                         "'local' for a private single-node Ray.")
    workers: int | None = Field(None, ge=1, description="Environment actors over the cluster; default: one per CPU.")


class EvalConfig(Section):
    """A whole comparison: environments × strategies × seeds."""

    name: str = Field("default", description="Run name; the run directory is OUTPUT_DIR/NAME.")
    output_dir: str = Field("runs", description="Parent directory of run directories.")
    envs: list[EnvRunConfig] = Field(min_length=1, description="The environments compared on.")
    strategies: list[str] = Field(min_length=1, description="Routing strategies (see `harness routers list`).")
    include_untrained: bool = Field(True, description=f"Also evaluate the untrained policy (strategy '{UNTRAINED}').")
    router_options: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Options per strategy, e.g. {difficulty: {k: 2}} (see `harness routers list`).")
    seeds: list[int] = Field(min_length=1, description="One replicate of every cell per seed (training tasks, "
                             "model, sampling).")
    model: ModelConfig = Field(default_factory=ModelConfig, description=ModelConfig.__doc__)
    # The trainers' own classes; missing fields take EVAL_DEFAULTS, then the trainers' defaults.
    prompt: PromptConfig = Field(description=_section_doc(PromptConfig, "prompt") + " The same for every strategy.")
    probe: ProbeConfig = Field(description=_section_doc(ProbeConfig, "probe"))
    sft: SFTSettings = Field(description=_section_doc(SFTSettings, "sft"))
    rl: RLSettings = Field(description=_section_doc(RLSettings, "rl"))
    torch_threads: int = Field(2, ge=1, description="torch intra-op threads.")
    rollout_concurrency: int = Field(16, ge=1, description="Episodes played side by side (batched generation).")
    temperature_eval: float = Field(0.0, ge=0, description="0 = greedy evaluation.")
    # Where sessions run is not part of what a run is: excluded from the dump (the run's fingerprint), a
    # run started in-process can resume over Ray and back.
    ray: RayConfig | None = Field(None, exclude=True, description="Run the environment sessions of every rollout "
                                  "on a Ray cluster (also `harness eval --ray ADDRESS`); not with an env's server_url.")

    @model_validator(mode="before")
    @classmethod
    def _eval_defaults(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            return raw
        _refuse_renamed(raw)
        merged = dict(raw)
        for name, defaults in EVAL_DEFAULTS.items():
            given = raw.get(name, {})
            if isinstance(given, dict):
                merged[name] = {**defaults, **given}
        return merged

    @field_validator("strategies", "seeds")
    @classmethod
    def _unique(cls, values: list) -> list:
        duplicates = sorted({str(v) for v in values if values.count(v) > 1})
        if duplicates:
            raise ValueError(f"duplicate entries: {', '.join(duplicates)}")
        return values

    def pretrains_base(self, env: EnvRunConfig) -> bool:
        """Whether ``env``'s runs start from a tiny base pretrained on its pretraining split (built once, cached)."""
        return self.model.source == "tiny" and env.pretrain_tasks > 0

    def untrained_seeds(self, env: EnvRunConfig) -> list[int]:
        """The seeds on which ``env``'s untrained policy is evaluated: the first alone where that evaluation
        cannot depend on the seed (greedy, from a base every seed shares: a pretrained tiny base or a given
        model), else every seed (a tiny model initialised per seed, or sampled evaluation)."""
        shared_base = self.model.source != "tiny" or self.pretrains_base(env)
        return self.seeds[:1] if shared_base and self.temperature_eval == 0 else list(self.seeds)

    def cells(self) -> list[tuple[EnvRunConfig, str, int]]:
        """The matrix in running order: (environment, strategy, seed), seed by seed, the untrained policy first."""
        return [(env, strategy, seed) for seed in self.seeds for env in self.envs
                for strategy in ([UNTRAINED] if self.include_untrained else []) + list(self.strategies)
                if strategy != UNTRAINED or seed in self.untrained_seeds(env)]

    @model_validator(mode="after")
    def _unique_envs(self) -> EvalConfig:
        names = [env.name for env in self.envs]
        if len(set(names)) != len(names):
            raise ValueError(f"each environment may appear once, got {names}")
        return self

    @model_validator(mode="after")
    def _one_place_for_sessions(self) -> EvalConfig:
        served = [f"envs.{i}.server_url" for i, env in enumerate(self.envs) if env.server_url is not None]
        if self.ray is not None and served:
            raise ValueError(f"give ray (--ray) or {', '.join(served)}, not both: each says where sessions run")
        return self


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Raw mapping from a .yaml/.yml/.toml/.json file, with a clear error for anything else."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    readers = {".yaml": yaml.safe_load, ".yml": yaml.safe_load, ".toml": tomllib.loads, ".json": json.loads}
    reader = readers.get(path.suffix.lower())
    if reader is None:
        raise ConfigError(f"config file {path}: unsupported extension {path.suffix!r}; use one of {sorted(readers)}")
    try:
        raw = reader(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid {path.suffix[1:].upper()}: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return raw


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``dotted.path=value`` overrides; values parse as YAML (numbers, lists, booleans)."""
    result = json.loads(json.dumps(raw))
    for override in overrides:
        path, sep, text = override.partition("=")
        if not sep or not path:
            raise ConfigError(f"override {override!r} is not of the form key.path=value")
        value = yaml.safe_load(text) if text else ""
        node: Any = result
        parts = path.split(".")
        for depth, part in enumerate(parts[:-1]):
            node = _child(node, part, ".".join(parts[: depth + 1]))
        last = parts[-1]
        if isinstance(node, list):
            node[_index(node, last, path)] = value
        elif isinstance(node, dict):
            node[last] = value
        else:
            raise ConfigError(f"override {path}: {'.'.join(parts[:-1])} is not a section")
    return result


def _index(node: list, part: str, where: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise ConfigError(f"override {where}: no list entry {part!r} (the list has {len(node)})")
    return int(part)


def _child(node: Any, part: str, where: str) -> Any:
    if isinstance(node, list):
        return node[_index(node, part, where)]
    if isinstance(node, dict):
        return node.setdefault(part, {})
    raise ConfigError(f"override {where}: not a section")


def validate_config(raw: dict[str, Any], origin: str = "config") -> EvalConfig:
    """The eval config of ``raw``; a :class:`ConfigError` names every bad field."""
    return load_config(EvalConfig, raw, origin)


PRESETS = ("default", "study", "select", "paper")


def preset_raw(name: str) -> dict[str, Any]:
    """The raw mapping of a built-in preset (``harness/presets/NAME.yaml``)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; built-in presets: {', '.join(PRESETS)}")
    return yaml.safe_load(resources.files("harness.presets").joinpath(f"{name}.yaml").read_text(encoding="utf-8"))


def load_eval_config(path: str | Path | None = None, preset: str | None = None,
                     overrides: list[str] | None = None) -> EvalConfig:
    """A config from a file or a preset (the embedded default when neither is given), plus overrides."""
    if path is not None and preset is not None:
        raise ConfigError("give either a config file or a preset, not both")
    raw = read_config_file(path) if path is not None else preset_raw(preset or "default")
    origin = str(path) if path is not None else f"preset {preset or 'default'}"
    return validate_config(apply_overrides(raw, overrides or []), origin)
