"""The ALFWorld engine in-process, on real worker processes: memoisation changes nothing but speed,
think/normalise/dialect/step-cap rules, worker recycling, and a hung load killed without harm."""

from __future__ import annotations

import dataclasses
import os
import random
import signal
import threading

import pytest
import requests

from environments.alfworld.games import GameCatalogue
from environments.alfworld.session import THINK_OK, ALFWorldFactory
from environments.core.engine import EngineUnavailableError, SessionStateError
from environments.core.server import RunningServer, ServerSettings, create_app


@pytest.fixture(scope="module")
def catalogue() -> GameCatalogue:
    return GameCatalogue.from_data()


@pytest.fixture(scope="module")
def sample(catalogue):
    """Three valid_unseen games of different task types (two of them place objects)."""
    kinds = ("look_at_obj_in_light", "pick_heat_then_place_in_recep", "pick_two_obj_and_place")
    return [catalogue.games("valid_unseen", task_type)[0] for task_type in kinds]


@pytest.fixture(scope="module")
def raw_factory():
    """Everything off: no memos, thinks and raw commands go to the game, a 12-step cap."""
    factory = ALFWorldFactory(
        workers=1, memoise=False, think="pass", normalise=False, map_dialect=False, max_steps=12
    )
    yield factory
    factory.close()


@pytest.fixture(scope="module")
def memo_factory(tmp_path_factory):
    """The defaults, with the translation cache on disk in a fresh directory."""
    factory = ALFWorldFactory(workers=1, cache_dir=str(tmp_path_factory.mktemp("sas-cache")))
    yield factory
    factory.close()


def _play(factory: ALFWorldFactory, games, play_game) -> list:
    """What one session sees over ``games``: each game's first view, then ``play_game(session, game,
    info, seen)``'s record of its play."""
    session = factory.new_session()
    seen = []
    try:
        for game in games:
            observation, info = session.reset({"game": game.id})
            seen.append((observation, info["available_actions"]))
            play_game(session, game, info, seen)
    finally:
        session.close()
    return seen


def _transcript(factory: ALFWorldFactory, games) -> list:
    """Everything a player sees on each game: walkthrough, a bad command, a second reset."""
    def walk(session, game, info, seen):
        outcome = session.step("dance wildly")
        seen.append((outcome.observation, outcome.info["available_actions"], outcome.info["action_valid"]))
        for action in game.walkthrough():
            outcome = session.step(action)
            seen.append((outcome.observation, outcome.info["available_actions"], outcome.reward))
        assert outcome.terminated and outcome.info["won"], game.id
        observation, info = session.reset({"game": game.id})
        seen.append((observation, info["available_actions"], info["won"]))

    return _play(factory, games, walk)


def _random_transcript(factory: ALFWorldFactory, games, steps: int = 12, seed: int = 0) -> list:
    """Seeded random admissible play to the step cap: examine, look, open, take... render far more
    of the grammar than a walkthrough does."""
    rng = random.Random(seed)

    def wander(session, game, info, seen):
        for _ in range(steps):
            outcome = session.step(rng.choice(sorted(info["available_actions"])))
            info = outcome.info
            seen.append((outcome.observation, info["available_actions"], outcome.reward))
            if outcome.terminated:
                break

    return _play(factory, games, wander)


def test_memoisation_gives_identical_play(raw_factory, memo_factory, sample, catalogue):
    results: dict[str, list] = {}
    wanderings = [catalogue.games("valid_seen")[i] for i in (0, 40, 80, 120)] + sample

    def run(name, factory):
        results[name] = _transcript(factory, sample)
        results[name + "-random"] = _random_transcript(factory, wanderings)

    threads = [threading.Thread(target=run, args=item) for item in (("raw", raw_factory), ("memo", memo_factory))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results["raw"] and results["memo"] == results["raw"]
    assert len(results["raw-random"]) > 40 and results["memo-random"] == results["raw-random"]
    stats = memo_factory.pool.worker_stats()[0]["memo"]
    assert stats["translation"]["hits"] > 0 and stats["grammar"]["hits"] > 0 and stats["query"]["hits"] > 0
    # A fresh worker reads the translations back from disk and still plays the same games.
    disk = ALFWorldFactory(workers=1, cache_dir=memo_factory.config.cache_dir)
    try:
        assert _transcript(disk, sample) == results["raw"]
        translation = disk.pool.worker_stats()[0]["memo"]["translation"]
        assert translation["disk_hits"] == len(sample)  # one translation per game (see memo.py)
    finally:
        disk.close()


def test_a_repeated_reset_replays_the_held_game_without_loading_it(tmp_path, catalogue):
    """Loading is the expensive part of a reset (timed in benchmarks/bench_alfworld.py); a reset of
    the game the engine already holds must skip it and still give the game's first observation."""
    factory = ALFWorldFactory(workers=1, cache_dir=str(tmp_path))
    session = factory.new_session()
    games = catalogue.games("valid_seen", "pick_clean_then_place_in_recep")[:2]
    try:
        first, _ = session.reset({"game": games[0].id})
        session.step(games[0].walkthrough()[0])
        again, info = session.reset({"game": games[0].id})
        assert again == first and not info["won"]
        assert factory.pool.worker_stats()[0]["loads"] == 1
        session.reset({"game": games[1].id})
        session.reset({"game": games[0].id})
        assert factory.pool.worker_stats()[0]["loads"] == 3
    finally:
        session.close()
        factory.close()


def test_react_think_is_free_and_keeps_the_game(memo_factory, sample):
    session = memo_factory.new_session()
    try:
        observation, info = session.reset({"game": sample[0].id})
        outcome = session.step("Think: first I should find the object.")
        assert outcome.observation == THINK_OK and outcome.reward == 0 and not outcome.terminated
        assert outcome.info["think"] and outcome.info["action_valid"] and outcome.info["command"] is None
        assert outcome.info["engine_steps"] == 0
        assert outcome.info["available_actions"] == info["available_actions"]
        assert session.observation() == observation  # the game text, untouched by the thought
        outcome = session.step(sample[0].walkthrough()[0])
        assert outcome.info["engine_steps"] == 1 and not outcome.info["think"]
    finally:
        session.close()


def test_pass_think_raw_commands_and_the_step_cap(raw_factory, sample):
    session = raw_factory.new_session()
    try:
        session.reset({"game": sample[0].id})
        outcome = session.step("think: where is it?")
        assert outcome.observation == "Nothing happens." and outcome.info["engine_steps"] == 1
        assert outcome.info["action_valid"] is False and outcome.info["think"] is False
        first = sample[0].walkthrough()[0]
        assert session.step(first.upper() + ".").info["action_valid"] is False  # normalise=False
        assert session.step(first).info["action_valid"] is True
        for _ in range(8):
            assert not session.step("look around").info["step_limit_reached"]
        last = session.step("look around")
        assert last.info["engine_steps"] == 12 and last.info["step_limit_reached"] and not last.terminated
        with pytest.raises(SessionStateError, match="episode is over"):
            session.step("look")
        session.reset({"game": sample[0].id})  # a reset starts a new episode
        assert session.step(first).info["engine_steps"] == 1
    finally:
        session.close()


def test_normalised_put_dialect_wins_a_placement_game(memo_factory, catalogue):
    game = catalogue.games("valid_seen", "pick_and_place_simple")[0]
    session = memo_factory.new_session()
    try:
        _, info = session.reset({"game": game.id})
        assert info["game_dialect"] == "move" and info["task_type"] == "pick_and_place_simple"
        assert info["task"] and info["game"] == game.id and info["split"] == "valid_seen"
        dialects = []
        for action in game.walkthrough():
            if action.startswith("move "):
                action_said = action.replace("move ", "Put ", 1).replace(" to ", " in/on ", 1)
            else:
                action_said = action
            outcome = session.step(f"  {action_said.upper()}. ")
            assert outcome.info["action_valid"] and outcome.info["command"] == action
            dialects.append(outcome.info["dialect"])
        assert outcome.terminated and outcome.reward == 1.0 and outcome.info["won"]
        assert "put" in dialects
        with pytest.raises(SessionStateError, match="won"):
            session.step("look")
    finally:
        session.close()


def test_calls_before_reset_are_state_errors(memo_factory):
    session = memo_factory.new_session()
    for call in (lambda: session.step("look"), session.observation, session.available_actions):
        with pytest.raises(SessionStateError, match="reset"):
            call()
    session.close()


def test_workers_are_recycled_and_sessions_move_on_reset(catalogue):
    factory = ALFWorldFactory(workers=1, games_per_worker=2, disk_cache=False)
    game = catalogue.games("valid_seen")[3]
    first, second = factory.new_session(), factory.new_session()
    try:
        first.reset({"game": game.id})
        old = factory.pool.describe()["workers"][0]
        second.reset({"game": game.id})  # the worker's second game: it retires
        pool = factory.pool.describe()
        assert pool["recycled"] == 1 and pool["spawned"] == 2
        assert [w["retiring"] for w in pool["workers"]] == [True, False]
        assert first.step(game.walkthrough()[0]).info["action_valid"]  # games in progress go on
        first.reset({"game": game.id})  # moves to the new worker
        second.close()  # the last lease on the old worker: it stops
        pool = factory.pool.describe()
        assert [w["pid"] for w in pool["workers"]] != [old["pid"]] and len(pool["workers"]) == 1
        assert first.step(game.walkthrough()[0]).info["action_valid"]
    finally:
        first.close()
        factory.close()


def test_hung_load_is_killed_and_reported_while_the_server_keeps_serving(catalogue):
    factory = ALFWorldFactory(workers=2, disk_cache=False)
    settings = ServerSettings(port=0, threads=4)
    game = catalogue.games("valid_unseen")[0]
    with RunningServer(create_app("alfworld", factory, settings), settings) as server:
        api = server.url + "/api/sessions"
        healthy = requests.post(api, json={"reset": {"game": game.id}}, timeout=60).json()["session_id"]
        factory.config = dataclasses.replace(factory.config, load_timeout_s=0.01)  # every new load now "hangs"
        response = requests.post(api, json={"reset": {"game": game.id}}, timeout=60)
        assert response.status_code == 503, response.text
        error = response.json()["error"]
        assert error["type"] == "engine_unavailable" and "killed" in error["message"]
        assert factory.pool.describe()["killed"] == 1
        # The other worker's session plays on, the server answers, and a new load works again.
        step = requests.post(f"{api}/{healthy}/step", json={"action": game.walkthrough()[0]}, timeout=60)
        assert step.status_code == 200 and step.json()["info"]["action_valid"]
        assert requests.get(server.url + "/api/health", timeout=10).json()["status"] == "ok"
        factory.config = dataclasses.replace(factory.config, load_timeout_s=30.0)
        response = requests.post(api, json={"reset": {"game": game.id}}, timeout=60)
        assert response.status_code == 201, response.text
        assert factory.pool.describe()["spawned"] == 3


def test_full_pool_killed_and_crashed_workers(catalogue):
    """Every slot leased: 503. A hung load kills the worker: its other session must reset. A crash too."""
    factory = ALFWorldFactory(workers=1, sessions_per_worker=2)
    game = catalogue.games("valid_seen")[5]
    first, second, third = factory.new_session(), factory.new_session(), factory.new_session()
    try:
        first.reset({"game": game.id})
        second.reset({"game": game.id})
        with pytest.raises(EngineUnavailableError, match="all 2 game slots"):
            third.reset({"game": game.id})
        first.close()
        factory.config = dataclasses.replace(factory.config, load_timeout_s=0.01)
        hung = factory.new_session()
        with pytest.raises(EngineUnavailableError, match="killed"):
            hung.reset({"game": game.id})
        hung.close()
        with pytest.raises(EngineUnavailableError, match="gone"):
            second.step(game.walkthrough()[0])
        with pytest.raises(SessionStateError, match="reset"):
            second.step(game.walkthrough()[0])
        second.reset({"game": game.id})  # made before the change: its loads may take 30 s
        assert second.step(game.walkthrough()[0]).info["action_valid"]

        pid = factory.pool.describe()["workers"][0]["pid"]
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(EngineUnavailableError, match="failed during 'step'"):
            second.step(game.walkthrough()[1])
        second.reset({"game": game.id})
        assert second.step(game.walkthrough()[0]).info["action_valid"]
        pool = factory.pool.describe()
        assert (pool["killed"], pool["crashed"], pool["spawned"]) == (1, 1, 3)
        assert [w["pid"] for w in pool["workers"]] != [pid]
    finally:
        for session in (first, second, third):
            session.close()
        factory.close()
