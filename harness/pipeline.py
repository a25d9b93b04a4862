"""What one cell of ``harness eval`` does: route the expert data, SFT, RL, evaluate on held-out tasks.

Work that every strategy of an (environment, seed) shares is done once and kept on disk under
``RUN/shared/<env>/seed<k>/``: the expert trajectories (resumable per episode), the initial model (a
tiny model is built from a config with a tokenizer trained on those trajectories), and the probe
scores of that initial model. Each shared phase finishes by writing a ``<phase>.done.json`` marker that
holds its ledger entries, and the shared ``ledger.jsonl`` is always rebuilt from the markers, so a
kill at any moment can neither lose nor double-count shared compute. Cell-level work goes to the
cell's own ledger; the runner wipes an unfinished cell before it runs again.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agents.local_envs import InProcessEnvProviders
from agents.models import ALIASES, is_prepared
from agents.registry import make_policy
from agents.rollout import RolloutConfig, RolloutEngine
from agents.tasks import plan_episodes, split_tasks
from agents.tiny_models import TinyModelConfig, save_tiny_model
from environments.core.registry import UnknownEnvError, get_env_spec
from environments.core.trajectory import TrajectoryWriter, read_trajectories
from foundation.jsonl import write_records
from foundation.records import EpisodeResult, LedgerEntry, RoutingSummary, RunDir, append_jsonl, write_json_atomic
from harness.base_model import BaseModel, BaseRecipe, ensure_base, pretrain_tasks, tokenizer_texts
from harness.base_model import Progress as BaseProgress
from harness.config import UNTRAINED, EnvRunConfig, EvalConfig
from harness.runner import CellContext
from prism_train.config import PromptConfig
from prism_train.flops import ModelShape
from prism_train.ledger import Ledger
from prism_train.routers import REGISTRY as ROUTERS
from prism_train.routers import (
    RouterError,
    RoutingRequest,
    Task,
    UnknownRouterError,
    get_router,
    route,
    write_decision,
)
from prism_train.scores import read_scores, write_scores

if TYPE_CHECKING:
    from harness.distributed import EnvProviders

log = logging.getLogger(__name__)

# Shared phases every training strategy is charged for (the probe is added for routers that need scores).
SHARED_PHASES_ALWAYS = ("expert",)


def _shape(model_dir: Path):
    """The FLOP model's view of a saved model (read from its config.json)."""
    return ModelShape.from_config(json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8")))


def _spread(values: Sequence[float]) -> dict[str, float]:
    """Minimum, quartiles and maximum: whether the probe's scores can separate trajectories at all."""
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[round(q * (len(ordered) - 1))]

    return {"min": at(0.0), "q25": at(0.25), "median": at(0.5), "q75": at(0.75), "max": at(1.0)}


class PlanError(ValueError):
    """The config names something that does not exist (environment, split, strategy, model, backend)."""


def _train_tasks(env: EnvRunConfig, seed: int) -> list[Any]:
    """The training tasks of one seed: a seeded sample of the train split, in a fixed order."""
    reserved = {t.task_id for t in _pretrain_tasks(env)}  # the base's pretraining split: no cell trains on it
    tasks = [t for t in split_tasks(env.name, env.train_split) if t.task_id not in reserved]
    if len(tasks) < env.train_tasks:
        raise PlanError(f"{env.name}: split {env.train_split!r} has {len(tasks)} tasks besides the "
                        f"{len(reserved)} pretraining tasks, fewer than train_tasks={env.train_tasks}")
    chosen = random.Random(f"train-tasks:{env.name}:{seed}").sample(range(len(tasks)), env.train_tasks)
    return [tasks[i] for i in sorted(chosen)]


def _pretrain_tasks(env: EnvRunConfig) -> list[Any]:
    """The tasks the pretrained base learns from (none when the base is not pretrained)."""
    try:
        return pretrain_tasks(env.name, env.train_split, env.pretrain_tasks)
    except ValueError as exc:
        raise PlanError(str(exc)) from None


def _eval_tasks(env: EnvRunConfig, split: str) -> list[Any]:
    return split_tasks(env.name, split, env.eval_episodes)


def _model_check(cfg: EvalConfig) -> str:
    source = cfg.model.source
    if source == "tiny":
        shape = (f"hidden {cfg.model.tiny_hidden_size}, {cfg.model.tiny_layers} layers, tokenizer of "
                 f"{cfg.model.tiny_vocab_size}")
        pretrained = [f"{env.name} ({env.pretrain_tasks} tasks)" for env in cfg.envs if env.pretrain_tasks]
        if pretrained:
            return (f"model: a tiny Llama ({shape}) pretrained once per environment on the expert data of its "
                    f"pretraining split, {cfg.model.pretrain_epochs} epochs: {', '.join(pretrained)}; cached and "
                    "shared by every cell and seed; random init per seed for any other environment")
        return f"model: a tiny Llama built per environment and seed ({shape}, tokenizer trained on the expert data)"
    if source in ALIASES:
        if not is_prepared(source):
            raise PlanError(f"model {source!r} is not prepared yet: run `harness models prepare {source}`")
        return f"model: {source} (prepared)"
    if Path(source).is_dir():
        if not (Path(source) / "config.json").exists():
            raise PlanError(f"model directory {source} has no config.json")
        return f"model: local directory {source}"
    if source.count("/") != 1 or any(part.strip() == "" for part in source.split("/")):
        raise PlanError(f"model source {source!r} is neither 'tiny', a prepared model, a directory, nor a hub id")
    return f"model: hub id {source} (downloaded at run time; needs access to the model hub)"


def _caps(env: EnvRunConfig) -> str:
    """The plan's words for the step caps: evaluation's, and the training rollouts' where it differs."""
    cap = env.max_steps or get_env_spec(env.name).default_max_steps
    train = env.training_step_cap or cap
    return f"; step cap {cap}" + (f" (training rollouts {train})" if train != cap else "")


def check_plan(cfg: EvalConfig) -> list[str]:
    """Validate the config against what is installed and on disk; lines describing the plan."""
    lines = []
    for env in cfg.envs:
        try:
            get_env_spec(env.name)
        except UnknownEnvError as exc:
            raise PlanError(str(exc)) from None
        try:
            train = _train_tasks(env, cfg.seeds[0])
            evals = {split: _eval_tasks(env, split) for split in env.eval_splits}
        except ValueError as exc:
            raise PlanError(f"{env.name}: {exc}") from None
        if env.expert:
            try:
                get_env_spec(env.name).make_expert(**env.expert)
            except (TypeError, ValueError) as exc:
                raise PlanError(f"{env.name}: expert options {env.expert}: {exc}") from None
        pretrain = _pretrain_tasks(env)
        train_ids = {t.task_id for t in [*train, *pretrain]}
        leaked = {split: len(train_ids & {t.task_id for t in tasks}) for split, tasks in evals.items()}
        if any(leaked.values()):
            raise PlanError(f"{env.name}: evaluation tasks overlap the training or pretraining tasks: {leaked}")
        lines.append(f"{env.name}: {len(train)} training tasks from {env.train_split!r}"
                     + (f" (besides {len(pretrain)} pretraining tasks of the base)" if pretrain else "")
                     + "; evaluation on "
                     + ", ".join(f"{split} ({len(tasks)} episodes)" for split, tasks in evals.items())
                     + _caps(env)
                     + (f"; expert {', '.join(f'{k}={v}' for k, v in env.expert.items())}" if env.expert else ""))
    known = set(ROUTERS.names())  # names only: each strategy's plugin is loaded (and checked) below
    unknown = [s for s in cfg.strategies if s not in known]
    if unknown:
        raise PlanError(f"unknown strategies {unknown}; installed: {', '.join(sorted(known))}")
    for strategy in cfg.strategies:
        try:
            ROUTERS.get(strategy)
        except UnknownRouterError as exc:  # installed but broken: the error names the plugin
            raise PlanError(str(exc)) from None

    for strategy, options in cfg.router_options.items():  # a strategy left out keeps its options unused
        if strategy not in known:
            raise PlanError(f"router_options names {strategy!r}, which is not an installed strategy; "
                            f"installed: {', '.join(sorted(known))}")
        try:
            get_router(strategy, **options)
        except (RouterError, UnknownRouterError, ValueError) as exc:
            raise PlanError(f"router_options.{strategy}: {exc}") from None
    lines.append(_model_check(cfg))
    strategies = len(cfg.strategies) + int(cfg.include_untrained)
    once = [env.name for env in cfg.envs if cfg.include_untrained and len(cfg.untrained_seeds(env)) < len(cfg.seeds)]
    lines.append(f"matrix: {len(cfg.envs)} environments × {strategies} strategies × {len(cfg.seeds)} seeds = "
                 f"{len(cfg.cells())} cells" + (f" (the untrained policy of {', '.join(once)} once: greedy from the "
                                                 "shared base, it is the same on every seed)" if once else ""))
    return lines


@dataclass
class SharedWork:
    """What all strategies of one (environment, seed) start from."""

    trajectories: list[Any]  # successful expert trajectories (the SFT pool)
    tasks: list[Any]  # prism_train.routers.Task pool for RL
    model_dir: Path
    scores: dict[str, Any] | None = None


class TrainingPipeline:
    """The real cell work; ``harness eval`` hands one instance to the runner."""

    def __init__(self, cfg: EvalConfig, run: RunDir | None, envs: EnvProviders | None = None) -> None:
        """``run`` None: no run directory, for :meth:`pretrained_base` alone (``harness eval --prepare``)."""
        import torch
        from transformers.utils import logging as hf_logging

        torch.set_num_threads(cfg.torch_threads)
        hf_logging.disable_progress_bar()  # the live table is the progress display
        self.cfg = cfg
        self.run = run
        self.envs = envs  # [scale-out] where every rollout's sessions live; None: in-process (or server_url)
        # In-process sessions: one engine factory per configuration for the whole run (ALFWorld's worker
        # pool starts once, not per cell and phase); closed by close().
        self._local_envs = InProcessEnvProviders()
        self._shared: dict[tuple[str, int], SharedWork] = {}

    # -- shared work --------------------------------------------------------------------------------
    def _shared_dir(self, env: str, seed: int) -> Path:
        if self.run is None:
            raise RuntimeError("this pipeline has no run directory: it only builds pretrained bases")
        return self.run.shared_dir(env, seed)

    def _done_marker(self, env: str, seed: int, phase: str) -> Path:
        return self._shared_dir(env, seed) / f"{phase}.done.json"

    def _finish_shared_phase(self, env: str, seed: int, phase: str, entries: Sequence[Any], extra: dict) -> None:
        write_json_atomic(self._done_marker(env, seed, phase),
                          {"version": 1, "phase": phase, "ledger": [e.to_json() for e in entries], **extra})
        self._rebuild_shared_ledger(env, seed)

    def _rebuild_shared_ledger(self, env: str, seed: int) -> None:
        shared = self._shared_dir(env, seed)
        entries = []
        for marker in sorted(shared.glob("*.done.json")):
            entries.extend(json.loads(marker.read_text(encoding="utf-8"))["ledger"])
        write_records(shared / "ledger.jsonl", entries)

    def shared(self, env: EnvRunConfig, seed: int, ctx: CellContext, needs_scores: bool) -> SharedWork:
        key = (env.name, seed)
        if key not in self._shared:
            trajectories, tasks = self._expert(env, seed, ctx)
            model_dir = self._base_model(env, seed, trajectories, ctx)
            self._shared[key] = SharedWork(trajectories, tasks, model_dir)
        work = self._shared[key]
        if needs_scores and work.scores is None:
            work.scores = self._probe(env, seed, work, ctx)
        return work

    def _play_expert(self, env: EnvRunConfig, episodes: list[Any], path: Path, run: str,
                     advance: Callable[[int], None]) -> list[Any]:
        """Play ``episodes`` with the expert into ``path`` (resumable); the ledger entries of doing so."""
        engine = self._engine(make_policy("expert", **env.expert), env,
                              self._rollout_config(env, "expert", capped=False))
        ledger = Ledger(None, strategy="shared", run=run)
        with TrajectoryWriter(path) as writer, ledger.phase("expert") as meter:
            _, stats = engine.run(episodes, writer=writer, on_finish=lambda _trajectory: advance(1))
            meter.add(env_steps=stats.steps)
        return ledger.entries

    def _expert(self, env: EnvRunConfig, seed: int, ctx: CellContext) -> tuple[list[Any], list[Any]]:
        shared = self._shared_dir(env.name, seed)
        path = shared / "expert.jsonl"
        tasks = _train_tasks(env, seed)
        if not self._done_marker(env.name, seed, "expert").exists():
            ctx.phase("expert data", total=len(tasks))
            entries = self._play_expert(env, plan_episodes(env.name, tasks, source="expert", seed=seed), path,
                                        f"{env.name}-seed{seed}", ctx.progress.advance)
            trajectories = list(read_trajectories(path))
            self._finish_shared_phase(env.name, seed, "expert", entries,
                                      {"episodes": len(trajectories),
                                       "successes": sum(t.success for t in trajectories)})
        trajectories = [t for t in read_trajectories(path) if t.success]
        if len(trajectories) < 2:
            raise RuntimeError(f"{env.name}: the expert succeeded on only {len(trajectories)} training tasks")
        pool = [Task(env.name, t.task_id, task=t.task, split=env.train_split) for t in trajectories]
        return trajectories, pool

    def _base_model(self, env: EnvRunConfig, seed: int, trajectories: list[Any], ctx: CellContext) -> Path:
        source = self.cfg.model.source
        if source != "tiny":
            from prism_train.trainer import resolve_model_path

            return Path(resolve_model_path(source))
        if env.pretrain_tasks:
            return self._pretrained_base(env, seed, ctx)
        target = self._shared_dir(env.name, seed) / "base_model"
        if (target / "config.json").exists():
            return target
        ctx.phase("building tiny model")

        tmp = target.with_name(".base_model.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        texts = tokenizer_texts(trajectories, self._prompt_config(env.name))
        save_tiny_model(texts, tmp, self._tiny_config(), seed=seed)
        tmp.rename(target)
        return target

    def _tiny_config(self):
        m = self.cfg.model
        return TinyModelConfig(vocab_size=m.tiny_vocab_size, hidden_size=m.tiny_hidden_size,
                               intermediate_size=m.tiny_hidden_size * 8 // 3, num_hidden_layers=m.tiny_layers,
                               max_position_embeddings=4096)

    def pretrained_base(self, env: EnvRunConfig, progress: BaseProgress) -> BaseModel:
        """``env``'s pretrained base: from the cache, or built now (``harness eval --prepare`` builds every
        base of a config ahead of its run)."""
        recipe = BaseRecipe(env=env.name, split=env.train_split,
                            task_ids=tuple(t.task_id for t in _pretrain_tasks(env)),
                            model=asdict(self._tiny_config()), epochs=self.cfg.model.pretrain_epochs,
                            learning_rate=self.cfg.model.pretrain_learning_rate,
                            batch_size=self.cfg.sft.micro_batch_size, prompt=self._prompt_config(env.name).model_dump(),
                            torch_threads=self.cfg.torch_threads, expert=dict(env.expert))

        def play(episodes: list[Any], path: Path, advance: Callable[[int], None]) -> list[dict[str, Any]]:
            return [e.to_json() for e in self._play_expert(env, episodes, path, f"{env.name}-base", advance)]

        return ensure_base(recipe, play, progress)

    def _pretrained_base(self, env: EnvRunConfig, seed: int, ctx: CellContext) -> Path:
        """The environment's pretrained base (cached across runs); its cost is recorded, as phase
        ``pretrain``, in the shared ledger, where no strategy is charged for it."""
        def progress(phase: str, total: int) -> Callable[[int], None]:
            ctx.phase(phase, total=total)
            return ctx.progress.advance

        base = self.pretrained_base(env, progress)
        if not self._done_marker(env.name, seed, "pretrain").exists():
            self._finish_shared_phase(env.name, seed, "pretrain", [LedgerEntry.from_json(e) for e in base.ledger],
                                      {"base_model": str(base.path), "key": base.key, "built_here": base.built})
        return base.path

    def _probe(self, env: EnvRunConfig, seed: int, work: SharedWork, ctx: CellContext) -> dict[str, Any]:
        from prism_train.formatting import TrajectoryTokenizer
        from prism_train.modeling import load_causal_lm, load_tokenizer
        from prism_train.probe import probe

        path = self._shared_dir(env.name, seed) / "probe.jsonl"
        if self._done_marker(env.name, seed, "probe").exists():
            return read_scores(path)
        ctx.phase("probe", total=len(work.trajectories))
        tokenizer = load_tokenizer(work.model_dir)
        model = load_causal_lm(work.model_dir)
        tokenized = TrajectoryTokenizer(tokenizer, self._prompt_config(env.name)).tokenize_all(work.trajectories)
        ledger = Ledger(None, strategy="shared", run=f"{env.name}-seed{seed}")
        scores = probe(model, work.trajectories, tokenized, self.cfg.probe, ledger=ledger,
                       model_name=str(work.model_dir))
        write_scores(path, scores)
        spread = _spread([score.statistics["gini"] for score in scores])
        log.info("%s seed %d: probe Gini over %d trajectories: min %.3f, quartiles %.3f / %.3f / %.3f, max %.3f",
                 env.name, seed, len(scores), *spread.values())
        self._finish_shared_phase(env.name, seed, "probe", ledger.entries,
                                  {"trajectories": len(scores), "gini": spread})
        return read_scores(path)

    # -- one cell -----------------------------------------------------------------------------------
    def _history(self, env: str) -> int | None:
        """Past steps the prompt shows in ``env``: the environment's own setting, else the prompt section's."""
        own = next(e.history for e in self.cfg.envs if e.name == env)
        return self.cfg.prompt.history if own == "prompt" else own

    def _prompt_config(self, env: str) -> PromptConfig:
        """The prompt section, with ``env``'s own history."""
        return self.cfg.prompt.model_copy(update={"history": self._history(env)})

    def _policy(self, env: str, model_dir: Path, temperature: float, adapter: Path | None = None):
        """The configured generation backend serving ``model_dir`` (plus a LoRA adapter) as an agent."""
        options = {"adapter": str(adapter)} if adapter else {}
        prompt = self._prompt_config(env)
        return make_policy(self.cfg.model.backend, model=str(model_dir), max_new_tokens=self.cfg.model.max_new_tokens,
                           temperature=temperature, prompt_style=prompt.style, few_shot=prompt.few_shot,
                           history=prompt.history, grounding=prompt.grounding, **options)

    def _rollout_config(self, env: EnvRunConfig, source: str, capped: bool = True):
        """Rollouts of the agent use the configured step cap; the expert plays under the environment's own."""
        return RolloutConfig(env=env.name, server_url=env.server_url, max_steps=env.max_steps if capped else None,
                             concurrency=self.cfg.rollout_concurrency, source=source, env_options=dict(env.options),
                             progress=False)

    def _make_env(self, env: EnvRunConfig, max_steps: int | None) -> Callable[[], Any] | None:
        """A rollout's ``make_env``: the run's sessions (``--ray``, or in-process ones shared by the whole
        run), or None for the engine's own sessions on the env's ``server_url``."""
        if self.envs is not None:  # [scale-out]
            return self.envs.provider(env.name, max_steps, env.options)
        if env.server_url is not None:
            return None
        return self._local_envs.provider(env.name, max_steps, env.options)

    def _engine(self, policy: Any, env: EnvRunConfig, config: RolloutConfig) -> RolloutEngine:
        """A rollout engine for ``config`` whose environment sessions live where the run says."""
        return RolloutEngine(policy, config, make_env=self._make_env(env, config.max_steps))

    def close(self) -> None:
        """Stop the run's in-process engines (ALFWorld's workers)."""
        self._local_envs.close()

    def run_cell(self, env: EnvRunConfig, strategy: str, seed: int, ctx: CellContext) -> None:
        ledger = Ledger(ctx.dir / "ledger.jsonl", strategy=strategy, run=ctx.status.cell_id)
        if strategy == UNTRAINED:
            work = self.shared(env, seed, ctx, needs_scores=False)
            write_json_atomic(ctx.dir / "routing.json",
                              RoutingSummary(strategy, 0, 0, {"no training": 1}, list(SHARED_PHASES_ALWAYS)).to_json())
            self._evaluate(env, seed, work.model_dir, None, ledger, ctx)
            return
        options = self.cfg.router_options.get(strategy, {})
        router = get_router(strategy, **options)
        work = self.shared(env, seed, ctx, needs_scores="scores" in router.requires)
        ctx.phase("routing")
        rollout = self._difficulty_rollout(env, work, ledger, ctx) if "rollout" in router.requires else None
        decision = route(strategy, RoutingRequest(trajectories=work.trajectories, scores=work.scores or {},
                                                  tasks=work.tasks, seed=seed, rollout=rollout), **options)
        write_decision(ctx.dir / "routing.jsonl", decision)
        reasons: dict[str, int] = {}
        for reason in [*decision.sft_reasons.values(), *decision.rl_reasons.values()]:
            reasons[reason] = reasons.get(reason, 0) + 1
        shared_phases = list(SHARED_PHASES_ALWAYS) + (["probe"] if "scores" in router.requires else [])
        write_json_atomic(ctx.dir / "routing.json", RoutingSummary(strategy, len(decision.sft), len(decision.rl),
                                                                   reasons, shared_phases).to_json())
        model_dir, adapter = work.model_dir, None
        if decision.sft:
            model_dir, adapter = self._sft(decision.sft, work.model_dir, seed, ledger, ctx)
        if decision.rl:
            model_dir, adapter = self._rl(env, decision.rl, model_dir, adapter, seed, ledger, ctx)
        self._evaluate(env, seed, model_dir, adapter, ledger, ctx)

    def _run_fields(self, env: str, model_dir: Path, adapter: Path | None, seed: int, out: Path) -> dict[str, Any]:
        """What a trainer is given besides its section: the model, where to write, the seed, the prompt, and
        LoRA (keep training ``adapter`` if there is one, else start a fresh one)."""
        lora = self.cfg.model.lora
        fields = {"model": str(model_dir), "output_dir": str(out), "seed": seed,
                  "prompt": self._prompt_config(env), "weights_dtype": self.cfg.model.dtype}
        if lora is not None:
            fields.update({"adapter": str(adapter)} if adapter else {"lora": lora})
        return fields

    def _sft(self, trajectories: list[Any], model_dir: Path, seed: int, ledger: Any,
             ctx: CellContext) -> tuple[Path, Path | None]:
        from prism_train.sft import SFTConfig, SFTTrainer

        ctx.phase("sft", total=len(trajectories))
        config = SFTConfig(**self.cfg.sft.model_dump(),
                           **self._run_fields(ctx.status.env, model_dir, None, seed, ctx.dir / "sft"))
        final = Path(SFTTrainer(config, trajectories, ledger=ledger, resume=False).train().final_dir)
        return (model_dir, final) if self.cfg.model.lora is not None else (final, None)

    def _rl(self, env: EnvRunConfig, tasks: list[Any], model_dir: Path, adapter: Path | None, seed: int,
            ledger: Any, ctx: CellContext) -> tuple[Path, Path | None]:
        from prism_train.rl import RLConfig, RLTrainer

        ctx.phase("rl", total=self.cfg.rl.iterations)
        config = RLConfig(**self.cfg.rl.model_dump(),
                          **self._run_fields(env.name, model_dir, adapter, seed, ctx.dir / "rl"),
                          env=env.name, max_new_tokens=self.cfg.model.max_new_tokens,
                          max_episode_steps=env.training_step_cap,
                          concurrency=self.cfg.rollout_concurrency, server_url=env.server_url,
                          env_options=dict(env.options))
        policy = self._policy(env.name, model_dir, temperature=config.temperature, adapter=adapter)
        try:
            make_env = self._make_env(env, env.training_step_cap)  # the trainer's engine: step cap, env options
            result = RLTrainer(config, tasks, policy.backend, ledger=ledger, resume=False, make_env=make_env).train(
                on_iteration=lambda report: ctx.progress.advance(1, episodes=report.episodes))
        finally:
            policy.close()
        final = Path(result.final_dir)
        return (model_dir, final) if self.cfg.model.lora is not None else (final, None)

    def _difficulty_rollout(self, env: EnvRunConfig, work: SharedWork, ledger: Any, ctx: CellContext):
        from prism_train.rl import rollout_callback

        ctx.phase("difficulty rollouts")
        policy = self._policy(env.name, work.model_dir, temperature=self.cfg.rl.temperature)
        return rollout_callback(policy, env.name, ledger=ledger, output_dir=ctx.dir,
                                shape=_shape(work.model_dir), max_steps=env.training_step_cap,
                                concurrency=self.cfg.rollout_concurrency, server_url=env.server_url,
                                env_options=env.options, make_env=self._make_env(env, env.training_step_cap))

    def _evaluate(self, env: EnvRunConfig, seed: int, model_dir: Path, adapter: Path | None, ledger: Any,
                  ctx: CellContext) -> None:
        from prism_train.rl import generation_flops

        policy = self._policy(env.name, model_dir, temperature=self.cfg.temperature_eval, adapter=adapter)
        shape = _shape(model_dir)
        try:
            for split in env.eval_splits:
                tasks = _eval_tasks(env, split)
                ctx.phase(f"eval {split}", total=len(tasks))
                engine = self._engine(policy, env, self._rollout_config(env, "eval"))
                episodes = plan_episodes(env.name, tasks, source=f"eval-{split}", seed=seed)
                device = policy.backend.compute_device()  # generation's, which may differ from training's
                with TrajectoryWriter(ctx.dir / f"eval-{split}.jsonl") as writer, \
                        ledger.phase("evaluation", device=device) as meter:
                    trajectories, stats = engine.run(episodes, writer=writer)
                    meter.add(tokens=stats.prompt_tokens + stats.generated_tokens,
                              flops=generation_flops(shape, trajectories), env_steps=stats.steps,
                              device_s=stats.policy_s)
                ctx.progress.advance(len(trajectories), episodes=len(trajectories))
                append_jsonl(ctx.dir / "episodes.jsonl", [
                    _episode_result(t, env.name, ctx.status.strategy, seed, split).to_json() for t in trajectories
                ])
        finally:
            policy.close()
        log.info("%s: evaluated in %.0fs", ctx.status.cell_id, time.monotonic() - ctx.progress.phase_started)


def _episode_result(trajectory: Any, env: str, strategy: str, seed: int, split: str) -> EpisodeResult:
    """One evaluation episode as the leaderboard reads it; task type and reward rule come from its reset info."""
    reset_info = trajectory.metadata.get("reset_info") or {}
    return EpisodeResult(env=env, strategy=strategy, seed=seed, split=split, task_id=trajectory.task_id,
                         reward=trajectory.reward, success=trajectory.success, steps=len(trajectory.steps),
                         task_type=str(reset_info.get("task_type", "")),
                         reward_rule=str(reset_info.get("reward_rule", "")))
