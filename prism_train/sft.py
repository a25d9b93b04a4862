"""Supervised fine-tuning on expert trajectories: loss on the policy's output tokens only.

Every step of every trajectory is one row (the agents' prompt for that step, then the step's output
and end-of-turn token); prompts and observations are context, never targets. Rows are batched by
*length bucketing*: each epoch shuffles the rows with a seeded generator, sorts every window of
``micro_batch_size × bucket_size`` rows by length, cuts it into micro-batches and shuffles those, so
padding stays small while the order stays random. ``grad_accum_steps`` micro-batches make one
optimiser step, and the loss is the mean over all target tokens of the step, so accumulation gives
the same gradient as one large batch.

The epoch plan is a pure function of (seed, epoch), so the data position of a checkpoint is just
(epoch, step within the epoch): resuming rebuilds the plan and skips what was done, exactly.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from environments.core.trajectory import Trajectory
from prism_train.config import SFTConfig
from prism_train.device import autocast
from prism_train.formatting import TrajectoryTokenizer
from prism_train.ledger import Ledger
from prism_train.modeling import TokenRow, load_tokenizer, pad_rows, target_logprobs
from prism_train.trainer import Learner, resolve_model_path, write_config

log = logging.getLogger(__name__)


def epoch_plan(lengths: Sequence[int], config: SFTConfig, epoch: int) -> list[list[list[int]]]:
    """Optimiser steps of micro-batches of row indices for ``epoch``; a pure function of the seed."""
    generator = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
    order = torch.randperm(len(lengths), generator=generator).tolist()
    window = config.micro_batch_size * config.bucket_size
    micro: list[list[int]] = []
    for start in range(0, len(order), window):
        bucket = sorted(order[start:start + window], key=lambda i: lengths[i])
        micro += [bucket[k:k + config.micro_batch_size] for k in range(0, len(bucket), config.micro_batch_size)]
    micro = [micro[i] for i in torch.randperm(len(micro), generator=generator).tolist()]
    return [micro[k:k + config.grad_accum_steps] for k in range(0, len(micro), config.grad_accum_steps)]


@dataclass
class StepReport:
    """What one optimiser step did (given to ``on_step`` callbacks and kept in ``SFTResult.history``)."""

    step: int
    epoch: int
    loss: float
    grad_norm: float
    learning_rate: float
    tokens: int
    target_tokens: int


@dataclass
class SFTResult:
    final_dir: Path
    steps: int
    history: list[StepReport] = field(default_factory=list)


def rows_of(tokenizer: TrajectoryTokenizer, trajectories: Sequence[Trajectory]) -> list[TokenRow]:
    """All training rows of ``trajectories`` (steps with no output tokens left out)."""
    rows = [row for t in trajectories for row in tokenizer.tokenize(t).rows if row.n_targets]
    if not rows:
        raise ValueError("no trainable rows: the trajectories have no steps within max_length")
    return rows


class SFTTrainer:
    """Fine-tunes ``config.model`` on trajectories; call :meth:`train`."""

    def __init__(self, config: SFTConfig, trajectories: Sequence[Trajectory], ledger: Ledger | None = None,
                 resume: bool = True) -> None:
        self.config = config
        self.ledger = ledger or Ledger(None, strategy="sft")
        self.formatter = TrajectoryTokenizer(load_tokenizer(resolve_model_path(config.model)), config.prompt)
        self.rows = rows_of(self.formatter, trajectories)
        self.lengths = [len(r.input_ids) for r in self.rows]
        self.steps_per_epoch = len(epoch_plan(self.lengths, config, 0))
        self.total_steps = config.max_steps or config.epochs * self.steps_per_epoch
        self.learner = Learner(config, self.total_steps, resume=resume)
        state = self.learner.resumed_state or {}
        self.step = int(state.get("step", 0))
        self.epoch = int(state.get("epoch", 0))
        self.step_in_epoch = int(state.get("step_in_epoch", 0))
        log.info("SFT: %d rows from %d trajectories, %d steps (%d per epoch)", len(self.rows), len(trajectories),
                 self.total_steps, self.steps_per_epoch)

    def _micro_step(self, indices: list[int], total_targets: int) -> tuple[float, int]:
        learner = self.learner
        batch = pad_rows([self.rows[i] for i in indices], pad_id=learner.tokenizer.pad_token_id or 0,
                         device=learner.device)
        with autocast(learner.device, self.config.precision):
            logprobs = target_logprobs(learner.model, batch)
        loss = -logprobs.sum() / total_targets
        loss.backward()
        return float(loss.detach()), sum(batch.lengths)

    def train(self, on_step: Callable[[StepReport], None] | None = None) -> SFTResult:
        """Train to ``total_steps`` (from a checkpoint when resuming); returns the final model directory."""
        config, learner = self.config, self.learner
        write_config(config)
        history: list[StepReport] = []
        started = time.perf_counter()
        with self.ledger.phase("sft", sync=learner.sync, device=str(learner.device)) as meter:
            while self.step < self.total_steps:
                plan = epoch_plan(self.lengths, config, self.epoch)
                while self.step_in_epoch < len(plan) and self.step < self.total_steps:
                    micro_batches = plan[self.step_in_epoch]
                    total_targets = sum(self.rows[i].n_targets for mb in micro_batches for i in mb)
                    loss = 0.0
                    tokens = 0
                    with meter.on_device():
                        for indices in micro_batches:
                            part, n = self._micro_step(indices, total_targets)
                            loss += part
                            tokens += n
                        grad_norm = learner.optimizer_step()
                    lengths = [self.lengths[i] for mb in micro_batches for i in mb]
                    meter.add(tokens=tokens, flops=learner.train_flops(lengths, total_targets))
                    self.step += 1
                    self.step_in_epoch += 1
                    report = StepReport(self.step, self.epoch, loss, grad_norm, learner.learning_rate, tokens,
                                        total_targets)
                    history.append(report)
                    if self.step % config.log_every == 0 or self.step == self.total_steps:
                        log.info("sft step %d/%d  loss %.4f  lr %.2e  %.0f tok/s", self.step, self.total_steps, loss,
                                 report.learning_rate, meter.tokens / max(time.perf_counter() - started, 1e-9))
                    if config.save_every and self.step % config.save_every == 0:
                        self._save()
                    if on_step is not None:
                        on_step(report)
                if self.step_in_epoch >= len(plan):
                    self.epoch += 1
                    self.step_in_epoch = 0
            meter.meta.update(steps=len(history), rows=len(self.rows), lora=learner.is_lora)
        if not (config.save_every and self.step % config.save_every == 0):
            self._save()
        final = learner.save_final()
        return SFTResult(final, self.step, history)

    def _save(self) -> Path:
        return self.learner.save_checkpoint(self.step, {"epoch": self.epoch, "step_in_epoch": self.step_in_epoch,
                                                        "total_steps": self.total_steps})
