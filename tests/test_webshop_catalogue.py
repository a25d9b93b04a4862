"""The WebShop catalogue, goals and splits, loaded from the real 1k-product data.

The pinned goal texts, price limits and prices were checked against an independent restatement of
the original algorithm (``random.seed(233)`` before loading, the original's loader and
``get_synthetic_goals``, then ``random.seed(233); random.shuffle(goals)``): all 6,910 goals agreed in
order, text and price limit, and all 1,000 prices agreed bit for bit.
"""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest

from environments.core.engine import InvalidOptionsError
from environments.webshop.catalogue import (
    ATTRIBUTES_FILE,
    CATALOGUE_FILE,
    HUMAN_INSTRUCTIONS_FILE,
    build_catalogue,
    load_catalogue,
)
from environments.webshop.splits import goal_indices, split_names
from foundation.data import data_file


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue()


@pytest.fixture(scope="module")
def raw():
    return tuple(
        json.loads(data_file(name).read_text()) for name in (CATALOGUE_FILE, ATTRIBUTES_FILE, HUMAN_INSTRUCTIONS_FILE)
    )


FIRST_GOALS = [
    (
        "B0743JKHBV",
        'Find me double sided, machine washable decorative pillows with printing technology with size: 28" x 28", '
        "and price lower than 50.00 dollars",
        50.0,
    ),
    (
        "B09QCP4579",
        "Find me butt lifting, light weight women's shorts with high waist, tummy control with color: black, "
        "and size: 3x-large, and price lower than 30.00 dollars",
        30.0,
    ),
    (
        "B099WH1RTM",
        "Find me ready hang wall art with solid wood for living room with color: turtles and african american "
        "couple, and size: 8x10 inch, and price lower than 50.00 dollars",
        50.0,
    ),
    (
        "B09LSKQF8C",
        "Find me dual band streaming media players with quad core, and price lower than 340.00 dollars",
        340.0,
    ),
    (
        "B09M63B87V",
        "Find me hand wash women's sweaters with long sleeve, stretch fabric, polyester spandex for teen girls, "
        "daily wear with color: xnj-tshirt334-gray, and size: x-large, and price lower than 40.00 dollars",
        40.0,
    ),
]


def test_counts(catalogue):
    assert len(catalogue.products) == 1000
    assert len(catalogue.synthetic_goals) == 6910
    assert len(catalogue.human_goals) == 13
    assert len({goal.asin for goal in catalogue.synthetic_goals}) == 415


def test_first_goals_match_the_original_algorithm(catalogue):
    got = [(g.asin, g.instruction_text, g.price_upper) for g in catalogue.synthetic_goals[:5]]
    assert got == FIRST_GOALS
    first = catalogue.synthetic_goals[0]
    assert first.options == {"size": '28" x 28"'}
    assert first.option_values == ('28" x 28"',)
    assert first.attributes == ("double sided", "machine washable", "printing technology")
    assert first.weight == pytest.approx(0.05299377134820173, rel=1e-12)
    assert first.name == catalogue.product(first.asin).title
    assert first.query == "decorative pillows"


def test_range_prices_are_seed_233_draws_in_catalogue_order(catalogue):
    ranged = [p for p in catalogue.products if len(p.pricing) == 2]
    assert len(ranged) == 93
    first = ranged[0]
    assert (first.asin, first.pricing, first.price_tag) == ("B08ZRR3DZT", (19.99, 27.99), "$19.99 to $27.99")
    # The first range-priced product takes the first draw of a fresh Random(233).
    assert first.price == random.Random(233).uniform(19.99, 27.99) == 25.44981531157882
    assert ranged[1].price == 23.2732021098098
    assert all(min(p.pricing) <= p.price <= max(p.pricing) for p in ranged)


def test_product_fields(catalogue):
    first = catalogue.products[0]
    assert first.asin == "B06Y3VLDFB"
    assert first.title.startswith("Vhomes Lights Reclaimed Wood Console Table")
    assert (first.pricing, first.price, first.price_tag) == ((877.8,), 877.8, "$877.8")
    assert first.options == {}
    assert first.attributes == ("console table", "solid wood")
    assert first.rating == "N.A." and first.reviews == ()
    assert first.query == "console tables"
    # Option groups are lowercased; "/" in values becomes " | ".
    slashed = catalogue.product("b09m4c31fl")
    assert dict(slashed.options) == {"size": ("0.53oz | 15g x 10", "1.41oz | 40g x 10")}
    # A bullet-point string becomes a one-element list.
    assert len(catalogue.product("B001EHF3KK").bullet_points) == 1
    assert all(p.query == p.query.lower().strip() for p in catalogue.products)
    with pytest.raises(KeyError, match="no product"):
        catalogue.product("B000000000")


def test_goal_structure(catalogue):
    for goal in catalogue.synthetic_goals:
        product = catalogue.product(goal.asin)
        assert list(goal.options) == sorted(product.options)
        assert all(goal.options[name] in product.options[name] for name in goal.options)
        assert goal.price_upper == 1_000_000.0 or goal.instruction_text.endswith(f"{goal.price_upper:.2f} dollars")
    limited = [g for g in catalogue.synthetic_goals if g.price_upper < 1_000_000.0]
    assert all(catalogue.product(g.asin).price < g.price_upper for g in limited)
    assert sum(g.price_upper == 1_000_000.0 for g in catalogue.synthetic_goals) == 15
    human = catalogue.human_goals[0]
    assert human.human and human.weight == 1.0
    assert isinstance(human.options, tuple)
    assert not human.instruction_text.split(",")[0].endswith(".")
    json.dumps([g.to_json() for g in catalogue.synthetic_goals[:50] + catalogue.human_goals])


def test_loading_leaves_the_global_rng_alone_and_is_deterministic(raw):
    random.seed(12345)
    expected = [random.random() for _ in range(3)]
    random.seed(12345)
    first = build_catalogue(*raw)
    assert [random.random() for _ in range(3)] == expected
    second = build_catalogue(*raw)
    assert first.synthetic_goals == second.synthetic_goals
    assert [p.price for p in first.products] == [p.price for p in second.products]


def test_load_is_cached(catalogue):
    assert load_catalogue() is catalogue


def test_splits_are_disjoint_by_product(catalogue):
    goals = catalogue.synthetic_goals
    train, dev, test = (goal_indices(name) for name in ("train", "dev", "test"))
    assert len(test) >= 200
    assert sorted(train + dev + test) == list(range(len(goals)))
    asins = {name: {goals[i].asin for i in idx} for name, idx in (("train", train), ("dev", dev), ("test", test))}
    assert not asins["test"] & (asins["train"] | asins["dev"])
    assert not asins["dev"] & asins["train"]
    # No product dominates a held-out split.
    assert max(Counter(goals[i].asin for i in test).values()) <= 20
    assert goal_indices("test") == goal_indices("test")  # fixed, not resampled
    assert goal_indices("community_test") == tuple(range(500))
    assert goal_indices("all") == tuple(range(6910))
    assert set(split_names()) >= {"train", "dev", "test", "community_test", "all"}


def test_human_splits_and_bad_split_names():
    assert goal_indices("test", human=True) == tuple(range(13))
    with pytest.raises(InvalidOptionsError, match="unknown split 'validation'"):
        goal_indices("validation")
    with pytest.raises(InvalidOptionsError, match="unknown split 'train'"):
        goal_indices("train", human=True)


def test_characters_cover_all_text(catalogue):
    chars = catalogue.characters()
    for goal in catalogue.synthetic_goals[:200]:
        assert set(goal.instruction_text) <= chars
    for product in catalogue.products[:200]:
        assert set(product.title) | set(product.description) <= chars
