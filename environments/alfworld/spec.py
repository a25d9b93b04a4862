"""The ALFWorld plugin: how the harness builds, serves, plays and scripts it.

Importing this module stays cheap (the CLI lists every plugin); the engine and the expert are
imported when first used, and textworld itself only inside the game worker processes.
"""

from __future__ import annotations

from typing import Any

from environments.core.engine import SessionFactory
from environments.core.registry import EnvSpec


def make_factory(**options: Any) -> SessionFactory:
    from environments.alfworld.session import ALFWorldFactory

    factory = ALFWorldFactory(**options)
    factory.pool.start()  # a server's workers import textworld while it waits for its first client
    return factory


def make_expert(**options: Any) -> Any:
    from environments.alfworld.expert import WalkthroughExpert

    return WalkthroughExpert(**options)


SPEC = EnvSpec(
    name="alfworld",
    gym_id="harness/ALFWorld-v0",
    description="ALFWorld (Shridhar et al., 2021): household tasks as TextWorld PDDL text games "
    "(alfworld 0.4.2, json_2.1.1 files); reward 1 on a win, 50-step cap.",
    make_factory=make_factory,
    default_max_steps=50,
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
