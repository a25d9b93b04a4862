"""ALFWorld over the shared HTTP server and through Gymnasium: error handling on a real socket,
``check_env`` in-process and remote, reset options, and the walkthrough expert winning its games
(a 12-game sample here; all 274 validation games under ``-m alfworld_full``)."""

from __future__ import annotations

import subprocess
import sys

import gymnasium
import pytest
import requests
from gymnasium.utils.env_checker import check_env

import environments  # noqa: F401 - registers harness/ALFWorld-v0
from environments.alfworld.expert import WalkthroughExpert, record_expert_trajectories
from environments.alfworld.games import TASK_TYPES, GameCatalogue
from environments.alfworld.gym_env import ALFWorldEnv
from environments.alfworld.session import ALFWorldFactory
from environments.core.client import RemoteSession
from environments.core.engine import InvalidOptionsError, SessionStateError
from environments.core.registry import get_env_spec
from environments.core.server import RunningServer, ServerSettings, create_app
from environments.core.trajectory import read_trajectories


@pytest.fixture(scope="module")
def catalogue() -> GameCatalogue:
    return GameCatalogue.from_data()


@pytest.fixture(scope="module")
def server():
    factory = get_env_spec("alfworld").make_factory(workers=2)
    settings = ServerSettings(port=0, threads=8)
    with RunningServer(create_app("alfworld", factory, settings), settings) as running:
        yield running


def _post(url: str, payload: dict, status: int) -> dict:
    response = requests.post(url, json=payload, timeout=60)
    assert response.status_code == status, response.text
    return response.json()


def test_health_describes_the_engine(server):
    health = requests.get(server.url + "/api/health", timeout=10).json()
    engine = health["engine"]
    assert health["env"] == "alfworld" and engine["splits"]["valid_seen"] == 140
    assert engine["splits"]["valid_unseen"] == 134 and engine["max_steps"] == 50 and engine["think"] == "react"
    assert engine["pool"]["capacity"] == 64 and "data_dir" not in engine


@pytest.mark.parametrize(
    ("reset", "message"),
    [
        ({"game": "valid_seen/../../../etc/passwd"}, "not a relative id"),
        ({"game": "/etc/passwd"}, "not a relative id"),
        ({"game": "valid_seen/pick_and_place_simple-Nothing-None-Desk-1/trial_T0"}, "no game"),
        ({"game": ["valid_seen"]}, "non-empty string"),
        ({"split": "test"}, "unknown split"),
        ({"split": "valid_seen", "index": 10_000}, "index"),
        ({"task_type": "cook"}, "unknown task_type"),
        ({"goal_index": 1}, "unknown reset option"),
    ],
)
def test_bad_reset_options_get_400_and_the_server_keeps_serving(server, reset, message):
    body = _post(server.url + "/api/sessions", {"reset": reset}, 400)
    assert body["error"]["type"] == "invalid_options" and message in body["error"]["message"]
    session_id = _post(server.url + "/api/sessions", {}, 201)["session_id"]
    body = _post(f"{server.url}/api/sessions/{session_id}/reset", {"options": reset}, 400)
    assert message in body["error"]["message"]
    assert requests.get(server.url + "/api/health", timeout=10).json()["status"] == "ok"
    requests.delete(f"{server.url}/api/sessions/{session_id}", timeout=10)


def test_state_errors_strict_steps_and_remote_exceptions(server, catalogue):
    game = catalogue.games("valid_unseen", "pick_cool_then_place_in_recep")[0]
    session_id = _post(server.url + "/api/sessions", {}, 201)["session_id"]
    url = f"{server.url}/api/sessions/{session_id}"
    assert _post(url + "/step", {"action": "look"}, 409)["error"]["type"] == "bad_state"
    assert requests.get(url + "/observation", timeout=10).status_code == 409
    first = _post(url + "/reset", {"options": {"game": game.id}}, 200)
    assert first["info"]["game"] == game.id and first["info"]["available_actions"]
    assert _post(url + "/step", {"action": "fly away", "strict": True}, 422)["error"]["type"] == "invalid_action"
    step = _post(url + "/step", {"action": "think: cool things go in the fridge", "strict": True}, 200)
    assert step["observation"] == "OK." and step["info"]["engine_steps"] == 1  # the rejected try was a step
    assert requests.get(url + "/actions", timeout=10).json()["available_actions"] == first["info"]["available_actions"]
    requests.delete(url, timeout=10)

    remote = RemoteSession(server.url)
    try:
        with pytest.raises(InvalidOptionsError, match="unknown split"):
            remote.reset({"split": "nope"})
        with pytest.raises(SessionStateError):
            remote.step("look")
    finally:
        remote.close()


def test_workers_start_from_a_script_on_standard_input(catalogue, tmp_path):
    """``python - <<EOF``: spawn-based workers re-imported the launcher's ``__main__`` and died at start."""
    game = catalogue.games("valid_seen")[0]
    script = f"""
from environments.alfworld.session import ALFWorldFactory
factory = ALFWorldFactory(workers=1, disk_cache=False)
session = factory.new_session()
session.reset({{"game": {game.id!r}}})
outcome = session.step({game.walkthrough()[0]!r})
print("played", outcome.info["action_valid"], factory.pool.describe()["spawned"])
session.close()
factory.close()
"""
    done = subprocess.run(
        [sys.executable, "-"], input=script, cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["played", "True", "1"], done.stdout + done.stderr


def test_check_env_in_process():
    env = gymnasium.make("harness/ALFWorld-v0", disable_env_checker=True)
    try:
        check_env(env.unwrapped)
    finally:
        env.close()


def test_check_env_remote(server):
    env = gymnasium.make("harness/ALFWorld-v0", server_url=server.url, disable_env_checker=True)
    try:
        check_env(env.unwrapped)
    finally:
        env.close()


def test_gym_reset_options_and_truncation(server, catalogue):
    env = ALFWorldEnv(server.url, max_steps=3)
    try:
        _, info = env.reset(options={"split": "valid_unseen", "index": 4})
        assert info["game"] == catalogue.games("valid_unseen")[4].id and info["steps"] == 0
        first = env.reset(seed=7)[1]["game"]
        assert env.reset(seed=7)[1]["game"] == first and first.startswith("valid_seen/")
        _, info = env.reset(seed=1, options={"split": "valid_unseen", "task_type": "pick_two_obj_and_place"})
        assert info["task_type"] == "pick_two_obj_and_place" and info["split"] == "valid_unseen"
        outcomes = [env.step(action) for action in ("think: plan", "look", "jump")]
        assert [o[3] for o in outcomes] == [False, False, True] and not any(o[2] for o in outcomes)
        assert outcomes[-1][4]["engine_steps"] == 2 and outcomes[-1][4]["steps"] == 3
        with pytest.raises(SessionStateError):
            env.step("look")
    finally:
        env.close()
    with pytest.raises(ValueError, match="step cap"):
        ALFWorldEnv(server.url, max_steps=51)


def _sample(catalogue: GameCatalogue, split: str) -> list[str]:
    return [catalogue.games(split, task_type)[-1].id for task_type in TASK_TYPES]


def test_expert_wins_a_sample_over_http_and_resumes(server, catalogue, tmp_path):
    """Two games per task type (one seen, one unseen) through Gymnasium over HTTP."""
    out = tmp_path / "expert.jsonl"
    for split in ("valid_seen", "valid_unseen"):
        summary = record_expert_trajectories(
            split, out_path=out, games=_sample(catalogue, split), server_url=server.url, concurrency=2
        )
        assert summary["recorded"] == 6 and summary["success_rate"] == 1.0, summary["failures"]
    again = record_expert_trajectories(
        "valid_unseen", out_path=out, games=_sample(catalogue, "valid_unseen"), server_url=server.url
    )
    assert again["recorded"] == 0 and again["skipped"] == 6
    trajectories = list(read_trajectories(out))
    assert len(trajectories) == 12 and len({t.id for t in trajectories}) == 12
    expert = WalkthroughExpert(catalogue=catalogue)
    for trajectory in trajectories:
        game = catalogue.get(trajectory.task_id)
        assert trajectory.id == f"alfworld/expert/{game.split}/{game.name}"
        assert trajectory.env == "alfworld" and trajectory.source == "expert" and trajectory.split == game.split
        assert trajectory.success and trajectory.reward == 1.0 and not trajectory.truncated
        assert trajectory.actions == expert.plan(game.id) and trajectory.steps[-1].terminated
        assert trajectory.metadata["task_type"] == game.task_type and trajectory.task
        assert all(step.info["action_valid"] for step in trajectory.steps)
        assert trajectory.steps[0].observation.startswith("-= Welcome to TextWorld, ALFRED! =-")


def test_expert_in_process_with_n_and_task_type(catalogue, tmp_path):
    out = tmp_path / "expert.jsonl"
    summary = record_expert_trajectories(
        "valid_seen", 2, out_path=out, task_type="look_at_obj_in_light", concurrency=1, disk_cache=False
    )
    assert summary["recorded"] == 2 and summary["success_rate"] == 1.0
    assert {t.metadata["task_type"] for t in read_trajectories(out)} == {"look_at_obj_in_light"}
    with pytest.raises(ValueError, match="not in split"):
        record_expert_trajectories("valid_seen", out_path=out, games=[catalogue.games("valid_unseen")[0].id])


@pytest.mark.alfworld_full
def test_expert_wins_every_validation_game_over_http(catalogue, tmp_path):
    """All 274 valid_seen + valid_unseen games, through Gymnasium over HTTP, on a 2-worker pool."""
    factory = ALFWorldFactory(workers=2)
    settings = ServerSettings(port=0, threads=8)
    out = tmp_path / "expert.jsonl"
    with RunningServer(create_app("alfworld", factory, settings), settings) as running:
        for split, count in (("valid_seen", 140), ("valid_unseen", 134)):
            summary = record_expert_trajectories(split, out_path=out, server_url=running.url, concurrency=4)
            assert summary["recorded"] == count and summary["failures"] == [], summary["failures"]
    assert sum(t.success for t in read_trajectories(out)) == 274
