"""The ALFWorld game files: which games exist, how clients name them, and how names are checked.

A client names a game by its id, ``<split>/<task-dir>/<trial>`` (for example
``valid_seen/pick_and_place_simple-Book-None-SideTable-329/trial_T20190908_050633_745514``), never by
a filesystem path. An id is accepted only if it is exactly one of the games listed from the unpacked
archive, so no client string is ever joined onto a path or opened.
"""

from __future__ import annotations

import json
import os
import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from environments.alfworld.data_files import GAMES_ARCHIVE
from environments.core.engine import InvalidOptionsError
from foundation.data import unpacked_archive

ARCHIVE_DIR = "json_2.1.1"
GAME_FILE = "game.tw-pddl"
SPLITS = ("train", "valid_seen", "valid_unseen", "valid_train")
# The six ALFRED task types; a game's type is its task directory's name up to the first "-".
TASK_TYPES = (
    "pick_and_place_simple",
    "look_at_obj_in_light",
    "pick_clean_then_place_in_recep",
    "pick_heat_then_place_in_recep",
    "pick_cool_then_place_in_recep",
    "pick_two_obj_and_place",
)
RESET_OPTIONS = ("game", "split", "index", "seed", "task_type")
MAX_GAME_ID_CHARS = 300


@dataclass(frozen=True)
class Game:
    """One game: its public id and where its file lies (the path never leaves the server)."""

    id: str
    path: Path

    @property
    def split(self) -> str:
        return self.id.split("/", 1)[0]

    @property
    def name(self) -> str:
        """The id without the split (``<task-dir>/<trial>``), used in trajectory ids."""
        return self.id.split("/", 1)[1]

    @property
    def task_type(self) -> str:
        return self.id.split("/")[1].split("-", 1)[0]

    def walkthrough(self) -> list[str]:
        """The stored expert actions that win this game."""
        with open(self.path, encoding="utf-8") as fh:
            return list(json.load(fh)["walkthrough"])


class GameCatalogue:
    """Lists the games of each split (lazily, once) and turns reset options into a :class:`Game`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._games: dict[str, dict[str, Game]] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_data(cls, data_dir: str | os.PathLike[str] | None = None) -> GameCatalogue:
        """The catalogue of the archive in the data directory, unpacked once into the cache."""
        return cls(unpacked_archive(GAMES_ARCHIVE, data_dir) / ARCHIVE_DIR)

    def _split_index(self, split: str) -> dict[str, Game]:
        if split not in SPLITS:
            raise InvalidOptionsError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
        with self._lock:
            if split not in self._games:
                self._games[split] = self._scan(split)
            return self._games[split]

    def _scan(self, split: str) -> dict[str, Game]:
        games: dict[str, Game] = {}
        split_dir = self.root / split
        if not split_dir.is_dir():
            return games
        for task_dir in sorted(os.scandir(split_dir), key=lambda entry: entry.name):
            if not task_dir.is_dir():
                continue
            for trial in sorted(os.scandir(task_dir.path), key=lambda entry: entry.name):
                path = Path(trial.path) / GAME_FILE
                if path.is_file():
                    game_id = f"{split}/{task_dir.name}/{trial.name}"
                    games[game_id] = Game(game_id, path)
        return games

    def games(self, split: str, task_type: str | None = None) -> list[Game]:
        """The split's games in id order, optionally only one task type."""
        games = list(self._split_index(split).values())
        if task_type is not None:
            _check_task_type(task_type)
            games = [game for game in games if game.task_type == task_type]
        return games

    @cached_property
    def split_sizes(self) -> dict[str, int]:
        return {split: len(self._split_index(split)) for split in SPLITS}

    def get(self, game_id: Any) -> Game:
        """The game with this id; any other string (a path, an escape, a typo) is rejected."""
        if not isinstance(game_id, str) or not game_id:
            raise InvalidOptionsError(f"'game' must be a non-empty string id, got {game_id!r}")
        if len(game_id) > MAX_GAME_ID_CHARS:
            raise InvalidOptionsError(f"'game' is {len(game_id)} characters; ids are at most {MAX_GAME_ID_CHARS}")
        parts = game_id.split("/")
        if game_id.startswith("/") or "\\" in game_id or any(part in ("", ".", "..") for part in parts):
            raise InvalidOptionsError(
                f"game id {game_id!r} is not a relative id: use '<split>/<task-dir>/<trial>', "
                "without '..', '.', empty parts, backslashes or a leading '/'"
            )
        index = self._split_index(parts[0])
        game = index.get(game_id)
        if game is None:
            raise InvalidOptionsError(
                f"no game {game_id!r} in split {parts[0]!r} ({len(index)} games; ids look like "
                f"{next(iter(index), '<split>/<task-dir>/<trial>')!r})"
            )
        return game

    def select(self, options: Mapping[str, Any], default_split: str, rng: random.Random) -> Game:
        """The game that reset options ask for.

        ``game`` names one; otherwise the candidates are the games of ``split`` (default
        ``default_split``), optionally only ``task_type``, and ``index`` picks one by position or
        ``seed`` picks one at random (``rng`` when neither is given).
        """
        unknown = sorted(set(options) - set(RESET_OPTIONS))
        if unknown:
            raise InvalidOptionsError(f"unknown reset option(s) {unknown}; known: {', '.join(RESET_OPTIONS)}")
        task_type = options.get("task_type")
        if task_type is not None:
            _check_task_type(task_type)
        if options.get("game") is not None:
            if options.get("index") is not None:
                raise InvalidOptionsError("give either 'game' or 'index', not both")
            game = self.get(options["game"])
            for key, value in (("split", game.split), ("task_type", game.task_type)):
                if options.get(key) is not None and options[key] != value:
                    raise InvalidOptionsError(f"game {game.id!r} has {key} {value!r}, not {options[key]!r}")
            return game
        split = options.get("split") or default_split
        if not isinstance(split, str):
            raise InvalidOptionsError(f"'split' must be a string, got {split!r}")
        candidates = self.games(split, task_type)
        if not candidates:
            kind = f" of type {task_type!r}" if task_type else ""
            raise InvalidOptionsError(f"split {split!r} has no games{kind}")
        index = options.get("index")
        if index is not None:
            if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(candidates):
                raise InvalidOptionsError(f"'index' must be an integer in [0, {len(candidates)}), got {index!r}")
            return candidates[index]
        seed = options.get("seed")
        if seed is not None:
            if isinstance(seed, bool) or not isinstance(seed, int):
                raise InvalidOptionsError(f"'seed' must be an integer, got {seed!r}")
            rng = random.Random(seed)
        return candidates[rng.randrange(len(candidates))]


def _check_task_type(task_type: Any) -> None:
    if task_type not in TASK_TYPES:
        raise InvalidOptionsError(f"unknown task_type {task_type!r}; choose one of {', '.join(TASK_TYPES)}")
