"""GRPO-style RL in the real environments, through the agents layer's rollout engine and any backend.

One iteration:

1. draw ``tasks_per_iteration`` tasks from the RL pool (seeded by the iteration), plan
   ``group_size`` episodes per task (:func:`agents.tasks.plan_episodes`) and play them with the
   rollout engine; the trajectories record every generated token id and its log-probability;
2. outcome reward per episode, advantage ``A = (r − mean_group) / (std_group + ε)`` (or without the
   division, ``scale_rewards=False``); groups whose rewards are all equal carry no signal and are
   dropped;
3. each step of each episode is one row: the prompt (re-rendered with the agents' prompt format,
   checked against the rollout's prompt length) followed by the *generated token ids*. Token
   log-probabilities are recomputed with the training model (``old`` ones once, before updating;
   when the update is one optimiser step over one pass, every row is scored by the weights that
   sampled it, so ``old`` is the surrogate's own forward pass, detached, and no separate pass runs);
   the loss is the clipped surrogate ``−min(ρA, clip(ρ, 1−ε, 1+ε)A)`` per generated token, plus
   ``kl_coef`` × the k3 estimate of KL to the reference model (the initial weights: the adapter
   switched off under LoRA, a frozen copy otherwise), averaged over the tokens of an optimiser step.
   Dropout (LoRA's included) is off in both passes: with it on, the ratio ρ would be dropout noise
   even on-policy, where it must be exactly 1;
4. the new weights (or LoRA adapter) are pushed to the generation backend, a checkpoint is written.

Rollouts of an iteration go to ``rollouts/iter-XXXXXX.jsonl`` as they finish, so a run interrupted
mid-iteration resumes from its last checkpoint and replays only the missing episodes (each episode's
sampling is seeded on its own, so the replay draws the same tokens).
"""

from __future__ import annotations

import logging
import math
import random
import shutil
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from agents.lm_policy import LMPolicy
from agents.policy import LMBackend, SamplingParams, derive_seed
from agents.rollout import RolloutConfig, RolloutEngine
from agents.tasks import Task as EnvTask
from agents.tasks import plan_episodes
from environments.core.registry import get_env_spec
from environments.core.spec import SpecError
from environments.core.trajectory import Trajectory, TrajectoryWriter, read_trajectories
from prism_train.config import RLConfig
from prism_train.device import autocast
from prism_train.flops import ModelShape
from prism_train.formatting import TrajectoryTokenizer
from prism_train.ledger import Ledger
from prism_train.modeling import TokenRow, pad_rows, target_logprobs
from prism_train.routers import RolloutFn, Task
from prism_train.trainer import Learner, write_config

log = logging.getLogger(__name__)


class RLError(RuntimeError):
    """RL cannot proceed (untrainable rollouts, a backend that cannot take new weights)."""


def env_tasks(tasks: Sequence[Task]) -> list[EnvTask]:
    """The agents layer's tasks (with reset options) for routing tasks, looked up in each env's split lists."""
    found: list[EnvTask] = []
    catalogues: dict[tuple[str, str], dict[str, EnvTask]] = {}
    for task in tasks:
        split = task.split or "all"
        if (task.env, split) not in catalogues:
            try:
                listed = get_env_spec(task.env).split_tasks(split)
            except SpecError as exc:
                raise RLError(f"task {task.key}: {exc}") from None
            catalogues[(task.env, split)] = {t.task_id: t for t in listed}
        try:
            found.append(catalogues[(task.env, split)][task.task_id])
        except KeyError:
            raise RLError(f"task {task.key} is not in the {task.env} {split!r} split") from None
    return found


def generation_flops(shape: ModelShape | None, trajectories: Sequence[Trajectory]) -> int:
    """Analytic FLOPs of generating these rollouts (each step: prefill its prompt, decode its output;
    a backend's prefix cache makes the real number smaller)."""
    if shape is None:
        return 0
    return sum(shape.generation_flops(s.info.get("prompt_tokens") or 0, s.info.get("generated_tokens") or 0)
               for t in trajectories for s in t.steps)


@dataclass
class Sample:
    """One trainable row: a step's prompt and generated tokens, with its episode's advantage."""

    row: TokenRow
    advantage: float
    rollout_logprobs: list[float]
    old_logprobs: torch.Tensor | None = None
    ref_logprobs: torch.Tensor | None = None


def episode_reward(trajectory: Trajectory, invalid_action_penalty: float = 0.0) -> float:
    """The environment's outcome reward, minus ``invalid_action_penalty`` per action the environment
    rejected (verl-agent's invalid-action penalty; 0 keeps the pure outcome reward)."""
    invalid = sum(1 for step in trajectory.steps if step.info.get("action_valid") is False)
    return float(trajectory.reward) - invalid_action_penalty * invalid


def group_advantages(trajectories: Sequence[Trajectory], rewards: dict[str, float], scale: bool = True,
                     eps: float = 1e-6) -> dict[str, float]:
    """Advantage per trajectory id: its reward minus its group's mean (over the group's std when ``scale``).

    Groups are episodes of one task (same ``task_id``); a group with one member or equal rewards
    gets 0 for everyone.
    """
    groups: dict[str, list[Trajectory]] = defaultdict(list)
    for t in trajectories:
        groups[t.task_id].append(t)
    advantages = {}
    for members in groups.values():
        values = [rewards[t.id] for t in members]
        mean = sum(values) / len(values)
        std = math.sqrt(sum((r - mean) ** 2 for r in values) / len(values))
        for t, r in zip(members, values, strict=True):
            advantages[t.id] = 0.0 if std == 0 else (r - mean) / (std + eps if scale else 1.0)
    return advantages


def signal_groups(trajectories: Sequence[Trajectory], invalid_action_penalty: float = 0.0) -> set[str]:
    """The groups (task ids) whose episodes' rewards differ: the ones with a non-zero advantage."""
    rewards: dict[str, set[float]] = defaultdict(set)
    for t in trajectories:
        rewards[t.task_id].add(episode_reward(t, invalid_action_penalty))
    return {task for task, values in rewards.items() if len(values) > 1}


def rollout_rows(formatter: TrajectoryTokenizer, trajectory: Trajectory) -> list[tuple[TokenRow, list[float]]]:
    """(prompt + generated tokens, rollout log-probs) for every step of a rollout trajectory."""
    rows = []
    for index, step in enumerate(trajectory.steps):
        ids, logprobs = step.info.get("token_ids"), step.info.get("logprobs")
        if not ids or logprobs is None:
            raise RLError(f"{trajectory.id} step {index} has no generated token ids/log-probs; RL needs a backend "
                          "that reports them and rollouts with record_tokens=True")
        prompt = formatter.prompt_ids(formatter.messages(trajectory, index))
        recorded = step.info.get("prompt_tokens")
        if recorded is not None and recorded != len(prompt):
            raise RLError(f"{trajectory.id} step {index}: the rollout's prompt had {recorded} tokens, the trainer "
                          f"renders {len(prompt)}; prompt settings or tokenizer differ from the policy's")
        rows.append((TokenRow(prompt + list(ids), [False] * len(prompt) + [True] * len(ids)), list(logprobs)))
    return rows


def recompute_logprobs(model: Any, rows: Sequence[TokenRow], precision: str, micro_batch_size: int,
                       pad_id: int) -> list[torch.Tensor]:
    """Log-probabilities of every target token of every row under ``model`` (no gradient), per row."""
    device = next(model.parameters()).device
    out: list[torch.Tensor] = []
    with torch.no_grad():
        for start in range(0, len(rows), micro_batch_size):
            chunk = rows[start:start + micro_batch_size]
            batch = pad_rows(chunk, pad_id, device)
            with autocast(device, precision):
                flat = target_logprobs(model, batch).float().cpu()
            out += list(flat.split([r.n_targets for r in chunk]))
    return out


def sync_backend(backend: LMBackend, learner: Learner, directory: Path, version: int) -> str:
    """Push the learner's current weights to the generation backend; returns how it was done.

    LoRA: the adapter is saved to ``directory/v<version>`` and loaded by the backend: ``load_adapter``
    (in-process transformers and vLLM switch to it) or ``load_lora_adapter`` (a running vLLM server;
    each version gets its own name, which the backend's requests then use). Full weights: the
    backend's ``load_weights(state_dict)``, or for an in-process model the state dict copied into it
    (with its prefix cache off, since cached keys/values would belong to the old weights).
    """
    if learner.is_lora:
        path = directory / f"v{version:06d}"
        learner.model.save_pretrained(path)
        for old in sorted(directory.glob("v*"))[:-2]:  # keep the served adapter and its predecessor
            shutil.rmtree(old, ignore_errors=True)
        if hasattr(backend, "load_adapter"):
            backend.load_adapter(path, name="policy")
            return "adapter"
        if hasattr(backend, "load_lora_adapter"):
            name = f"policy-v{version}"
            backend.load_lora_adapter(name, str(path))
            backend.model = name  # requests name the adapter to be served with it
            return "server-adapter"
        raise RLError(f"the {backend.kind} backend cannot load LoRA adapters")
    state = {k: v.detach() for k, v in learner.model.state_dict().items()}
    if hasattr(backend, "load_weights"):
        backend.load_weights(state)
        return "weights"
    target = getattr(backend, "model", None)
    if isinstance(target, torch.nn.Module):
        backend.prefix_cache = False
        target.load_state_dict(state)
        return "in-process-weights"
    raise RLError(f"the {backend.kind} backend cannot take new full weights; train a LoRA adapter "
                  "(config.lora) to use it")


@dataclass
class IterationReport:
    iteration: int
    episodes: int
    mean_reward: float
    success_rate: float
    rows: int
    trained_rows: int
    loss: float
    clip_fraction: float
    kl: float
    rollout_logprob_gap: float  # max |rollout − recomputed| log-prob before the update
    groups: int = 0  # GRPO groups (tasks) of the iteration
    groups_with_signal: int = 0  # groups whose rewards differ, the only ones that move the policy
    policy_kl: float = 0.0  # KL(before ‖ after the update) on the iteration's sampled tokens (k3 estimate)


@dataclass
class RLResult:
    final_dir: Path
    iterations: int
    history: list[IterationReport] = field(default_factory=list)


class RLTrainer:
    """GRPO on a task pool with ``backend`` generating; call :meth:`train`."""

    def __init__(self, config: RLConfig, tasks: Sequence[Task], backend: LMBackend, ledger: Ledger | None = None,
                 resume: bool = True, make_env: Callable[[], Any] | None = None) -> None:
        """``make_env``: the rollout engine's environment maker (e.g. Ray actors); None plays in-process."""
        if not tasks:
            raise ValueError("RL needs at least one task")
        wrong_env = sorted({t.env for t in tasks} - {config.env})
        if wrong_env:
            raise ValueError(f"config.env is {config.env!r} but tasks come from {wrong_env}")
        self.config = config
        self.tasks = list(tasks)
        self.env_tasks = env_tasks(self.tasks)
        self.backend = backend
        self.ledger = ledger or Ledger(None, strategy="rl")
        self.learner = Learner(config, total_steps=config.iterations * config.updates_per_iteration
                               * config.epochs_per_iteration, resume=resume)
        self.formatter = TrajectoryTokenizer(self.learner.tokenizer, config.prompt)
        self.policy = LMPolicy(backend, SamplingParams(max_new_tokens=config.max_new_tokens,
                                                       temperature=config.temperature, top_p=config.top_p),
                               prompt_style=config.prompt.style, few_shot=config.prompt.few_shot,
                               history=config.prompt.history, name="rl", grounding=config.prompt.grounding)
        self.engine = RolloutEngine(self.policy, RolloutConfig(
            env=config.env, server_url=config.server_url, max_steps=config.max_episode_steps,
            concurrency=config.concurrency, source="rl", env_options=dict(config.env_options), progress=False),
            make_env=make_env)
        self.reference = self._reference_model() if config.kl_coef > 0 and config.lora is None else None
        self.iteration = int((self.learner.resumed_state or {}).get("iteration", 0))
        self.shape: ModelShape = self.learner.shape
        self.pad_id = self.learner.tokenizer.pad_token_id or 0

    def _reference_model(self) -> Any:
        """The initial policy, frozen, rebuilt from files (so it is the same after a resume).

        A fresh LoRA adapter needs none: switching the adapter off gives the initial policy back.
        """
        from peft import PeftModel

        from prism_train.modeling import load_causal_lm

        model = load_causal_lm(self.learner.base_path, self.config.weights_dtype, self.learner.device)
        if self.config.adapter:
            model = PeftModel.from_pretrained(model, self.config.adapter)
        return model.eval().requires_grad_(False)

    # -- phases -----------------------------------------------------------------------------------
    def _rollouts(self, iteration: int) -> list[Trajectory]:
        config = self.config
        rng = random.Random(derive_seed(config.seed, "tasks", iteration))
        chosen = rng.sample(self.env_tasks, min(config.tasks_per_iteration, len(self.env_tasks)))
        episodes = plan_episodes(config.env, chosen, source=f"rl-it{iteration}", samples=config.group_size,
                                 seed=derive_seed(config.seed, "episodes", iteration))
        path = Path(config.output_dir) / "rollouts" / f"iter-{iteration:06d}.jsonl"
        device = self.backend.compute_device()  # generation's, which may differ from the learner's
        with self.ledger.phase("rollout", device=device) as meter, TrajectoryWriter(path) as writer:
            new, stats = self.engine.run(episodes, writer=writer)
            meter.add(tokens=stats.prompt_tokens + stats.generated_tokens, flops=generation_flops(self.shape, new),
                      env_steps=stats.steps, device_s=stats.policy_s)
            meter.meta.update(iteration=iteration, episodes=stats.episodes, skipped=stats.skipped,
                              failed=stats.failed, success_rate=stats.success_rate)
        wanted = {e.id for e in episodes}
        trajectories = [t for t in read_trajectories(path) if t.id in wanted]
        if len(trajectories) != len(episodes):
            raise RLError(f"iteration {iteration}: {len(episodes) - len(trajectories)} episodes failed in the "
                          "environment; rerun to retry them")
        return trajectories

    def _samples(self, trajectories: Sequence[Trajectory]) -> list[Sample]:
        rewards = {t.id: episode_reward(t, self.config.invalid_action_penalty) for t in trajectories}
        advantages = group_advantages(trajectories, rewards, scale=self.config.scale_rewards)
        samples = []
        for trajectory in trajectories:
            if advantages[trajectory.id] == 0.0:
                continue
            for row, logprobs in rollout_rows(self.formatter, trajectory):
                samples.append(Sample(row, advantages[trajectory.id], logprobs))
        return samples

    def _policy_shift(self, samples: Sequence[Sample], meter) -> float:
        """How far the update moved the policy: the mean k3 estimate of KL(old ‖ new) over the sampled tokens
        (which the old policy drew), from one more forward pass with the updated weights."""
        rows = [s.row for s in samples]
        self.learner.model.eval()
        new = recompute_logprobs(self.learner.model, rows, self.config.precision, self.config.micro_batch_size,
                                 self.pad_id)
        lengths = [len(r.input_ids) for r in rows]
        meter.add(tokens=sum(lengths), flops=self.shape.forward_flops(lengths, sum(r.n_targets for r in rows)))
        log_ratio = torch.cat(new) - torch.cat([s.old_logprobs for s in samples])
        return float((torch.exp(log_ratio) - 1 - log_ratio).mean())

    def _reference_context(self):
        if self.config.kl_coef == 0 or self.reference is not None:
            return nullcontext()
        return self.learner.model.disable_adapter()

    def _update(self, samples: list[Sample], meter) -> tuple[float, float, float, float]:
        """Recompute old/reference log-probs, then the clipped-surrogate steps; (loss, clip frac, kl, gap)."""
        config, learner = self.config, self.learner
        rows = [s.row for s in samples]
        model = learner.model
        # Dropout off for the old log-probs *and* the surrogate (eval mode; gradients still flow): the
        # rollout sampled without it, and on-policy the ratio must be exactly 1, not dropout noise.
        model.eval()
        passes = 0
        if not self._on_policy:
            old = recompute_logprobs(model, rows, config.precision, config.micro_batch_size, self.pad_id)
            for sample, logprobs in zip(samples, old, strict=True):
                sample.old_logprobs = logprobs
            passes += 1
        if config.kl_coef > 0:
            with self._reference_context():
                ref = recompute_logprobs(self.reference or model, rows, config.precision, config.micro_batch_size,
                                         self.pad_id)
            for sample, logprobs in zip(samples, ref, strict=True):
                sample.ref_logprobs = logprobs
            passes += 1
        lengths = [len(r.input_ids) for r in rows]
        meter.add(tokens=sum(lengths) * passes,
                  flops=self.shape.forward_flops(lengths, sum(r.n_targets for r in rows)) * passes)
        generator = torch.Generator().manual_seed(derive_seed(config.seed, "minibatches", self.iteration))
        losses, clipped, kls, tokens_seen = [], 0.0, [], 0
        for _ in range(config.epochs_per_iteration):
            order = torch.randperm(len(samples), generator=generator).tolist()
            size = math.ceil(len(order) / config.updates_per_iteration)
            for start in range(0, len(order), size):
                step = [samples[i] for i in order[start:start + size]]
                total = sum(s.row.n_targets for s in step)
                step_loss = 0.0
                with meter.on_device():
                    for mb in range(0, len(step), config.micro_batch_size):
                        part, n_clipped, kl = self._micro_step(step[mb:mb + config.micro_batch_size], total)
                        step_loss += part
                        clipped += n_clipped
                        kls.append(kl)
                    learner.optimizer_step()
                tokens_seen += total
                losses.append(step_loss)
                step_lengths = [len(s.row.input_ids) for s in step]
                meter.add(tokens=sum(step_lengths), flops=learner.train_flops(step_lengths, total))
        gap = max(float((s.old_logprobs - torch.tensor(s.rollout_logprobs)).abs().max()) for s in samples)
        return (sum(losses) / len(losses), clipped / max(tokens_seen, 1), sum(kls) / max(len(kls), 1), gap)

    @property
    def _on_policy(self) -> bool:
        """One optimiser step over one pass: the surrogate's forward pass runs on the sampling weights."""
        return self.config.updates_per_iteration == 1 and self.config.epochs_per_iteration == 1

    def _micro_step(self, samples: Sequence[Sample], total_targets: int) -> tuple[float, float, float]:
        config, learner = self.config, self.learner
        batch = pad_rows([s.row for s in samples], self.pad_id, learner.device)
        with autocast(learner.device, config.precision):
            logprobs = target_logprobs(learner.model, batch).float()
        if self._on_policy:  # these weights sampled the rows: the old log-probs are this pass's
            for sample, own in zip(samples, logprobs.detach().cpu().split([s.row.n_targets for s in samples]),
                                   strict=True):
                sample.old_logprobs = own
        old = torch.cat([s.old_logprobs for s in samples]).to(logprobs.device)
        advantage = torch.cat([torch.full((s.row.n_targets,), s.advantage) for s in samples]).to(logprobs.device)
        ratio = torch.exp(logprobs - old)
        per_token = self._policy_loss(ratio, advantage)
        kl_value = 0.0
        if config.kl_coef > 0:
            ref = torch.cat([s.ref_logprobs for s in samples]).to(logprobs.device)
            kl = torch.exp(ref - logprobs) - (ref - logprobs) - 1  # k3 estimator, >= 0
            per_token = per_token + config.kl_coef * kl
            kl_value = float(kl.detach().mean())
        loss = per_token.sum() / total_targets
        loss.backward()
        n_clipped = float(((ratio - 1).abs() > config.clip_eps).sum())
        return float(loss.detach()), n_clipped, kl_value

    def _policy_loss(self, ratio: torch.Tensor, advantage: torch.Tensor) -> torch.Tensor:
        """Per-token loss ``−min(ρA, clip(ρ, 1−ε, 1+ε)A)``, PPO's pessimistic bound: once ρ has moved past
        ``1 ± ε`` in the direction the advantage pushes it, the token stops contributing a gradient."""
        eps = self.config.clip_eps
        return -torch.minimum(ratio * advantage, torch.clamp(ratio, 1 - eps, 1 + eps) * advantage)

    # -- the loop ---------------------------------------------------------------------------------
    def train(self, on_iteration: Callable[[IterationReport], None] | None = None) -> RLResult:
        config, learner = self.config, self.learner
        write_config(config)
        sync_dir = Path(config.output_dir) / "policy"
        # The backend must sample from the learner's weights (after a resume too).
        sync_backend(self.backend, learner, sync_dir, self.iteration)
        history: list[IterationReport] = []
        while self.iteration < config.iterations:
            trajectories = self._rollouts(self.iteration)
            samples = self._samples(trajectories)
            rewards = [t.reward for t in trajectories]
            groups = {t.task_id for t in trajectories}
            with_signal = signal_groups(trajectories, self.config.invalid_action_penalty)
            with self.ledger.phase("rl_update", sync=learner.sync, device=str(learner.device)) as meter:
                policy_kl = 0.0
                if samples:
                    loss, clip_fraction, kl, gap = self._update(samples, meter)
                    policy_kl = self._policy_shift(samples, meter)
                    sync_backend(self.backend, learner, sync_dir, self.iteration + 1)
                else:
                    loss = clip_fraction = kl = gap = 0.0
                    log.info("iteration %d: every group has equal rewards; no update", self.iteration)
                meter.meta.update(iteration=self.iteration, rows=len(samples), groups=len(groups),
                                  groups_with_signal=len(with_signal), policy_kl=policy_kl, kl_to_reference=kl,
                                  mean_reward=sum(rewards) / len(rewards))
            report = IterationReport(self.iteration, len(trajectories), sum(rewards) / len(rewards),
                                     sum(t.success for t in trajectories) / len(trajectories),
                                     sum(len(t.steps) for t in trajectories), len(samples), loss, clip_fraction, kl,
                                     gap, len(groups), len(with_signal), policy_kl)
            history.append(report)
            log.info("rl iteration %d/%d  reward %.3f  success %.2f  groups with signal %d/%d  rows %d  loss %.4f  "
                     "clip %.3f  kl %.4f  policy kl %.2e", self.iteration + 1, config.iterations, report.mean_reward,
                     report.success_rate, len(with_signal), len(groups), report.trained_rows, loss, clip_fraction, kl,
                     policy_kl)
            self.iteration += 1
            if (config.save_every and self.iteration % config.save_every == 0) or self.iteration == config.iterations:
                learner.save_checkpoint(self.iteration, {"iteration": self.iteration})
            if on_iteration is not None:
                on_iteration(report)
        return RLResult(learner.save_final(), self.iteration, history)


def rollout_callback(policy: Any, env: str, ledger: Ledger | None = None, output_dir: str | Path | None = None,
                     shape: ModelShape | None = None, max_steps: int | None = None, concurrency: int = 16,
                     server_url: str | None = None, make_env: Callable[[], Any] | None = None,
                     env_options: Mapping[str, Any] | None = None) -> RolloutFn:
    """A :data:`~prism_train.routers.RolloutFn` over the rollout engine (for the ``difficulty`` router).

    Episodes are written to ``output_dir/difficulty.jsonl`` when given (an interrupted call resumes)
    and counted in ``ledger`` as phase ``routing`` (FLOPs when the policy model's ``shape`` is given).
    ``make_env`` is the engine's environment maker (e.g. Ray actors); None plays in-process.
    ``env_options`` are the environment's engine options, as for any rollout.
    """
    engine = RolloutEngine(policy, RolloutConfig(env=env, server_url=server_url, max_steps=max_steps,
                                                 concurrency=concurrency, source="difficulty",
                                                 env_options=dict(env_options or {}), progress=False),
                           make_env=make_env)
    ledger = ledger or Ledger(None, strategy="difficulty")
    device = policy.backend.compute_device() if isinstance(policy, LMPolicy) else "cpu"

    def rollout(tasks: Sequence[Task], k: int, seed: int) -> list[Trajectory]:
        episodes = plan_episodes(env, env_tasks(tasks), source="difficulty", samples=k, seed=seed)
        writer = TrajectoryWriter(Path(output_dir) / "difficulty.jsonl") if output_dir else None
        with ledger.phase("routing", device=device) as meter, writer or nullcontext():
            new, stats = engine.run(episodes, writer=writer)
            meter.add(tokens=stats.prompt_tokens + stats.generated_tokens, flops=generation_flops(shape, new),
                      env_steps=stats.steps, device_s=stats.policy_s)
            meter.meta.update(purpose="difficulty routing", episodes=stats.episodes)
        if writer is None:
            return new
        wanted = {e.id for e in episodes}
        return [t for t in read_trajectories(writer.path) if t.id in wanted]

    return rollout


