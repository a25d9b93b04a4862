"""``harness/WebShop-v0`` through Gymnasium: the env checker in-process and against a real server,
goal selection, termination and truncation, and observation spaces that hold every page."""

from __future__ import annotations

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

import environments  # noqa: F401 - registers the Gymnasium ids
from environments.core.engine import InvalidOptionsError, SessionStateError
from environments.core.server import RunningServer, ServerSettings, create_app
from environments.webshop.gym_env import WebShopEnv
from environments.webshop.spec import SPEC
from environments.webshop.splits import goal_indices

SHIRT_GOAL = 580
SHIRT_QUERY = "amazon essentials men's slim-fit long-sleeve solid pocket oxford shirt"


@pytest.fixture(scope="module")
def server_url():
    settings = ServerSettings(port=0, max_sessions=8, threads=4)
    factory = SPEC.make_factory()
    with RunningServer(create_app("webshop", factory, settings, SPEC.blueprints(factory)), settings) as running:
        yield running.url


def test_check_env_in_process():
    env = WebShopEnv()
    check_env(env, skip_render_check=True)
    env.close()


def test_check_env_remote(server_url):
    env = WebShopEnv(server_url=server_url)
    check_env(env, skip_render_check=True)
    env.close()


def test_registered_id_and_spec():
    env = gym.make("harness/WebShop-v0", max_steps=SPEC.default_max_steps)
    observation, info = env.reset(options={"goal_index": 0})
    assert observation.startswith("WebShop [SEP] Instruction:") and info["goal"]["index"] == 0
    assert info["steps"] == 0 and info["max_steps"] == 15
    env.close()
    assert SPEC.name == "webshop" and SPEC.gym_id == "harness/WebShop-v0" and SPEC.default_max_steps == 15


@pytest.mark.parametrize("remote", [False, True])
def test_episode_terminates_on_purchase(remote, request):
    env = WebShopEnv(server_url=request.getfixturevalue("server_url")) if remote else WebShopEnv()
    observation, info = env.reset(options={"goal_index": SHIRT_GOAL})
    assert env.observation_space.contains(observation)
    for action in (f"search[{SHIRT_QUERY}]", "click[b07f2g93bj]", "click[lavender]", "click[x-small]"):
        observation, reward, terminated, truncated, info = env.step(action)
        assert info["action_valid"] and reward == 0.0 and not (terminated or truncated)
        assert env.observation_space.contains(observation)
    observation, reward, terminated, truncated, info = env.step("click[buy now]")
    assert (reward, terminated, truncated) == (1.0, True, False)
    assert info["purchased"]["asin"] == "B07F2G93BJ" and info["steps"] == 5
    assert env.observation_space.contains(observation)
    with pytest.raises(SessionStateError):
        env.step("click[buy now]")
    env.close()


def test_truncation_at_max_steps():
    env = WebShopEnv(max_steps=3)
    env.reset(options={"goal_index": 1})
    results = [env.step("click[nothing]") for _ in range(3)]
    assert [r[3] for r in results] == [False, False, True]
    assert all(r[1] == 0.0 and not r[2] and r[4]["action_valid"] is False for r in results)
    with pytest.raises(SessionStateError):
        env.step("search[shoes]")


def test_split_sampling_is_seeded():
    env = WebShopEnv()
    test_goals = set(goal_indices("test"))
    first = [env.reset(seed=seed, options={"split": "test"})[1]["goal"]["index"] for seed in range(8)]
    again = [env.reset(seed=seed, options={"split": "test"})[1]["goal"]["index"] for seed in range(8)]
    assert first == again and set(first) <= test_goals and len(set(first)) > 1
    with pytest.raises(InvalidOptionsError):
        env.reset(options={"split": "holdout"})


@pytest.mark.parametrize("mode", ["text_rich", "html", "url"])
def test_observation_space_holds_every_mode(mode):
    env = WebShopEnv(observation_mode=mode, show_attributes=True)
    observation, _ = env.reset(options={"goal_index": SHIRT_GOAL})
    observations = [observation]
    for action in (
        f"search[{SHIRT_QUERY}]",
        "click[next >]",
        "click[< prev]",
        "click[b07f2g93bj]",
        "click[lavender]",
        "click[description]",
        "click[< prev]",
        "click[features]",
        "click[< prev]",
        "click[attributes]",
        "click[< prev]",
        "click[reviews]",
        "click[< prev]",
        "click[buy now]",
    ):
        observations.append(env.step(action)[0])
    assert all(env.observation_space.contains(o) for o in observations)
    env.close()


def test_remote_rejects_options_that_belong_to_the_server(server_url):
    with pytest.raises(InvalidOptionsError, match="observation_mode"):
        WebShopEnv(server_url=server_url, observation_mode="html")
    with pytest.raises(InvalidOptionsError, match="show_attributes"):
        WebShopEnv(server_url=server_url, show_attributes=True)


def test_ansi_render():
    env = WebShopEnv(render_mode="ansi")
    observation, _ = env.reset(options={"goal_index": 2})
    assert env.render() == observation
    env.close()
