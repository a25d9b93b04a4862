"""ALFWorld sessions and their factory: the :class:`TextSession` the server and Gymnasium drive.

A session is a thin proxy. It picks the game (from the catalogue), turns the agent's text into a
game command (normalisation, dialect mapping, think handling) and keeps the episode's bookkeeping;
the game itself runs in a worker process of the factory's :class:`WorkerPool`.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from environments.alfworld.commands import game_dialect, is_think, normalise, resolve
from environments.alfworld.games import SPLITS, TASK_TYPES, Game, GameCatalogue
from environments.alfworld.pool import Lease, PoolSettings, WorkerPool
from environments.alfworld.worker import WorkerConfig
from environments.core.engine import EngineUnavailableError, JSONDict, SessionStateError, StepOutcome
from foundation.data import cache_dir as harness_cache_dir

log = logging.getLogger(__name__)

THINK_OK = "OK."
# How a "think: ..." action is treated (option ``think``).
THINK_MODES: dict[str, str] = {
    "react": "answers 'OK.' without touching the game and is not an engine step (as ReAct does)",
    "pass": "goes to the game like any other command ('Nothing happens.') and counts as an engine step",
}
_TASK_RE = re.compile(r"Your task is to: (.*)")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class ALFWorldConfig:
    """Every option of the ALFWorld engine, with its default.

    ``max_steps`` caps engine steps per episode (thinks in "react" mode are not engine steps);
    ``normalise`` and ``map_dialect`` switch the command clean-up and the put/move mapping;
    ``workers``, ``sessions_per_worker``, ``games_per_worker``, ``load_timeout_s`` and
    ``step_timeout_s`` size the worker pool; ``memoise`` turns the engine memos on, ``disk_cache``
    keeps translations on disk under ``cache_dir`` (default: the harness cache directory).
    """

    split: str = "valid_seen"
    max_steps: int = 50
    think: str = "react"
    normalise: bool = True
    map_dialect: bool = True
    workers: int = 2
    sessions_per_worker: int = 32
    games_per_worker: int = 200
    load_timeout_s: float = 30.0
    step_timeout_s: float = 30.0
    memoise: bool = True
    disk_cache: bool = True
    cache_dir: str | None = None
    data_dir: str | None = None

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"unknown split {self.split!r}; choose one of {', '.join(SPLITS)}")
        if self.think not in THINK_MODES:
            raise ValueError(f"unknown think mode {self.think!r}; choose one of {', '.join(THINK_MODES)}")
        if self.max_steps < 1:
            raise ValueError(f"max_steps must be at least 1, got {self.max_steps}")

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> ALFWorldConfig:
        """A config from keyword options, converting strings (as a command line gives them)."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - set(fields))
        if unknown:  # a TypeError, as for any unexpected keyword argument
            raise TypeError(f"unknown ALFWorld option(s) {unknown}; known: {', '.join(fields)}")
        return cls(**{name: _coerce(name, str(fields[name].type), value) for name, value in options.items()})

    def pool_settings(self) -> PoolSettings:
        cache_dir = None
        if self.memoise and self.disk_cache:
            if self.cache_dir is not None:
                cache_dir = Path(self.cache_dir)
            else:
                cache_dir = harness_cache_dir() / "alfworld-sas"
        return PoolSettings(
            workers=self.workers,
            sessions_per_worker=self.sessions_per_worker,
            games_per_worker=self.games_per_worker,
            load_timeout_s=self.load_timeout_s,
            step_timeout_s=self.step_timeout_s,
            worker=WorkerConfig(memoise=self.memoise, disk_cache_dir=str(cache_dir) if cache_dir else None),
        )


def _coerce(name: str, annotation: str, value: Any) -> Any:
    if not isinstance(value, str) or annotation.startswith("str"):
        return value
    if annotation == "bool":
        if value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise ValueError(f"option {name} must be true or false, got {value!r}")
    try:
        return {"int": int, "float": float}[annotation](value)
    except ValueError:
        raise ValueError(f"option {name} must be {annotation}, got {value!r}") from None


class ALFWorldFactory:
    """Sessions over one catalogue and one worker pool (a server or an in-process Gymnasium env)."""

    steps_in_workers = True  # games play in the pool's processes: sessions may be stepped from threads at once

    def __init__(self, **options: Any) -> None:
        self.config = ALFWorldConfig.from_options(options)
        self.catalogue = GameCatalogue.from_data(self.config.data_dir)
        self.pool = WorkerPool(self.config.pool_settings())

    def new_session(self) -> ALFWorldSession:
        return ALFWorldSession(self)

    def describe(self) -> JSONDict:
        config = dataclasses.asdict(self.config)
        for private in ("data_dir", "cache_dir"):
            config.pop(private)
        return {
            "engine": "textworld PDDL (alfworld 0.4.2 game files json_2.1.1)",
            "splits": self.catalogue.split_sizes,
            "task_types": list(TASK_TYPES),
            "think_modes": THINK_MODES,
            **config,
            "pool": self.pool.describe(),
        }

    def close(self) -> None:
        self.pool.close()


class ALFWorldSession:
    """One player's episodes, one after another, on a leased engine slot."""

    def __init__(self, factory: ALFWorldFactory) -> None:
        self._config = factory.config
        self._catalogue = factory.catalogue
        self._pool = factory.pool
        self._rng = random.Random()
        self._lease: Lease | None = None
        self._game: Game | None = None
        self._game_dialect = "move"
        self._task = ""
        self._observation = ""
        self._admissible: list[str] = []
        self._won = False
        self._steps = 0

    def reset(self, options: Mapping[str, Any] | None = None) -> tuple[str, JSONDict]:
        game = self._catalogue.select(options or {}, self._config.split, self._rng)
        self._game = None
        if self._lease is not None and self._pool.is_stale(self._lease):
            self._pool.release(self._lease)
            self._lease = None
        if self._lease is None:
            self._lease = self._pool.acquire()
        view = self._pool.call(self._lease, "start", self._config.load_timeout_s, path=str(game.path))
        self._game = game
        self._game_dialect = game_dialect(view["command_templates"])
        self._observation = view["observation"]
        self._admissible = view["admissible_commands"]
        self._won = view["won"]
        self._steps = 0
        match = _TASK_RE.search(self._observation)
        self._task = match.group(1).strip() if match else ""
        if not match:
            log.warning("game %s states no task in its first observation", game.id)
        return self._observation, self._info()

    def step(self, action: str) -> StepOutcome:
        if self._game is None:
            raise SessionStateError("no game in progress: call reset() first")
        if self._won or self._steps >= self._config.max_steps:
            raise SessionStateError(
                f"the episode is over ({'won' if self._won else f'{self._steps} engine steps taken'}): call reset()"
            )
        normalised = normalise(action)
        if self._config.think == "react" and is_think(normalised):
            info = self._info(action_valid=True, command=None, dialect=None, think=True)
            return StepOutcome(THINK_OK, 0.0, False, info)
        command = normalised if self._config.normalise else action.strip()
        resolved = resolve(command, self._admissible, map_dialect=self._config.map_dialect)
        try:
            view = self._pool.call(self._lease, "step", self._config.step_timeout_s, command=resolved.command)
        except EngineUnavailableError:
            self._game = None
            raise
        self._steps += 1
        self._observation = view["observation"]
        self._admissible = view["admissible_commands"]
        self._won = view["won"]
        info = self._info(
            action_valid=resolved.admissible, command=resolved.command, dialect=resolved.dialect, think=False
        )
        return StepOutcome(self._observation, 1.0 if self._won else 0.0, self._won, info)

    def _info(self, **extra: Any) -> JSONDict:
        assert self._game is not None
        return {
            "game": self._game.id,
            "split": self._game.split,
            "task_type": self._game.task_type,
            "task": self._task,
            "available_actions": list(self._admissible),
            "won": self._won,
            "game_dialect": self._game_dialect,
            "engine_steps": self._steps,
            "step_limit_reached": not self._won and self._steps >= self._config.max_steps,
            **extra,
        }

    def observation(self) -> str:
        if self._game is None:
            raise SessionStateError("no game in progress: call reset() first")
        return self._observation

    def available_actions(self) -> list[str]:
        if self._game is None:
            raise SessionStateError("no game in progress: call reset() first")
        return list(self._admissible)

    def close(self) -> None:
        if self._lease is not None:
            self._pool.release(self._lease)
            self._lease = None
        self._game = None
