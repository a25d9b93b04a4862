"""Experiment configuration for ``harness eval``: typed, validated, loadable from YAML or TOML.

Every field is documented here, because this is what users edit. Validation errors name the bad
field by its dotted path (``envs.1.train_tasks``), unknown keys are errors (a typo must not silently
fall back to a default), and ``--set a.b=value`` overrides go through the same validation.
"""

from __future__ import annotations

import json
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

BUILTIN_STRATEGIES = (
    "sft-only", "rl-only", "sft-then-rl", "random", "prism-gini", "prism-cv", "prism-kurtosis",
    "prism-reverse", "grad-norm", "loss", "difficulty",
)
UNTRAINED = "untrained"


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names every bad field."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelConfig(_Section):
    """The policy being trained."""

    source: str = Field("tiny", description="'tiny' (a small Llama built from a config, tokenizer trained on the "
                        "expert trajectories), 'smollm2' (SmolLM2-135M-Instruct, see `harness models prepare`), "
                        "a local model directory, or a hub id where the network allows.")
    backend: str = Field("transformers", description="Generation backend (see `harness models list`).")
    dtype: Literal["float32", "bfloat16"] = Field("float32", description="Weights dtype the trainers load the "
                                                  "model in (bfloat16 halves memory; CPUs are fastest in float32).")
    lora: bool = Field(False, description="Train LoRA adapters instead of all weights.")
    lora_rank: int = Field(16, ge=1, description="Rank of the LoRA adapters (with lora: true).")
    tiny_hidden_size: int = Field(128, ge=16, description="Width of the 'tiny' model.")
    tiny_layers: int = Field(2, ge=1, description="Depth of the 'tiny' model.")
    tiny_vocab_size: int = Field(2048, ge=300, description="Tokenizer size of the 'tiny' model.")
    pretrain_epochs: int = Field(3, ge=1, description="Epochs of the 'tiny' base's pretraining on the expert "
                                 "data of an environment's pretraining split (envs.N.pretrain_tasks).")
    pretrain_learning_rate: float = Field(3e-3, gt=0, description="Learning rate of that pretraining.")
    max_new_tokens: int = Field(48, ge=1, description="Generation budget per action.")
    few_shot: bool = Field(False, description="Show a worked example in the prompt (longer prompts).")
    history: int | None = Field(2, ge=0, description="Past steps shown in the prompt; null: all of them.")
    grounding: Literal["none", "nearest"] = Field(
        "none", description="'none': an inadmissible action is sent as written (the benchmarks' rule); 'nearest': "
        "the agent sends the most similar admissible action instead (Huang et al., 2022). Same for every strategy.")
    server_url: str | None = Field(None, description="OpenAI-compatible server for the 'openai'/'vllm' backends.")


class EnvRunConfig(_Section):
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
    history: Literal["model"] | int | None = Field(
        "model", description="Past steps shown in this environment's prompt ('model': model.history; null: all).")
    server_url: str | None = Field(None, description="Use a running environment server instead of in-process.")
    options: dict[str, Any] = Field(default_factory=dict, description="Engine options (observation mode, ...).")

    @field_validator("history")
    @classmethod
    def _history_not_negative(cls, value: str | int | None) -> str | int | None:
        if isinstance(value, int) and value < 0:
            raise ValueError("must be >= 0, null (all steps) or 'model'")
        return value


class RayConfig(_Section):
    """Every rollout's environment sessions on a Ray cluster's actors (the optional ``ray`` extra).

    Generation stays batched in the driver, and the results equal an in-process run's for the same
    seeds (docs/scaling.md), so this says where sessions run, not what is measured.
    """

    address: str = Field(min_length=1, description="Cluster address (HOST:PORT, ray://HOST:PORT, auto), or "
                         "'local' for a private single-node Ray.")
    workers: int | None = Field(None, ge=1, description="Environment actors over the cluster; default: one per CPU.")


class ProbeConfig(_Section):
    """The PRISM probe of the initial model on the expert data (for routers that need scores)."""

    normalize_by_size: bool = Field(False, description="Divide each gradient norm by sqrt(matrix size).")
    batch_size: int = Field(8, ge=1, description="Trajectories per forward/backward pass.")


class SFTConfig(_Section):
    """Supervised fine-tuning on the expert trajectories a strategy routes to SFT."""

    epochs: int = Field(3, ge=1, description="Passes over the SFT set.")
    learning_rate: float = Field(1e-3, gt=0, description="AdamW peak learning rate.")
    batch_size: int = Field(8, ge=1, description="Steps (prompt + action rows) per micro-batch.")
    grad_accum: int = Field(1, ge=1, description="Micro-batches per optimiser step.")
    max_seq_len: int = Field(1024, ge=16, description="Longest step (prompt + action) in tokens, for SFT, GRPO and "
                             "the probe; longer steps are left out with a warning.")


class RLConfig(_Section):
    """GRPO in the real environment on the tasks a strategy routes to RL."""

    iterations: int = Field(4, ge=0, description="GRPO iterations (rollout + update).")
    tasks_per_iteration: int = Field(4, ge=1, description="Tasks drawn per iteration (at most the RL set's size).")
    group_size: int = Field(4, ge=2, description="Rollouts per task for group-normalised advantages.")
    learning_rate: float = Field(5e-4, gt=0, description="AdamW peak learning rate.")
    clip: float = Field(0.2, gt=0, description="Clip range ε: the probability ratio is clipped to [1−ε, 1+ε].")
    kl_coef: float = Field(0.0, ge=0, description="Weight of the KL penalty to the initial policy (0: none).")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature of the rollouts (1.0 samples the "
                               "distribution that is trained).")


class EvalConfig(_Section):
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
    probe: ProbeConfig = Field(default_factory=ProbeConfig, description=ProbeConfig.__doc__)
    sft: SFTConfig = Field(default_factory=SFTConfig, description=SFTConfig.__doc__)
    rl: RLConfig = Field(default_factory=RLConfig, description=RLConfig.__doc__)
    torch_threads: int = Field(2, ge=1, description="torch intra-op threads.")
    rollout_concurrency: int = Field(16, ge=1, description="Episodes played side by side (batched generation).")
    temperature_eval: float = Field(0.0, ge=0, description="0 = greedy evaluation.")
    # Where sessions run is not part of what a run is: excluded from the dump (the run's fingerprint), a
    # run started in-process can resume over Ray and back.
    ray: RayConfig | None = Field(None, exclude=True, description="Run the environment sessions of every rollout "
                                  "on a Ray cluster (also `harness eval --ray ADDRESS`); not with an env's server_url.")

    @field_validator("strategies", "seeds")
    @classmethod
    def _unique(cls, values: list) -> list:
        duplicates = sorted({str(v) for v in values if values.count(v) > 1})
        if duplicates:
            raise ValueError(f"duplicate entries: {', '.join(duplicates)}")
        return values

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


def _format_errors(error: ValidationError, origin: str) -> str:
    lines = [f"invalid configuration ({origin}):"]
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        lines.append(f"  {where}: {item['msg']}" + (f" (got {item['input']!r})" if "input" in item and
                                                         not isinstance(item["input"], dict) else ""))
    return "\n".join(lines)


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
    try:
        return EvalConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, origin)) from None


PRESETS = ("default", "study", "paper")


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
