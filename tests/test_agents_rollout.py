"""The rollout engine on real environments: batching, records, resumption, groups, remote play, the CLI."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from agents.policy import Policy
from agents.registry import UnknownPolicyError, make_policy, policy_specs
from agents.rollout import RolloutConfig, RolloutEngine
from agents.tasks import plan_episodes, split_tasks
from environments.core.trajectory import TrajectoryWriter, read_trajectories


@pytest.fixture(scope="module")
def tiny_policy(varied_tiny_model_dir):
    """A real tiny LM behind the ReAct WebShop prompt (no worked example: the tiny context is 2048 tokens)."""
    return make_policy("transformers", model=str(varied_tiny_model_dir), max_new_tokens=12, few_shot=False,
                       history=1, temperature=1.0)


def webshop_episodes(source: str, tasks: int = 4, samples: int = 1, seed: int = 0):
    return plan_episodes("webshop", split_tasks("webshop", "test", tasks), source, samples=samples, seed=seed)


def test_engine_batches_policy_calls_and_records_tokens(tiny_policy, tmp_path):
    engine = RolloutEngine(tiny_policy, RolloutConfig(env="webshop", max_steps=5, concurrency=4, progress=False))
    calls_before = tiny_policy.calls
    with TrajectoryWriter(tmp_path / "t.jsonl") as writer:
        trajectories, stats = engine.run(webshop_episodes("transformers"), writer)
    assert stats.episodes == 4 and stats.failed == 0
    # 4 episodes x up to 5 steps, played in lock-step: one batched call per step of all of them
    assert stats.steps > stats.policy_calls == tiny_policy.calls - calls_before
    assert stats.policy_calls <= 5
    assert max(step.info["batch_size"] for t in trajectories for step in t.steps) == 4
    written = list(read_trajectories(tmp_path / "t.jsonl"))
    assert [t.id for t in written] == [t.id for t in trajectories]
    for trajectory in written:
        assert trajectory.source == "transformers" and trajectory.env == "webshop"
        assert trajectory.metadata["generated_tokens"] == sum(s.info["generated_tokens"] for s in trajectory.steps)
        assert trajectory.metadata["prompt_tokens"] == sum(s.info["prompt_tokens"] for s in trajectory.steps) > 0
        assert trajectory.metadata["policy"]["backend"] == "transformers"
        for step in trajectory.steps:
            assert len(step.info["token_ids"]) == len(step.info["logprobs"]) == step.info["generated_tokens"] > 0
            assert step.info["policy_time_s"] > 0 and step.info["env_time_s"] >= 0
            assert "available_actions" in step.info
    assert stats.tokens_per_s > 0 and stats.episodes_per_s > 0


def test_unparseable_outputs_are_recorded(tiny_policy):
    """A random tiny model rarely writes a valid action: each failure is in the step info and counted."""
    engine = RolloutEngine(tiny_policy, RolloutConfig(env="webshop", max_steps=3, concurrency=2, progress=False))
    trajectories, stats = engine.run(webshop_episodes("transformers", tasks=2))
    failures = [s for t in trajectories for s in t.steps if "parse_error" in s.info]
    assert failures, "the tiny random model should produce unparseable replies"
    assert stats.parse_failures == len(failures) == sum(t.metadata["parse_failures"] for t in trajectories)
    for step in failures:
        assert step.info["output"] and step.action  # the raw reply is kept; a sanitised action was sent


class Interrupting(Policy):
    """A real policy that is interrupted (as by Ctrl-C) at its ``at``-th call."""

    def __init__(self, inner: Policy, at: int) -> None:
        self.inner, self.at, self.name = inner, at, inner.name

    def start_episode(self, *args) -> None:
        self.inner.start_episode(*args)

    def end_episode(self, episode_id: str) -> None:
        self.inner.end_episode(episode_id)

    def act(self, turns, n=1):
        self.at -= 1
        if self.at == 0:
            raise KeyboardInterrupt
        return self.inner.act(turns, n)


def test_an_interrupted_run_resumes_without_redoing_finished_episodes(tmp_path):
    expert = make_policy("expert")
    episodes = webshop_episodes("expert", tasks=6)
    path = tmp_path / "resume.jsonl"
    engine = RolloutEngine(Interrupting(expert, at=6), RolloutConfig(env="webshop", concurrency=2, progress=False))
    with pytest.raises(KeyboardInterrupt), TrajectoryWriter(path) as writer:
        engine.run(episodes, writer)
    finished = [t.id for t in read_trajectories(path)]
    assert 0 < len(finished) < 6
    with open(path, "a") as fh:  # a crash in the middle of a write leaves a torn last line
        fh.write('{"version": 1, "id": "torn')
    with TrajectoryWriter(path) as writer:
        resumed, stats = RolloutEngine(expert, RolloutConfig(env="webshop", concurrency=2, progress=False)).run(
            episodes, writer)
    assert stats.skipped == len(finished) and stats.episodes == 6 - len(finished)
    assert not {t.id for t in resumed} & set(finished)
    assert sorted(t.id for t in read_trajectories(path)) == sorted(e.id for e in episodes)


def test_group_rollouts_have_distinct_seeds_and_samples(tiny_policy):
    episodes = webshop_episodes("transformers", tasks=2, samples=3, seed=5)
    assert len({e.seed for e in episodes}) == 6
    assert [e.id for e in episodes][:3] == [f"webshop/transformers/goal-0/s{k}" for k in range(3)]
    assert episodes == webshop_episodes("transformers", tasks=2, samples=3, seed=5)  # reproducible
    engine = RolloutEngine(tiny_policy, RolloutConfig(env="webshop", max_steps=2, concurrency=6, progress=False))
    trajectories, _ = engine.run(episodes)
    group = [t for t in trajectories if t.metadata["group"] == "goal-0"]
    assert sorted(t.metadata["sample"] for t in group) == [0, 1, 2]
    assert len({tuple(t.steps[0].info["token_ids"]) for t in group}) == 3  # same prompt, different samples


def test_expert_on_a_remote_webshop_server_plays_like_in_process():
    from environments.core.registry import get_env_spec
    from environments.core.server import RunningServer, ServerSettings, create_app

    spec = get_env_spec("webshop")
    factory = spec.make_factory()
    settings = ServerSettings(port=0, max_sessions=8)
    episodes = webshop_episodes("expert", tasks=4)
    local, _ = RolloutEngine(make_policy("expert"), RolloutConfig(env="webshop", progress=False)).run(episodes)
    with RunningServer(create_app("webshop", factory, settings), settings) as server:
        engine = RolloutEngine(make_policy("expert"),
                               RolloutConfig(env="webshop", server_url=server.url, concurrency=4, env_threads=4,
                                             progress=False))
        remote, stats = engine.run(episodes)
    assert stats.success_rate == 1.0
    assert [(t.id, t.actions, t.reward) for t in remote] == [(t.id, t.actions, t.reward) for t in local]


def test_random_baseline_and_alfworld(tiny_policy):
    random_trajectories, _ = RolloutEngine(
        make_policy("random", seed=3), RolloutConfig(env="webshop", max_steps=4, concurrency=3, progress=False)
    ).run(webshop_episodes("random", tasks=3))
    for trajectory in random_trajectories:
        for step in trajectory.steps:
            offered = step.info["available_actions"]
            assert step.action.startswith("search[") or step.action[6:-1] in offered["clickables"]

    games = split_tasks("alfworld", "valid_seen", 2)
    expert, stats = RolloutEngine(make_policy("expert"), RolloutConfig(env="alfworld", progress=False)).run(
        plan_episodes("alfworld", games, "expert"))
    assert stats.success_rate == 1.0 and all(t.reward == 1.0 for t in expert)
    lm, lm_stats = RolloutEngine(tiny_policy, RolloutConfig(env="alfworld", max_steps=3, progress=False)).run(
        plan_episodes("alfworld", games, "transformers"))
    assert lm_stats.episodes == 2 and all(len(t.steps) == 3 and t.truncated for t in lm)
    assert all(isinstance(s.info["available_actions"], list) for t in lm for s in t.steps)


def test_in_process_providers_start_alfworld_workers_once_for_every_rollout(tiny_policy):
    """A run's rollouts share one engine factory per configuration (harness eval: every cell): ALFWorld's worker
    pool starts once, not per rollout, and plays exactly what an engine's own, fresh sessions play."""
    from agents.local_envs import InProcessEnvProviders

    games = split_tasks("alfworld", "valid_seen", 2)
    config = RolloutConfig(env="alfworld", max_steps=3, progress=False)
    providers = InProcessEnvProviders()
    try:
        make_env = providers.provider("alfworld", 3)
        assert providers.provider("alfworld", 3) is make_env and providers.provider("alfworld") is not make_env
        shared = [RolloutEngine(tiny_policy, config, make_env=make_env).run(plan_episodes("alfworld", games, "lm"))[0]
                  for _ in range(2)]
        pool = make_env.factory.pool
        assert pool.counts["spawned"] == pool.settings.workers  # one start for both rollouts
        assert make_env.remote  # games play in the workers: the engine steps sessions from threads, side by side
        webshop = providers.provider("webshop")
        webshop().close()
        assert not webshop.remote  # WebShop computes in this process: threads would only contend
    finally:
        providers.close()
    assert make_env.factory is None
    own, _ = RolloutEngine(tiny_policy, config).run(plan_episodes("alfworld", games, "lm"))
    for trajectories in shared:
        assert [(t.id, t.actions, [s.observation for s in t.steps]) for t in trajectories] == \
            [(t.id, t.actions, [s.observation for s in t.steps]) for t in own]


def test_alfworld_task_lists_interleave_the_task_types():
    """A small slice of a split (the default evaluates 6 per split) covers every task type once."""
    from environments.alfworld.games import TASK_TYPES, GameCatalogue

    for split in ("valid_seen", "valid_unseen"):
        tasks = split_tasks("alfworld", split)
        assert sorted(t.task_id for t in tasks) == sorted(g.id for g in GameCatalogue.from_data().games(split))
        assert [t.task_id.split("/")[1].split("-")[0] for t in tasks[:6]] == list(TASK_TYPES)


def test_registry_lists_builtins_and_refuses_bad_options():
    assert {"transformers", "vllm", "vllm-server", "openai", "expert", "random"} <= set(policy_specs())
    with pytest.raises(UnknownPolicyError, match="unknown policy 'gpt'"):
        make_policy("gpt")
    with pytest.raises(ValueError, match="does not take option"):
        make_policy("random", temperature=1)
    with pytest.raises(ValueError, match="needs option"):
        make_policy("transformers")
    with pytest.raises(FileNotFoundError, match="not prepared|not a model directory"):
        make_policy("transformers", model="/")


def test_cli_rollout_prints_results_and_writes_trajectories(tmp_path):
    from harness.cli import app

    out = tmp_path / "cli.jsonl"
    result = CliRunner().invoke(app, ["rollout", "--env", "webshop", "--policy", "expert", "-n", "2", "-k", "2",
                                      "--out", str(out), "--concurrency", "4"])
    assert result.exit_code == 0, result.output
    assert "100.0%" in result.output and str(out) in result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 4 and {line["metadata"]["sample"] for line in lines} == {0, 1}
    again = CliRunner().invoke(app, ["rollout", "--env", "webshop", "--policy", "expert", "-n", "2", "-k", "2",
                                     "--out", str(out)])
    assert again.exit_code == 0 and len(out.read_text().splitlines()) == 4  # resumed: nothing redone
    bad = CliRunner().invoke(app, ["rollout", "--env", "webshop", "--policy", "random", "-o", "temperature=1"])
    assert bad.exit_code != 0 and "does not take option" in bad.output
