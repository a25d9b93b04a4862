"""Trajectories for the trainer tests: the real WebShop expert's, and short ones over real products.

Cached per process, so the WebShop engine starts once per test session.
"""

from __future__ import annotations

import json
import random
from functools import cache

from environments.core.trajectory import Step, Trajectory

SHORT_PROMPT = {"few_shot": False, "history": 1, "max_length": 1024}


@cache
def webshop_expert_trajectories(count: int = 6) -> tuple[Trajectory, ...]:
    """The real WebShop expert's episodes on goals 0..count-1 (the engine starts once per process)."""
    from environments.webshop.engine import WebShopFactory
    from environments.webshop.expert import play_expert_episode

    session = WebShopFactory().new_session()
    return tuple(play_expert_episode(session, goal, split="all") for goal in range(count))


@cache
def short_trajectories(count: int = 12, seed: int = 0) -> tuple[Trajectory, ...]:
    """Short WebShop-shaped demonstrations over real catalogue products (2 or 3 steps each).

    Real expert episodes carry whole result pages (thousands of tokens for the tiny tokenizer); these
    keep the model tests fast while exercising the same code paths.
    """
    from environments.webshop.data_files import CATALOGUE_FILE
    from foundation.data import data_file

    items = json.loads(data_file(CATALOGUE_FILE).read_text())
    rng = random.Random(seed)
    out = []
    for i in range(count):
        item = items[rng.randrange(len(items))]
        name = " ".join(item["name"].split()[: rng.randint(3, 9)]).lower()
        goal = f"i need {name}, and price lower than {rng.randint(10, 90)}.00 dollars"
        asin = str(item.get("asin", "b000000000")).lower()
        steps = [
            Step(f"WebShop [SEP] Instruction: [SEP] {goal} [SEP] Search", f"search[{name}]", 0.0,
                 info={"available_actions": {"has_search_bar": True, "clickables": ["search"]}}),
            Step(f"Instruction: [SEP] {goal} [SEP] Back to Search [SEP] {asin} [SEP] {name} [SEP] $12.99",
                 f"click[{asin}]", 0.0,
                 info={"available_actions": {"has_search_bar": False, "clickables": ["back to search", asin]}}),
        ]
        if rng.random() < 0.5:
            steps.append(Step(f"Instruction: [SEP] {goal} [SEP] Back to Search [SEP] {name} [SEP] Buy Now",
                              "click[buy now]", 1.0, terminated=True,
                              info={"available_actions": {"has_search_bar": False,
                                                          "clickables": ["back to search", "buy now"]}}))
        out.append(Trajectory(id=f"webshop/test/{i:03d}", env="webshop", task_id=f"goal-{i}", task=goal,
                              source="expert", steps=steps, reward=1.0, success=True, split="all"))
    return tuple(out)


def short_prompt():
    from prism_train.formatting import PromptConfig

    return PromptConfig(**SHORT_PROMPT)
