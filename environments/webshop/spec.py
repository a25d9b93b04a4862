"""The WebShop plugin: how the harness builds, serves, plays and scripts it.

Importing this module stays cheap (the CLI lists every plugin); the engine, the web pages and the
expert are imported when first used.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from flask import Blueprint

from environments.core.engine import SessionFactory
from environments.core.spec import EnvSpec, Task, reward_is_one
from environments.webshop.data_files import DATA_FILES
from environments.webshop.prompt import WEBSHOP_PROMPT
from foundation.scoring import SCORE, Metric, Scoring


def make_factory(**options: Any) -> SessionFactory:
    from environments.webshop.engine import WebShopFactory

    return WebShopFactory(**options)


def make_expert(**options: Any) -> Any:
    from environments.webshop.expert import WebShopExpert

    return WebShopExpert(**options)


def tasks(split: str) -> list[Task]:
    from environments.webshop.splits import goal_indices

    return [Task(f"goal-{i}", {"goal_index": i}, split) for i in goal_indices(split)]


def task_text(observation: str, info: Mapping[str, Any]) -> str:
    """The goal's instruction, as the reset info gives it."""
    return str((info.get("goal") or {}).get("instruction") or observation)


def blueprints(factory: SessionFactory) -> Iterable[Blueprint]:
    from environments.webshop.web import shop_blueprint

    return [shop_blueprint()]


SPEC = EnvSpec(
    name="webshop",
    gym_id="harness/WebShop-v0",
    description="WebShop (Yao et al., 2022): shop a 1,000-product catalogue by search and clicks; "
    "the purchase is scored in [0, 1]. Human shop at / when served.",
    make_factory=make_factory,
    default_max_steps=15,
    gym_entry_point="environments.webshop.gym_env:WebShopEnv",
    splits=("train", "dev", "test", "community_test", "all"),
    tasks=tasks,
    default_eval_split="test",
    task_text=task_text,
    success=reward_is_one,  # the expert's trajectories use the same rule
    prompt=WEBSHOP_PROMPT,
    scoring=Scoring("WebShop", (SCORE, Metric("success", "success %", "success_rate",
                                              "share of episodes with reward exactly 1")),
                    breakdown="score", plotted=("score", "success")),
    data_files=DATA_FILES,
    make_expert=make_expert,
    blueprints=blueprints,
    server_threads=4,  # benchmarks/bench_webshop_load.py: same throughput as 8 or 16, the lowest p99
    factory_options={
        "observation_mode": "text (default), text_rich, html or url",
        "human_goals": "false (default: 6,910 synthetic goals) or true (13 human instructions)",
        "show_attributes": "false (default) or true: the Attributes button on item pages",
        "base_url": "host shown in url observations (default http://127.0.0.1:3000)",
        "noun_tagger": "noun tagger for the reward's type factor (default: the reward module's)",
        "reward_rule": "original (default: options matched as the original code does) or values (as the spec "
        "states it); also a reset option",
        "data_dir": "benchmark data directory (default: $HARNESS_DATA_DIR or ../shared/data)",
    },
)
