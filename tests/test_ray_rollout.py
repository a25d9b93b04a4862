"""Rollouts over a real local Ray cluster: a head node and a worker node (separate raylets), the
environment sessions on actors spread over both, the policy batched in the driver.

Marked ``ray`` (``pytest -m ray``); each test starts its own cluster and tears it down, failing or not.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from agents.rollout import RolloutConfig, RolloutEngine
from agents.scripted import RandomPolicy
from agents.tasks import plan_episodes, split_tasks
from environments.core.trajectory import read_trajectories
from harness.distributed import RayUnavailableError, make_ray_env_provider
from tests.helpers.eval_configs import TINY
from tests.helpers.rollouts import KillingWriter, by_id, content

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[1]
NODE = {"num_cpus": 1, "object_store_memory": 80 * 2**20}
# Fast failure detection: the GCS declares a silent node dead after ~1.5 s instead of ~30 s.
HEAD = {**NODE, "include_dashboard": False,
        "_system_config": {"health_check_period_ms": 500, "health_check_failure_threshold": 3}}


# Every node, the drivers included, on the loopback interface: Ray otherwise binds the machine's
# outward address. Ray reads this when it is first imported, so it is set before that import.
LOOPBACK_ONLY = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


@pytest.fixture(scope="session")
def ray() -> Any:
    """The ray module, imported on the loopback interface (skips the suite where the extra is missing)."""
    os.environ.update(LOOPBACK_ONLY)
    return pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'ray==2.60.*')")


@pytest.fixture
def cluster(ray) -> Iterator[tuple[Any, Any]]:
    """A head node and one worker node, one CPU each; everything they started is stopped afterwards."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args=HEAD)
    try:
        assert cluster.address.startswith("127.0.0.1:"), cluster.address
        worker = cluster.add_node(**NODE)
        cluster.wait_for_nodes()
        yield cluster, worker
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()


def _plan(count: int) -> list:
    return plan_episodes("webshop", split_tasks("webshop", "test", limit=count), "random", samples=1, seed=7)


CONFIG = RolloutConfig(env="webshop", concurrency=4, progress=False)


@pytest.fixture(scope="module")
def local_reference() -> dict[str, Any]:
    """The in-process engine's trajectories for the plan the Ray runs replay (16 WebShop goals)."""
    trajectories, stats = RolloutEngine(RandomPolicy(seed=3), CONFIG).run(_plan(16))
    assert stats.episodes == 16 and stats.failed == 0
    return by_id(trajectories)


def test_rollout_over_two_nodes_matches_the_local_engine(cluster, local_reference):
    head_and_worker, _ = cluster
    with make_ray_env_provider(head_and_worker.address, "webshop", workers=2) as provider:
        trajectories, stats = RolloutEngine(RandomPolicy(seed=3), CONFIG, make_env=provider).run(_plan(16))
        placement = provider.hosts.placement()
        described = provider.describe()
    assert stats.episodes == 16 and stats.failed == 0
    assert by_id(trajectories) == local_reference
    assert described["nodes"] == 2 and len({w["node_id"] for w in placement}) == 2  # one actor per node
    assert all(w["steps"] > 0 for w in placement) and sum(w["steps"] for w in placement) == stats.steps
    # generation stayed batched: one policy call per engine step covered several episodes
    assert max(step.info["batch_size"] for t in trajectories for step in t.steps) == CONFIG.concurrency
    assert stats.policy_calls < stats.steps


def test_worker_node_killed_mid_run_loses_and_repeats_nothing(cluster, local_reference, tmp_path):
    head_and_worker, worker_node = cluster
    out = tmp_path / "trajectories.jsonl"
    with make_ray_env_provider(head_and_worker.address, "webshop", workers=2) as provider:
        assert provider.describe()["nodes"] == 2
        writer = KillingWriter(out, lambda: head_and_worker.remove_node(worker_node, allow_graceful=False), after=3)
        with writer:
            _, stats = RolloutEngine(RandomPolicy(seed=3), CONFIG, make_env=provider).run(_plan(16), writer)
        described = provider.describe()
    assert writer.written_before_kill == 3  # the node died mid-run, with 13 episodes still to play
    assert described["recoveries"] >= 1 and described["nodes"] == 1
    assert [w["alive"] for w in described["workers"]].count(False) == 1
    assert stats.episodes == 16 and stats.failed == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 16 and len({line["id"] for line in lines}) == 16  # nothing lost, nothing twice
    assert {line["id"]: content(line) for line in lines} == local_reference


def test_harness_rollout_cli_with_ray_flag(cluster, tmp_path):
    head_and_worker, _ = cluster
    common = [sys.executable, "-m", "harness.cli", "rollout", "--env", "webshop", "--policy", "random",
              "-n", "6", "--concurrency", "3", "--seed", "1"]
    runs = {}
    for name, extra in {"local": [], "ray": ["--ray", head_and_worker.address, "--ray-workers", "2"]}.items():
        out = tmp_path / f"{name}.jsonl"
        result = subprocess.run([*common, *extra, "--out", str(out)], capture_output=True, text=True, cwd=REPO,
                                timeout=180, env={"PATH": "/usr/bin:/bin", "COLUMNS": "200", **LOOPBACK_ONLY})
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        assert "6 episodes (0 already done, 0 failed)" in result.stdout
        runs[name] = by_id(list(read_trajectories(out)))
    assert runs["ray"] == runs["local"] and len(runs["ray"]) == 6


# A `harness eval` that plays every kind of rollout the pipeline does: expert data, difficulty rollouts
# (difficulty), GRPO group rollouts (rl-only) and held-out evaluation (both cells).
TINY_EVAL = {**TINY, "name": "tiny-ray", "strategies": ["difficulty", "rl-only"], "include_untrained": False,
             "router_options": {"difficulty": {"k": 2}},
             "rl": {"iterations": 1, "tasks_per_iteration": 2, "group_size": 2}}
ROLLOUT_FILES = ("shared/*/*/expert.jsonl", "cells/*/difficulty.jsonl", "cells/*/eval-*.jsonl",
                 "cells/*/episodes.jsonl")
LEDGER_TIMINGS = ("wall_s", "device_s", "time")


def _harness_eval(config: Path, run_dir: Path, *extra: str) -> str:
    result = subprocess.run([sys.executable, "-m", "harness.cli", "eval", "--config", str(config), "--run-dir",
                             str(run_dir), "--no-report", *extra], capture_output=True, text=True, cwd=REPO,
                            timeout=300, env={**os.environ, "COLUMNS": "200", **LOOPBACK_ONLY})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def _eval_results(run_dir: Path) -> dict[str, Any]:
    """Every rollout a run wrote (trajectories, per-episode results) and its ledgers without timings.

    The run directory's own path (in the policy's model path) is masked: it is where, not what.
    """
    def lines(path: Path) -> list[Any]:
        text = path.read_text().replace(str(run_dir), "RUN")
        return [json.loads(line) for line in text.splitlines()]

    results = {str(path.relative_to(run_dir)): sorted((content(line) for line in lines(path)), key=json.dumps)
               for pattern in ROLLOUT_FILES for path in run_dir.glob(pattern)}
    results.update({str(path.relative_to(run_dir)): [{k: v for k, v in entry.items() if k not in LEDGER_TIMINGS}
                                                     for entry in lines(path)]
                    for path in run_dir.glob("**/ledger.jsonl")})
    return results


def test_harness_eval_with_ray_flag_matches_the_local_run(cluster, tmp_path):
    head_and_worker, _ = cluster
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY_EVAL))
    _harness_eval(config, tmp_path / "local")
    output = _harness_eval(config, tmp_path / "ray", "--ray", head_and_worker.address, "--ray-workers", "2")
    local, over_ray = _eval_results(tmp_path / "local"), _eval_results(tmp_path / "ray")
    assert over_ray == local
    kinds = {Path(name).name for name in local}
    assert {"expert.jsonl", "difficulty.jsonl", "eval-test.jsonl", "episodes.jsonl"} <= kinds
    episodes = [e for name, rows in local.items() if name.endswith("episodes.jsonl") for e in rows]
    assert len(episodes) == 4 and all(e["steps"] > 0 for e in episodes)
    assert "2 Ray actors on 2 node(s)" in output
    # every environment step of every phase (expert, difficulty, GRPO, evaluation) was played on an actor
    ledgers = [entry for name, rows in local.items() if name.endswith("ledger.jsonl") for entry in rows]
    assert {"expert", "routing", "rollout", "evaluation"} <= {entry["phase"] for entry in ledgers}
    assert f"{sum(entry['env_steps'] for entry in ledgers)} steps played on Ray actors, 0 session(s)" in output
    # run.json says which attempt used Ray, and where; the local run's attempt used none
    (attempt,) = json.loads((tmp_path / "ray" / "run.json").read_text())["environment"]["invocations"]
    assert attempt["ray"] == {"address": head_and_worker.address, "workers": 2, "nodes": 2}
    assert [a["ray"] for a in json.loads((tmp_path / "local" / "run.json").read_text())["environment"]["invocations"]
            ] == [None]


def test_bad_ray_input_gets_clear_errors(ray, tmp_path):
    with pytest.raises(LookupError, match="unknown environment 'nowhere'"):
        make_ray_env_provider("local", "nowhere")
    with pytest.raises(ValueError, match="workers must be at least 1"):
        make_ray_env_provider("local", "webshop", workers=0)
    with pytest.raises(ValueError, match="Ray address"):
        make_ray_env_provider("", "webshop")
    for address in ("127.0.0.1:1", str(tmp_path / "no-such-cluster")):  # nobody listens / not an address
        with pytest.raises(RayUnavailableError, match="no Ray cluster answers"):
            make_ray_env_provider(address, "webshop")
    assert not ray.is_initialized()
    both = subprocess.run([sys.executable, "-m", "harness.cli", "rollout", "--env", "webshop", "--policy", "random",
                           "--ray", "local", "--server-url", "http://127.0.0.1:9", "--out", str(tmp_path / "x.jsonl")],
                          capture_output=True, text=True, cwd=REPO, timeout=120, env={"PATH": "/usr/bin:/bin",
                                                                                     "COLUMNS": "200"})
    assert both.returncode != 0 and "give --ray or --server-url, not both" in both.stdout + both.stderr
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY_EVAL))
    served = subprocess.run([sys.executable, "-m", "harness.cli", "eval", "--config", str(config), "--dry-run",
                             "--ray", "local", "-s", "envs.0.server_url=http://127.0.0.1:9"],
                            capture_output=True, text=True, cwd=REPO, timeout=120, env={**os.environ, "COLUMNS": "200"})
    assert served.returncode == 2 and "give ray (--ray) or envs.0.server_url, not both" in served.stdout
