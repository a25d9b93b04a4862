"""The searching ALFWorld expert on the real engine: it wins without knowing where things are and its
demonstrations contain search; bad expert options are refused."""

from __future__ import annotations

import pytest

from agents.registry import make_policy
from agents.rollout import RolloutConfig, RolloutEngine
from agents.tasks import plan_episodes, split_tasks
from environments.alfworld.games import GameCatalogue
from environments.alfworld.search_expert import SearchingExpert, SearchTask
from environments.alfworld.spec import make_expert

TASK_TYPES = ("pick_and_place_simple", "pick_two_obj_and_place", "look_at_obj_in_light",
              "pick_clean_then_place_in_recep", "pick_heat_then_place_in_recep", "pick_cool_then_place_in_recep")


def test_the_task_is_read_from_the_game_id_and_bad_ids_are_refused():
    task = SearchTask.from_game_id("train/look_at_obj_in_light-CD-None-DeskLamp-317/trial_T20190908_032847_688091")
    assert task == SearchTask("look_at_obj_in_light", "cd", "desklamp")
    assert SearchTask.from_game_id("valid_seen/pick_two_obj_and_place-Pen-None-Dresser-311/trial_T1") == \
        SearchTask("pick_two_obj_and_place", "pen", "dresser")
    with pytest.raises(ValueError, match="known task type"):
        SearchTask.from_game_id("train/pick_and_place_with_movable_recep-Pen-Mug-Desk-1/trial_T1")
    with pytest.raises(ValueError, match="unknown ALFWorld expert 'oracle'"):
        make_expert(kind="oracle")
    assert isinstance(make_expert(kind="search"), SearchingExpert)
    with pytest.raises(TypeError):
        make_expert(kind="search", max_pages_per_query=2)  # an option it does not take is not swallowed


def test_it_searches_receptacles_in_the_rooms_order_and_opens_closed_ones():
    expert = SearchingExpert()
    expert.begin({"game": "train/pick_and_place_simple-Book-None-Sofa-202/trial_T1"})
    start = ("-= Welcome to TextWorld, ALFRED! =-\n\nYou are in the middle of a room. Looking quickly around you, "
             "you see a drawer 1, a sidetable 1, and a sofa 1.\n\nYour task is to: put some book on sofa.")
    moves = ["go to drawer 1", "go to sidetable 1", "go to sofa 1"]
    assert expert.act(start, {"available_actions": moves}) == "go to sidetable 1"  # surfaces before containers
    here = ["go to drawer 1", "go to sofa 1", "take pen 1 from sidetable 1"]
    assert expert.act("You arrive at sidetable 1. On the sidetable 1, you see a pen 1.",
                      {"available_actions": here}) == "go to sofa 1"  # not the pen: it reads the task
    assert expert.act("You arrive at sofa 1. On the sofa 1, you see nothing.",
                      {"available_actions": moves}) == "go to drawer 1"
    assert expert.act("You arrive at drawer 1. The drawer 1 is closed.",
                      {"available_actions": [*moves, "open drawer 1"]}) == "open drawer 1"
    opened = ["go to sidetable 1", "go to sofa 1", "take book 1 from drawer 1", "close drawer 1"]
    assert expert.act("You open the drawer 1. The drawer 1 is open. In it, you see a book 1.",
                      {"available_actions": opened}) == "take book 1 from drawer 1"
    assert expert.act("You pick up the book 1 from the drawer 1.", {"available_actions": moves}) == "go to sofa 1"
    assert expert.act("You arrive at sofa 1. On the sofa 1, you see nothing.",
                      {"available_actions": [*moves, "move book 1 to sofa 1"]}) == "move book 1 to sofa 1"


def test_it_wins_every_task_type_on_the_real_engine_and_its_play_contains_search():
    catalogue = GameCatalogue.from_data()
    games = [catalogue.games("valid_seen", kind)[i] for kind in TASK_TYPES for i in range(2)]
    tasks = {t.task_id: t for t in split_tasks("alfworld", "valid_seen")}
    episodes = plan_episodes("alfworld", [tasks[g.id] for g in games], source="search")
    searched, stats = RolloutEngine(make_policy("expert", kind="search"),
                                    RolloutConfig(env="alfworld", max_steps=50, concurrency=4, progress=False)
                                    ).run(episodes)
    walked, _ = RolloutEngine(make_policy("expert"), RolloutConfig(env="alfworld", concurrency=4, progress=False)
                              ).run(episodes)
    won = {t.task_id.split("/")[1].split("-")[0] for t in searched if t.success}
    assert stats.success_rate >= 10 / 12 and won == set(TASK_TYPES)
    assert all(s.info["action_valid"] for t in searched if t.success for s in t.steps)
    walkthrough_steps = {t.id: len(t.steps) for t in walked}  # the engine returns episodes as they finish
    longer = [t for t in searched if t.success and len(t.steps) > walkthrough_steps[t.id]]
    assert len(longer) >= 3  # it looks where the object is not, where the oracle walks straight to it
