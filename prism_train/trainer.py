"""What SFT and RL share: the trainable model (full or LoRA), its optimiser and schedule, checkpoints.

:class:`Learner` owns the model being trained. It builds it from a model directory (plus an optional
LoRA adapter to continue), wraps it with a fresh LoRA adapter when asked, creates AdamW and the LR
schedule, and saves and restores all of it through :mod:`prism_train.checkpoint`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from agents.models import resolve_model
from prism_train.checkpoint import (
    latest_checkpoint,
    load_checkpoint_state,
    save_checkpoint,
    save_model_dir,
    write_json,
)
from prism_train.config import TrainConfig
from prism_train.device import resolve_device, seed_everything, set_rng_state, synchronizer
from prism_train.flops import ModelShape
from prism_train.modeling import load_causal_lm, load_tokenizer

log = logging.getLogger(__name__)


def write_config(config: TrainConfig) -> None:
    """The fully resolved config beside the run's results."""
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", {"kind": type(config).__name__, **config.to_json()})


def resolve_model_path(name: str) -> str:
    """A prepared model name (``agents.models``) or a path, as a model directory."""
    return resolve_model(name)


class Learner:
    """The model being trained, with its optimiser and LR schedule; resumable.

    ``resume=True`` continues from the newest checkpoint under ``config.output_dir`` when there is
    one (``resumed_state`` then holds that checkpoint's JSON state), otherwise starts fresh.
    """

    def __init__(self, config: TrainConfig, total_steps: int, resume: bool = True) -> None:
        self.config = config
        self.total_steps = total_steps
        self.device = resolve_device(config.device)
        self.sync = synchronizer(self.device)
        checkpoint = latest_checkpoint(config.output_dir) if resume else None
        seed_everything(config.seed)
        self.base_path = resolve_model_path(config.model)
        self.tokenizer = load_tokenizer(self.base_path)
        self.model = self._build_model(checkpoint)
        self.model.train()
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        if not self.trainable:
            raise ValueError("nothing to train: every parameter is frozen")
        self.optimizer = torch.optim.AdamW(self.trainable, lr=config.learning_rate, weight_decay=config.weight_decay)
        from transformers import get_scheduler

        self.scheduler = get_scheduler(config.lr_schedule, self.optimizer, num_warmup_steps=config.warmup_steps,
                                       num_training_steps=max(total_steps, 1))
        self.shape = ModelShape.from_config(self.model.config)
        self.resumed_state: dict[str, Any] | None = None
        if checkpoint is not None:
            tensors, meta = load_checkpoint_state(checkpoint)
            self.optimizer.load_state_dict(tensors["optimizer"])
            self.scheduler.load_state_dict(tensors["scheduler"])
            set_rng_state(tensors["rng"])
            self.resumed_state = meta
            log.info("resumed from %s (step %d)", checkpoint, meta["step"])
        log.info("training %s: %.2fM of %.2fM parameters trainable on %s", self.base_path,
                 sum(p.numel() for p in self.trainable) / 1e6,
                 sum(p.numel() for p in self.model.parameters()) / 1e6, self.device)

    def _build_model(self, checkpoint: Path | None) -> Any:
        from peft import LoraConfig, PeftModel, get_peft_model

        config, lora = self.config, self.config.lora
        if lora is None and not config.adapter:  # full fine-tuning: a checkpoint holds every weight
            return load_causal_lm(checkpoint / "model" if checkpoint else self.base_path, config.weights_dtype,
                                  self.device)
        model = load_causal_lm(self.base_path, config.weights_dtype, self.device)
        if checkpoint is not None:
            return PeftModel.from_pretrained(model, checkpoint / "model", is_trainable=True).to(self.device)
        if lora is None:  # keep training the given adapter
            return PeftModel.from_pretrained(model, config.adapter, is_trainable=True).to(self.device)
        seed_everything(config.seed)  # the adapter's initialisation depends on the seed only
        peft_config = LoraConfig(r=lora.rank, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                 target_modules=list(lora.targets), task_type="CAUSAL_LM")
        return get_peft_model(model, peft_config)

    @property
    def is_lora(self) -> bool:
        return self.config.lora is not None or bool(self.config.adapter)

    def train_flops(self, lengths: list[int], head_tokens: int) -> int:
        """Analytic FLOPs of a forward+backward over rows of these lengths (logits at ``head_tokens``
        positions) with this model's set-up (full or LoRA)."""
        if not self.is_lora:
            return self.shape.train_flops(lengths, head_tokens)
        adapter = self.model.peft_config[self.model.active_adapter]
        return self.shape.train_flops(lengths, head_tokens, lora_rank=adapter.r,
                                      lora_targets=sorted(adapter.target_modules))

    def optimizer_step(self) -> float:
        """Clip, step the optimiser and the schedule, clear gradients; returns the pre-clip grad norm."""
        norm = torch.nn.utils.clip_grad_norm_(self.trainable, self.config.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(norm)

    @property
    def learning_rate(self) -> float:
        return float(self.scheduler.get_last_lr()[0])

    def save_checkpoint(self, step: int, state: dict[str, Any]) -> Path:
        return save_checkpoint(self.config.output_dir, step, self.model, self.tokenizer, self.optimizer,
                               self.scheduler, {**state, "config": self.config.to_json()},
                               keep=self.config.keep_checkpoints)

    def save_final(self, name: str = "final") -> Path:
        """The trained model (or adapter) as a directory the generation backends load."""
        out = Path(self.config.output_dir) / name
        save_model_dir(self.model, self.tokenizer, out)
        return out
