"""The ALFWorld plugin: how the harness builds, serves, plays and scripts it.

Importing this module stays cheap (the CLI lists every plugin); the engine and the expert are
imported when first used, and textworld itself only inside the game worker processes.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from itertools import chain, zip_longest
from typing import Any

from environments.alfworld.data_files import DATA_FILES
from environments.alfworld.prompt import ALFWORLD_PROMPT
from environments.core.engine import SessionFactory
from environments.core.spec import EnvSpec, Task
from foundation.scoring import SUCCESS, Scoring


def make_factory(**options: Any) -> SessionFactory:
    from environments.alfworld.session import ALFWorldFactory

    factory = ALFWorldFactory(**options)
    factory.pool.start()  # a server's workers import textworld while it waits for its first client
    return factory


EXPERTS = {  # expert kind -> "module:class"; "walkthrough" is the oracle the default trains on
    "walkthrough": "environments.alfworld.expert:WalkthroughExpert",
    "search": "environments.alfworld.search_expert:SearchingExpert",
}


def make_expert(kind: str = "walkthrough", **options: Any) -> Any:
    """The ALFWorld expert of ``kind``: the stored walkthrough (an oracle) or one that searches."""
    if kind not in EXPERTS:
        raise ValueError(f"unknown ALFWorld expert {kind!r}; choose from {', '.join(EXPERTS)}")
    module, name = EXPERTS[kind].split(":")
    return getattr(importlib.import_module(module), name)(**options)


def tasks(split: str) -> list[Task]:
    """The split's games with the six task types interleaved (each type in id order), so that its
    first N tasks, which a small evaluation or training slice plays, cover the types evenly instead
    of being all ``look_at_obj_in_light``."""
    from environments.alfworld.games import TASK_TYPES, GameCatalogue

    catalogue = GameCatalogue.from_data()
    by_type = [catalogue.games(split, task_type) for task_type in TASK_TYPES]
    interleaved = (game for game in chain.from_iterable(zip_longest(*by_type)) if game is not None)
    return [Task(game.id, {"game": game.id}, split) for game in interleaved]


def task_text(observation: str, info: Mapping[str, Any]) -> str:
    return str(info.get("task") or observation)


def success(reward: float, info: Mapping[str, Any]) -> bool:
    """The game says whether it was won."""
    return bool(info.get("won", reward >= 1.0))


SPEC = EnvSpec(
    name="alfworld",
    gym_id="harness/ALFWorld-v0",
    description="ALFWorld (Shridhar et al., 2021): household tasks as TextWorld PDDL text games "
    "(alfworld 0.4.2, json_2.1.1 files); reward 1 on a win, 50-step cap.",
    make_factory=make_factory,
    default_max_steps=50,
    gym_entry_point="environments.alfworld.gym_env:ALFWorldEnv",
    splits=("valid_seen", "valid_unseen", "valid_train", "train"),
    tasks=tasks,
    default_eval_split="valid_unseen",
    task_text=task_text,
    success=success,
    prompt=ALFWORLD_PROMPT,
    scoring=Scoring("ALFWorld", (SUCCESS,), breakdown="success", plotted=("success",),
                    split_labels={"valid_seen": "seen", "valid_unseen": "unseen"}),
    data_files=DATA_FILES,
    make_expert=make_expert,
    factory_options={
        "split": "split sampled when a reset names no game: valid_seen (default), valid_unseen, valid_train, train",
        "max_steps": "engine steps per episode before the game stops answering (default 50)",
        "think": "react (default: 'think: ...' answers 'OK.', not a game step) or pass (sent to the game)",
        "normalise": "true (default): trim, lowercase, collapse spaces, drop a trailing '.'",
        "map_dialect": "true (default): map 'put X in/on Y' <-> 'move X to Y'",
        "workers": "game worker processes (default 2)",
        "sessions_per_worker": "sessions one worker hosts, one engine each (default 32)",
        "games_per_worker": "game starts before a worker is recycled (default 200)",
        "load_timeout_s": "seconds a game start may take before its worker is killed (default 30)",
        "step_timeout_s": "seconds a step may take before its worker is killed (default 30)",
        "memoise": "true (default): memoise PDDL translation and grammar parsing in the workers",
        "disk_cache": "true (default): also keep translations on disk under cache_dir",
        "cache_dir": "where translations are kept (default: <harness cache>/alfworld-sas)",
        "data_dir": "benchmark data directory (default: $HARNESS_DATA_DIR or ../shared/data)",
    },
)
