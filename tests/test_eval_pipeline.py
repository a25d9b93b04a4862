"""`harness eval` end to end on a tiny config: the real engines, real training, real kill -9 and resume."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from environments.core.trajectory import read_trajectories
from foundation.records import RunDir
from harness.config import validate_config
from tests.helpers.eval_configs import TINY

REPO = Path(__file__).resolve().parents[1]


def _harness(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "COLUMNS": "160"}
    return subprocess.Popen([sys.executable, "-m", "harness.cli", *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kwargs)


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


def _done(run: RunDir) -> set[str]:
    return {s.cell_id for s in run.cells() if s.state == "done"}


def test_eval_survives_kill_9_and_resumes_without_double_counting(tmp_path):
    config, run_dir = _config(tmp_path), tmp_path / "run"
    run = RunDir(run_dir)
    proc = _harness("eval", "--config", str(config), "--run-dir", str(run_dir), "--no-report", start_new_session=True)
    deadline = time.monotonic() + 600
    while not _done(run) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, proc.stdout.read()
    os.killpg(proc.pid, signal.SIGKILL)  # kill -9 mid-run, children included
    proc.wait()
    first_done = _done(run)
    assert first_done and len(first_done) < 4
    kept = {cid: (run.cell_dir(cid) / "ledger.jsonl").read_bytes() for cid in first_done}

    rerun = _harness("eval", "--config", str(config), "--run-dir", str(run_dir))
    output, _ = rerun.communicate(timeout=900)
    assert rerun.returncode == 0, output
    statuses = run.cells()
    assert {s.state for s in statuses} == {"done"} and len(statuses) == 4
    for cid, ledger in kept.items():  # finished cells were kept as they were
        assert (run.cell_dir(cid) / "ledger.jsonl").read_bytes() == ledger
    for status in statuses:
        episodes = run.episodes(status.cell_id)
        assert sorted(e.task_id for e in episodes) == sorted({e.task_id for e in episodes})  # no duplicates
        assert len(episodes) == 2
        assert {e.reward_rule for e in episodes} == {"original"}  # WebShop's default rule, on every result
        phases = [e.phase for e in run.ledger(status.cell_id)]
        assert phases.count("evaluation") == 1  # one attempt counted, not two
    shared = run.shared_ledger("webshop", 0)
    assert [e.phase for e in shared].count("expert") == 1 and [e.phase for e in shared].count("probe") == 1
    gini = json.loads((run.shared_dir("webshop", 0) / "probe.done.json").read_text())["gini"]  # the probe's spread
    assert gini["min"] <= gini["q25"] <= gini["median"] <= gini["q75"] <= gini["max"]
    assert (run_dir / "report" / "leaderboard.html").is_file()
    attempts = run.manifest().environment["invocations"]  # killed, then resumed: both in-process
    assert len(attempts) == 2 and all(attempt["ray"] is None for attempt in attempts)
    routing = json.loads((run.cell_dir("webshop__prism-gini__seed0") / "routing.json").read_text())
    assert routing["sft_count"] + routing["rl_count"] >= 2 and "probe" in routing["shared_phases"]
    cfg = validate_config(TINY)  # the trainer ran with the config's sections as they are (one config tree)
    trained = json.loads((run.cell_dir("webshop__sft-only__seed0") / "sft" / "config.json").read_text())
    sft = cfg.sft.model_dump(mode="json")
    assert {key: trained[key] for key in sft} == sft and trained["prompt"] == cfg.prompt.model_dump(mode="json")


def test_sigterm_stops_a_run_cleanly_and_says_how_to_continue(tmp_path):
    """``kill`` (SIGTERM) unwinds like Ctrl-C: the running cell is marked interrupted, the run's environment
    workers are stopped, and the exit status says it was interrupted; kill -9 safety is the test above."""
    config, run_dir = tmp_path / "slow.yaml", tmp_path / "run"
    config.write_text(yaml.safe_dump({**TINY, "envs": [{**TINY["envs"][0], "eval_episodes": 40}]}))  # cells of seconds
    run = RunDir(run_dir)
    proc = _harness("eval", "--config", str(config), "--run-dir", str(run_dir), "--no-report")
    deadline = time.monotonic() + 600
    while not _done(run) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, proc.stdout.read()
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, output
    assert "interrupted with" in output and "run the same command again" in " ".join(output.split())
    failed = [s.error for s in run.cells() if s.state == "failed"]
    assert failed in (["interrupted"], []) and _done(run)  # [] when the signal fell between two cells


def test_every_alfworld_cell_and_phase_of_a_run_plays_on_one_worker_pool(tmp_path):
    """ALFWorld's workers start once per run and step-cap configuration (the expert's own cap, the agent's
    max_steps, its training rollouts' train_max_steps), not per cell or phase: three cells, expert data, GRPO
    and evaluation start three one-worker pools. The env's options (here the pool size) reach every phase,
    GRPO's included, or it would start more. GRPO plays to train_max_steps, evaluation to max_steps."""
    config = {**TINY, "name": "alfworld-pool", "strategies": ["sft-only", "rl-only"],
              "envs": [{"name": "alfworld", "train_split": "train", "train_tasks": 2, "eval_splits": ["valid_seen"],
                        "eval_episodes": 2, "max_steps": 3, "train_max_steps": 2, "options": {"workers": 1}}]}
    path = tmp_path / "alfworld.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = _harness("eval", "--config", str(path), "--run-dir", str(tmp_path / "run"), "--no-report")
    output, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, output
    run = RunDir(tmp_path / "run")
    assert len(_done(run)) == 3 and "rollout" in {e.phase for e in run.ledger("alfworld__rl-only__seed0")}
    assert len(re.findall(r"ALFWorld worker \d+ ready", output)) == 3, output
    cell = run.cell_dir("alfworld__rl-only__seed0")
    trained = [t for path in sorted((cell / "rl" / "rollouts").glob("iter-*.jsonl")) for t in read_trajectories(path)]
    evaluated = list(read_trajectories(cell / "eval-valid_seen.jsonl"))
    assert trained and max(len(t.steps) for t in trained) == 2  # the tiny policy never wins: it plays to the cap
    assert evaluated and max(len(t.steps) for t in evaluated) == 3


def test_same_dir_different_config_is_refused(tmp_path):
    run_dir = tmp_path / "run"
    from harness.runs import RunDirError, open_run

    cfg = validate_config(TINY)
    open_run(cfg, run_dir)
    other = validate_config({**TINY, "seeds": [1]})
    with pytest.raises(RunDirError, match="different configuration"):
        open_run(other, run_dir)
    assert open_run(cfg, run_dir).root == run_dir  # the same config reopens it


def test_bad_config_names_the_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**TINY, "sft": {"epochs": "many"}, "typo": 1}))
    proc = _harness("eval", "--config", str(bad), "--dry-run")
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert "sft.epochs" in output and "typo" in output


def test_paper_preset_dry_run_validates_without_training():
    proc = _harness("eval", "--preset", "paper", "--dry-run")
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output
    assert "68 cells (the untrained policy of webshop, alfworld once" in output and "dry run complete" in output


def test_router_options_of_a_strategy_left_out_are_accepted_but_a_misspelt_one_is_refused(tmp_path):
    """`-s strategies=[...]` on a config with options for a strategy it drops still runs."""
    config = tmp_path / "options.yaml"
    config.write_text(yaml.safe_dump({**TINY, "router_options": {"difficulty": {"k": 2}}}))
    proc = _harness("eval", "--config", str(config), "--dry-run")
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, output
    config.write_text(yaml.safe_dump({**TINY, "router_options": {"dificulty": {"k": 2}}}))
    proc = _harness("eval", "--config", str(config), "--dry-run")
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "dificulty" in output and "not an installed strategy" in output
