"""ALFWorld without the engine: command normalisation, the put/move dialects, think detection,
the game catalogue's id checks and reset-option selection, and the option parsing of the factory."""

from __future__ import annotations

import random

import pytest

from environments.alfworld.commands import game_dialect, is_think, normalise, placement, resolve
from environments.alfworld.games import TASK_TYPES, GameCatalogue
from environments.alfworld.session import ALFWorldConfig
from environments.core.engine import InvalidOptionsError

MOVE_STATE = ["go to desk 1", "look", "move apple 1 to countertop 1", "move apple 1 to fridge 1", "inventory"]
PUT_STATE = ["go to desk 1", "look", "put apple 1 in/on countertop 1", "put apple 1 in/on fridge 1"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Go to desk 1.", "go to desk 1"),
        ("  go   to\tdesk 1 ", "go to desk 1"),
        ("TAKE APPLE 1 FROM COUNTERTOP 1...", "take apple 1 from countertop 1"),
        ("look .", "look"),
        ("", ""),
        ("Think: the apple is probably in the fridge.", "think: the apple is probably in the fridge"),
    ],
)
def test_normalise(raw, expected):
    assert normalise(raw) == expected


def test_think_detection_needs_the_prefix():
    assert is_think(normalise("Think: where is the mug?"))
    assert is_think("think:")
    assert not is_think("think about it")
    assert not is_think("go to desk 1")


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("move apple 1 to fridge 1", ("move", "apple 1", "fridge 1")),
        ("put apple 1 in fridge 1", ("put", "apple 1", "fridge 1")),
        ("put apple 1 on countertop 1", ("put", "apple 1", "countertop 1")),
        ("put apple 1 in/on fridge 1", ("put", "apple 1", "fridge 1")),
        ("put soapbottle 2 in/on sinkbasin 1", ("put", "soapbottle 2", "sinkbasin 1")),
        ("put mug 1 into cabinet 2", None),  # the movable-receptacle template, not a placement dialect
        ("take apple 1 from fridge 1", None),
        ("move apple to fridge", None),
    ],
)
def test_placement_parsing(command, expected):
    assert placement(command) == expected


def test_put_dialect_maps_to_move_and_is_recorded():
    for said in ("put apple 1 in fridge 1", "put apple 1 on fridge 1", "put apple 1 in/on fridge 1"):
        resolved = resolve(said, MOVE_STATE)
        assert (resolved.command, resolved.dialect, resolved.admissible) == ("move apple 1 to fridge 1", "put", True)
    native = resolve("move apple 1 to fridge 1", MOVE_STATE)
    assert (native.command, native.dialect, native.admissible) == ("move apple 1 to fridge 1", "move", True)


def test_move_dialect_maps_to_put_for_older_games():
    resolved = resolve("move apple 1 to countertop 1", PUT_STATE)
    assert (resolved.command, resolved.dialect, resolved.admissible) == ("put apple 1 in/on countertop 1", "move", True)


def test_unmappable_commands_go_through_unchanged_and_invalid():
    assert resolve("put apple 1 in microwave 1", MOVE_STATE) == resolve("put apple 1 in microwave 1", [])
    resolved = resolve("put apple 1 in microwave 1", MOVE_STATE)
    assert (resolved.command, resolved.dialect, resolved.admissible) == ("put apple 1 in microwave 1", "put", False)
    assert resolve("dance", MOVE_STATE).admissible is False
    assert resolve("dance", MOVE_STATE).dialect is None
    assert resolve("look", MOVE_STATE) == resolve("look", MOVE_STATE, map_dialect=False)


def test_dialect_mapping_can_be_switched_off():
    resolved = resolve("put apple 1 in fridge 1", MOVE_STATE, map_dialect=False)
    assert (resolved.command, resolved.dialect, resolved.admissible) == ("put apple 1 in fridge 1", "put", False)


def test_game_dialect_from_templates():
    assert game_dialect(["go to {r}", "move {o} to {r}", "put {o} into {outero}"]) == "move"
    assert game_dialect(["go to {r}", "put {o} in/on {r}"]) == "put"


@pytest.fixture(scope="module")
def catalogue() -> GameCatalogue:
    return GameCatalogue.from_data()


def test_catalogue_lists_the_validation_splits(catalogue):
    assert len(catalogue.games("valid_seen")) == 140
    assert len(catalogue.games("valid_unseen")) == 134
    by_type = {t: len(catalogue.games("valid_unseen", t)) for t in TASK_TYPES}
    assert sum(by_type.values()) == 134 and min(by_type.values()) > 0
    game = catalogue.games("valid_seen")[0]
    assert catalogue.get(game.id) == game
    assert game.split == "valid_seen" and game.task_type in TASK_TYPES and game.path.is_file()
    assert game.walkthrough() and all(isinstance(a, str) for a in game.walkthrough())


@pytest.mark.parametrize(
    ("game_id", "message"),
    [
        ("valid_seen/../train/x/trial_1", "not a relative id"),
        ("/etc/passwd", "not a relative id"),
        ("valid_seen/./x/trial_1", "not a relative id"),
        ("valid_seen//trial_1", "not a relative id"),
        ("valid_seen\\..\\train", "not a relative id"),
        ("secret/pick_and_place_simple-x/trial_1", "unknown split"),
        ("valid_seen/pick_and_place_simple-Nothing-None-Desk-1/trial_T0", "no game"),
        ("valid_seen", "no game"),
        ("", "non-empty string"),
        (42, "non-empty string"),
        ("valid_seen/" + "x" * 400, "characters"),
    ],
)
def test_bad_game_ids_are_rejected(catalogue, game_id, message):
    with pytest.raises(InvalidOptionsError, match=message):
        catalogue.get(game_id)


def test_select_by_game_index_seed_and_task_type(catalogue):
    rng = random.Random(0)
    unseen = catalogue.games("valid_unseen")
    assert catalogue.select({"split": "valid_unseen", "index": 5}, "valid_seen", rng) == unseen[5]
    assert catalogue.select({"game": unseen[7].id, "seed": 3}, "valid_seen", rng) == unseen[7]
    by_seed = catalogue.select({"seed": 11}, "valid_unseen", rng)
    assert by_seed == catalogue.select({"seed": 11, "split": "valid_unseen"}, "valid_seen", rng)
    picked = {catalogue.select({"seed": s, "task_type": "pick_heat_then_place_in_recep"}, "valid_seen", rng)
              for s in range(20)}
    assert {game.task_type for game in picked} == {"pick_heat_then_place_in_recep"} and len(picked) > 3
    heat = catalogue.games("valid_seen", "pick_heat_then_place_in_recep")
    assert catalogue.select({"index": 2, "task_type": "pick_heat_then_place_in_recep"}, "valid_seen", rng) == heat[2]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"split": "test"}, "unknown split"),
        ({"index": 140}, r"\[0, 140\)"),
        ({"index": -1}, "index"),
        ({"index": True}, "index"),
        ({"index": "3"}, "index"),
        ({"seed": 1.5}, "seed"),
        ({"task_type": "cook"}, "unknown task_type"),
        ({"goal_index": 3}, "unknown reset option"),
        ({"game": "valid_unseen/x/y", "index": 1}, "either"),
        ({"split": 3}, "must be a string"),
    ],
)
def test_bad_reset_options_are_rejected(catalogue, options, message):
    with pytest.raises(InvalidOptionsError, match=message):
        catalogue.select(options, "valid_seen", random.Random(0))


def test_game_must_match_split_and_task_type(catalogue):
    game = catalogue.games("valid_seen", "look_at_obj_in_light")[0]
    with pytest.raises(InvalidOptionsError, match="has split"):
        catalogue.select({"game": game.id, "split": "valid_unseen"}, "valid_seen", random.Random(0))
    with pytest.raises(InvalidOptionsError, match="has task_type"):
        catalogue.select({"game": game.id, "task_type": "pick_two_obj_and_place"}, "valid_seen", random.Random(0))


def test_config_options_from_the_command_line():
    config = ALFWorldConfig.from_options({"workers": "3", "memoise": "false", "load_timeout_s": "2.5", "think": "pass"})
    assert (config.workers, config.memoise, config.load_timeout_s, config.think) == (3, False, 2.5, "pass")
    assert ALFWorldConfig.from_options({}) == ALFWorldConfig()
    assert ALFWorldConfig().think == "react" and ALFWorldConfig().max_steps == 50
    with pytest.raises(TypeError, match="unknown ALFWorld option"):
        ALFWorldConfig.from_options({"worker": 2})
    with pytest.raises(ValueError, match="true or false"):
        ALFWorldConfig.from_options({"memoise": "maybe"})
    with pytest.raises(ValueError, match="must be int"):
        ALFWorldConfig.from_options({"workers": "two"})
    with pytest.raises(ValueError, match="think mode"):
        ALFWorldConfig(think="ponder")
    with pytest.raises(ValueError, match="unknown split"):
        ALFWorldConfig(split="test")
    with pytest.raises(ValueError, match="workers"):
        ALFWorldConfig(workers=0).pool_settings()
