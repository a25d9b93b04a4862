"""The one typed config tree of the trainers: the PRISM probe, SFT and GRPO, with their prompt and LoRA.

Every field is declared once, here, and documented where it is declared. ``harness eval`` composes
these same classes into its config (``harness/config.py``: its ``probe``, ``sft``, ``rl``, ``prompt``
sections and ``model.lora``), and ``harness train sft|rl`` and ``harness probe`` read :class:`SFTConfig`,
:class:`RLConfig` and :class:`ProbeRunConfig` from files. Unknown keys are errors (a typo must not
silently fall back to a default), and :func:`load_config` names every bad field by its dotted path.

A trainer's config is its *settings* (:class:`SFTSettings`, :class:`RLSettings`: what a user tunes,
the sections of an eval config) plus the fields of *one run* (:class:`TrainRun`, :class:`RLRun`: the
model, output directory, seed, prompt, LoRA and environment), which ``harness eval`` fills in for
every cell from the rest of its config.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from foundation.errors import ConfigError
from prism_train.concentration import NORMALIZATIONS
from prism_train.flops import PROJECTIONS

__all__ = ["ConfigError", "LoRAConfig", "ProbeConfig", "ProbeRunConfig", "PromptConfig", "RLConfig", "RLSettings",
           "SFTConfig", "SFTSettings", "TrainConfig", "TrainSettings", "format_errors", "load_config"]

Precision = Literal["auto", "float32", "bfloat16", "float16"]
WeightsDtype = Literal["float32", "bfloat16", "float16"]
LRSchedule = Literal["constant", "constant_with_warmup", "linear", "cosine"]
Grounding = Literal["none", "nearest"]

T = TypeVar("T", bound=BaseModel)


class Section(BaseModel):
    """A config section: unknown fields are errors, and assignments are validated like construction."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class PromptConfig(Section):
    """The policy's prompt (``agents.prompts``): the trainers must show the model the text it sees at rollout."""

    style: str = Field("react", min_length=1, description="Prompt style of agents.prompts: react (ReAct/AgentGym "
                       "chat) or verl (verl-agent single turn).")
    few_shot: bool = Field(True, description="Show a worked example episode in the prompt (longer prompts).")
    history: int | Literal["default"] | None = Field(
        "default", description="Past steps shown in the prompt: a number, null (all of them) or 'default' (the "
        "style's own for the environment).")
    max_length: int = Field(4096, ge=16, description="Longest step (prompt + output) in tokens, for SFT, GRPO and "
                            "the probe; a longer step is left out with a warning rather than cut (the backends "
                            "refuse such prompts too).")
    grounding: Grounding = Field(
        "none", description="'none': an inadmissible action is sent as written (the benchmarks' rule); 'nearest': "
        "the agent sends the most similar admissible action instead (Huang et al., 2022). It does not change the "
        "tokens trained on.")

    @field_validator("history")
    @classmethod
    def _history_not_negative(cls, value: int | str | None) -> int | str | None:
        if isinstance(value, int) and value < 0:
            raise ValueError("must be >= 0, null (all steps) or 'default'")
        return value


class LoRAConfig(Section):
    """A fresh LoRA adapter on the projection matrices, trained instead of the model's own weights."""

    rank: int = Field(16, ge=1, description="Rank of every adapter matrix.")
    alpha: float = Field(32.0, gt=0, description="Scaling of the adapter's output (alpha / rank).")
    dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the adapter's input.")
    targets: tuple[str, ...] = Field(PROJECTIONS, min_length=1, description="Module names adapted in every layer.")


class ProbeConfig(Section):
    """The PRISM probe of the frozen initial model on the expert trajectories: how it batches, what it measures."""

    batch_size: int = Field(16, ge=1, description="Trajectories per forward/backward pass (fewer when "
                            "max_batch_tokens would be exceeded).")
    max_batch_tokens: int | None = Field(None, ge=1, description="Rows x padded length per pass; null: large on a "
                                         "GPU, small on a CPU (prism_train.probe.default_batch_tokens).")
    projections: tuple[str, ...] = Field(PROJECTIONS, min_length=1, description="Module names probed in every "
                                         "layer.")
    normalization: str = Field("none", description="Normalisation of each matrix's norm by its size before the "
                               f"statistics: {', '.join(NORMALIZATIONS)} (the paper does not say; off by default).")
    precision: Precision = Field("auto", description="Forward pass precision ('auto': bf16 autocast on GPUs that "
                                 "have it); products are always accumulated in float32.")
    chunk_elements: int = Field(1 << 27, ge=1, description="Largest Gram / outer-product tensor, in elements "
                                "(memory, not results).")

    @field_validator("normalization")
    @classmethod
    def _known_normalization(cls, value: str) -> str:
        if value not in NORMALIZATIONS:
            raise ValueError(f"unknown normalization {value!r}; choose from {', '.join(NORMALIZATIONS)}")
        return value


class OnDevice(Section):
    """Where a run computes."""

    device: str = Field("auto", min_length=1, description="auto (CUDA when present), cpu, cuda, cuda:1, ...")


class TrainSettings(OnDevice):
    """What every trainer tunes the same way: the optimiser and schedule, checkpoints, device and precision."""

    learning_rate: float = Field(1e-5, gt=0, description="AdamW peak learning rate.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    warmup_steps: int = Field(0, ge=0, description="Optimiser steps of linear warm-up (with a *_with_warmup, linear "
                              "or cosine schedule).")
    lr_schedule: LRSchedule = Field("constant", description="Learning-rate schedule over the run's optimiser steps.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradients are clipped to this total norm.")
    save_every: int = Field(0, ge=0, description="A checkpoint every this many optimiser steps (GRPO: iterations), "
                            "the newest keep_checkpoints kept; 0: only at the end.")
    keep_checkpoints: int = Field(2, ge=1, description="Checkpoints kept in the output directory.")
    log_every: int = Field(10, ge=1, description="Optimiser steps between progress log lines.")
    precision: Precision = Field("auto", description="Autocast policy of the forward passes ('auto': bf16 on "
                                 "capable GPUs, else float32).")


class SFTSettings(TrainSettings):
    """Supervised fine-tuning on expert trajectories (loss on the policy's outputs only)."""

    learning_rate: float = Field(1e-4, gt=0, description="AdamW peak learning rate.")
    epochs: int = Field(1, ge=1, description="Passes over the SFT set (unless max_steps is set).")
    max_steps: int | None = Field(None, ge=1, description="Optimiser steps to train for; null: epochs passes.")
    micro_batch_size: int = Field(4, ge=1, description="Steps (prompt + output rows) per forward/backward.")
    grad_accum_steps: int = Field(1, ge=1, description="Micro-batches per optimiser step.")
    bucket_size: int = Field(8, ge=1, description="Micro-batches per length-sorted window (less padding, "
                             "same randomness).")


class RLSettings(TrainSettings):
    """GRPO in the real environment: iterations of group rollouts, each followed by clipped-surrogate updates."""

    learning_rate: float = Field(1e-6, gt=0, description="AdamW peak learning rate.")
    iterations: int = Field(10, ge=1, description="GRPO iterations (rollouts, then updates).")
    tasks_per_iteration: int = Field(8, ge=1, description="Tasks drawn per iteration (at most the RL set's size).")
    group_size: int = Field(4, ge=2, description="Episodes per task, for group-normalised advantages.")
    updates_per_iteration: int = Field(1, ge=1, description="Optimiser steps an iteration's rows are split into "
                                       "(more than one makes later steps off-policy, where clipping bites).")
    epochs_per_iteration: int = Field(1, ge=1, description="Passes over an iteration's rows (more than one: "
                                      "off-policy, as above).")
    micro_batch_size: int = Field(8, ge=1, description="Rows per forward/backward.")
    clip_eps: float = Field(0.2, gt=0, lt=1, description="Clip range: the probability ratio is clipped to "
                            "[1-clip_eps, 1+clip_eps].")
    kl_coef: float = Field(0.0, ge=0, description="Weight of the KL penalty to the initial policy (0: none, and "
                           "no reference model is kept).")
    scale_rewards: bool = Field(True, description="Divide advantages by the group's reward standard deviation "
                                "(false: only subtract the group mean).")
    invalid_action_penalty: float = Field(0.0, ge=0, description="Subtracted from the environment's outcome reward "
                                          "per rejected action.")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature of the rollouts (1.0 samples the "
                               "distribution that is trained).")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling mass of the rollouts.")
    save_every: int = Field(1, ge=0, description="A checkpoint every this many iterations, the newest "
                            "keep_checkpoints kept; 0: only at the end.")


class ModelRun(Section):
    """The model a run starts from and the prompt it formats trajectories with."""

    model: str = Field(min_length=1, description="A model directory or a name prepared by `harness models` "
                       "(tiny-llama, smollm2).")
    prompt: PromptConfig = Field(default_factory=PromptConfig, description=PromptConfig.__doc__)


class TrainRun(ModelRun):
    """What one training run is given besides its settings: the model, where to write, the seed, the prompt."""

    output_dir: str = Field(min_length=1, description="Where checkpoints, the final model and config.json go.")
    adapter: str | None = Field(None, description="A LoRA adapter directory (e.g. SFT's output) to keep training.")
    lora: LoRAConfig | None = Field(None, description="Train a fresh LoRA adapter; with neither this nor adapter, "
                                    "every weight is trained.")
    seed: int = Field(0, description="Seeds the data order, the initialisation of a fresh adapter and sampling.")
    weights_dtype: WeightsDtype = Field("float32", description="Dtype the weights (and so the optimiser's master "
                                        "copy) are kept in; bfloat16 halves memory, CPUs are fastest in float32.")

    @model_validator(mode="after")
    def _one_adapter(self) -> TrainRun:
        if self.adapter and self.lora is not None:
            raise ValueError("give either adapter (keep training it) or lora (a fresh adapter), not both; "
                             "merge an adapter into its model first to put a fresh one on top")
        return self


class RLRun(TrainRun):
    """What one GRPO run is given besides its settings: also the environment and how its episodes are played."""

    env: str = Field("webshop", min_length=1, description="Environment the tasks come from (see `harness env list`).")
    max_new_tokens: int = Field(64, ge=1, description="Generation budget per action.")
    max_episode_steps: int | None = Field(None, ge=1, description="Step cap of an episode; null: the environment's.")
    concurrency: int = Field(16, ge=1, description="Episodes played side by side (batched generation).")
    server_url: str | None = Field(None, description="Play a running environment server instead of in-process.")
    env_options: dict[str, Any] = Field(default_factory=dict, description="The environment's engine options "
                                        "(observation mode, ...), as for any rollout.")


class TrainConfig(TrainSettings, TrainRun):
    """A run of any trainer (what :class:`~prism_train.trainer.Learner` reads): shared settings plus the run's
    fields."""


class SFTConfig(SFTSettings, TrainConfig):
    """An SFT run (``harness train sft``): :class:`SFTSettings` plus the run's fields."""


class RLConfig(RLSettings, RLRun, TrainConfig):
    """A GRPO run (``harness train rl``): :class:`RLSettings` plus the run's and environment's fields."""


class ProbeRunConfig(ProbeConfig, ModelRun, OnDevice):
    """A probe run (``harness probe``): :class:`ProbeConfig` plus the model, its prompt and its device."""


def format_errors(error: ValidationError, origin: str) -> str:
    """Every error of ``error`` on its own line, named by its dotted path, with the bad value."""
    lines = [f"invalid configuration ({origin}):"]
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = "unknown field (misspelt, or not a field of this section)" if item["type"] == "extra_forbidden" \
            else item["msg"]
        shown = "input" in item and not isinstance(item["input"], dict)
        lines.append(f"  {where}: {message}" + (f" (got {item['input']!r})" if shown else ""))
    return "\n".join(lines)


def load_config(cls: type[T], raw: Mapping[str, Any], origin: str = "config") -> T:
    """``cls`` from a parsed file plus overrides; a :class:`ConfigError` names every bad field."""
    try:
        return cls.model_validate(dict(raw))
    except ValidationError as exc:
        raise ConfigError(format_errors(exc, origin)) from None
