"""The WebShop purchase reward, as the original ``web_agent_site/engine/goal.py`` computes it.

reward = r_type * (matched attributes + matched options + price ok) / (#attributes + #options + 1)

What each part does, checked against the original ``goal.py`` (the revision that passes
``goal_options.items()``, as at 64fa2a5) and ``normalize.py``. An older revision in the original's
history (blob of commit 6ba9969) matched a "size" option exactly and also searched the product text
for options; the revision reproduced here does neither.

- Type factor: same query, at least two shared category-path parts, and the title score: the share
  of the goal name's nouns (counted with repeats) found among the product name's nouns (as sets).
  The noun tagger is a named, replaceable part (:mod:`environments.webshop.nouns`).
- Attributes: a goal attribute counts when a product attribute has a token-set ratio above 85 with
  it, or when it is a substring of the lowercased title, joined bullet points or description.
- Options: a goal option counts when any selected value (colour-normalised) has a token-set ratio
  above 85 with it. What the goal side of that comparison is depends on the **reward rule**:

  - ``original`` (default): exactly what the original does. For synthetic goals (options as a dict)
    it hands the option reward ``goal_options.items()``, so every later step sees the
    ``(name, value)`` *pair*: colour normalisation tests ``colour in pair`` (true only when the name
    or the value *equals* a colour word, which then replaces the pair), and the fuzzy matcher
    compares against the pair's string form (``"('size', 'x-large')"``, tokens ``size x large``). So
    a selected value whose tokens are a subset of the name's and value's tokens matches, and an
    exact purchase of ``1877brown`` (normalised to ``brown``) against ``('color', '1877brown')``
    does not (ratio 50). Human goals (options as a list) are matched by value.
  - ``values``: the option rule as ``docs/webshop-spec.md`` states it, on values for every goal
    (both sides colour-normalised). It differs from ``original`` only for synthetic goals.

  Every result records the rule in ``components["reward_rule"]``.
- Fuzzy matching is thefuzz's ``token_set_ratio`` as the original calls it: default processing
  (characters 128-255 dropped, every non-word character turned into a space, lowercased, stripped)
  and an integer-rounded score, compared with ``> 85``. rapidfuzz computes the same InDel ratio that
  thefuzz uses with python-Levenshtein: identical scores on every attribute and option pair of the
  1k catalogue. thefuzz's pure-Python fallback (difflib) differs on 4 of 675,693 option pairs, all
  binocular magnifications such as "8x40 hd binoculars" vs "10x50 hd binoculars".
- A goal without attributes scores its options and price only (the original divides by zero).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from rapidfuzz import fuzz

from environments.webshop.catalogue import Goal, Product
from environments.webshop.nouns import NounTagger, get_noun_tagger

FUZZY_THRESHOLD = 85
"""A fuzzy match needs a token-set ratio strictly above this."""
CATEGORY_SEPARATOR = "›"
MIN_SHARED_CATEGORIES = 2
NO_NOUN_TITLE_SCORE = 0.2
"""Title score when the goal's name has no nouns (the original's constant)."""

COLOR_WORDS: tuple[str, ...] = (
    "alabaster apricot aqua ash asphalt azure banana beige black blue blush bordeaux bronze brown "
    "burgundy camel camo caramel champagne charcoal cheetah chestnut chocolate christmas coffee cognac "
    "copper coral cranberry cream crystal dark denim eggplant elephant espresso fuchsia gold granite "
    "grape graphite grass gray green grey heather indigo ivory ivy khaki lavender lemon leopard light "
    "lilac lime magenta maroon mauve merlot midnight mint mocha multicolor mushroom mustard natural navy "
    "nude olive orange peach pewter pink plum purple rainbow red rose royal rust sand sapphire seashell "
    "silver skull slate steel stone stonewash sunflower tan taupe teal tiger turquoise violet walnut "
    "wheat white wine yellow"
).split()
"""The original's colour list (normalize.py), in its order: the first one contained in a value wins."""

_LATIN1_HIGH = dict.fromkeys(range(128, 256))
_NON_WORD = re.compile(r"\W", re.UNICODE)


def normalize_color(value: str) -> str:
    """The first known colour word contained in ``value`` (substring, list order), else ``value``."""
    return next((color for color in COLOR_WORDS if color in value), value)


def original_goal_option(name: str, value: str) -> str:
    """What the original matches a synthetic goal's option ``name: value`` as.

    The original's ``normalize_color`` receives the pair itself, so ``colour in pair`` is an equality
    test against the name and the value; when neither is a colour word the pair is kept, and thefuzz
    turns it into its string form before matching.
    """
    pair = (name, value)
    return next((color for color in COLOR_WORDS if color in pair), str(pair))


def _goal_option_values(goal: Goal) -> list[str]:
    """The ``values`` rule: every goal option by value, colour-normalised."""
    return [normalize_color(value) for value in goal.option_values]


def _goal_option_original(goal: Goal) -> list[str]:
    """The ``original`` rule: synthetic goals' options as (name, value) pairs, human goals' by value."""
    if isinstance(goal.options, Mapping):
        return [original_goal_option(name, value) for name, value in goal.options.items()]
    return _goal_option_values(goal)


REWARD_RULES: dict[str, Callable[[Goal], list[str]]] = {
    "original": _goal_option_original,
    "values": _goal_option_values,
}
"""Reward rule name -> the goal-side option terms it matches selected values against (one per goal option)."""
DEFAULT_REWARD_RULE = "original"


def check_reward_rule(name: Any) -> str:
    """``name`` if it is a registered reward rule, else a ValueError that lists them."""
    if not isinstance(name, str) or name not in REWARD_RULES:
        raise ValueError(f"unknown reward_rule {name!r}; choose one of {sorted(REWARD_RULES)}")
    return name


@lru_cache(maxsize=65_536)
def _fuzzy_process(text: str) -> str:
    """thefuzz's default ``full_process(force_ascii=True)``: drop chr 128-255, non-word -> space."""
    return _NON_WORD.sub(" ", text.translate(_LATIN1_HIGH)).lower().strip()


def token_set_ratio(a: str, b: str) -> int:
    """thefuzz's ``fuzz.token_set_ratio(a, b)`` with its default processing, rounded to an int."""
    left, right = _fuzzy_process(a), _fuzzy_process(b)
    if not left or not right:
        return 0
    return round(fuzz.token_set_ratio(left, right, processor=None))


def _fuzzy_match(a: str, b: str) -> bool:
    return token_set_ratio(a, b) > FUZZY_THRESHOLD


def type_reward(goal: Goal, product: Product, tagger: NounTagger) -> dict[str, Any]:
    """r_type and what decided it: same query, shared category path parts, shared title nouns."""
    query_match = product.query == goal.query
    bought_path = {part.strip() for part in product.product_category.split(CATEGORY_SEPARATOR)}
    goal_path = {part.strip() for part in goal.product_category.split(CATEGORY_SEPARATOR)}
    category_match = len(bought_path & goal_path) >= MIN_SHARED_CATEGORIES
    goal_nouns = tagger.nouns(goal.name)
    product_nouns = tagger.nouns(product.name)
    if goal_nouns:
        title_score = len(set(goal_nouns) & set(product_nouns)) / len(goal_nouns)
    else:
        title_score = NO_NOUN_TITLE_SCORE
    r_type = 1.0
    if not (query_match or category_match or title_score > 0.2):
        r_type = 0.5
    if title_score < 0.1:
        r_type = 0.1
    if title_score == 0.0:
        r_type = 0.0
    return {
        "r_type": r_type,
        "query_match": query_match,
        "category_match": category_match,
        "title_score": title_score,
        "goal_nouns": list(goal_nouns),
        "product_nouns": list(product_nouns),
    }


def _attribute_found(wanted: str, product: Product) -> bool:
    if any(_fuzzy_match(have, wanted) for have in product.attributes):
        return True
    texts = (product.title, " ".join(product.bullet_points), product.description)
    return any(wanted in text.lower() for text in texts)


def _split(items: Sequence[str], found: Sequence[bool]) -> tuple[list[str], list[str]]:
    """(items found, items not found), each in goal order."""
    hits: list[str] = []
    misses: list[str] = []
    for item, hit in zip(items, found, strict=True):
        (hits if hit else misses).append(item)
    return hits, misses


@dataclass(frozen=True)
class RewardResult:
    """The score and its JSON-serialisable parts (the original's verbose info, and more)."""

    reward: float
    components: dict[str, Any]


def _check_inputs(selected_options: Any, price: Any) -> None:
    if not isinstance(selected_options, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in selected_options.items()
    ):
        raise TypeError(f"selected_options must map option names to values (str -> str), got {selected_options!r}")
    if isinstance(price, bool) or not isinstance(price, int | float) or not math.isfinite(price):
        raise ValueError(f"price must be a finite number, got {price!r}")


def _resolve_tagger(tagger: NounTagger | str | None) -> NounTagger:
    if tagger is None:
        return get_noun_tagger()
    if isinstance(tagger, str):
        return get_noun_tagger(tagger)
    if not callable(getattr(tagger, "nouns", None)) or not isinstance(getattr(tagger, "name", None), str):
        raise TypeError(f"tagger must be a registered tagger name or have .name and .nouns(text), got {tagger!r}")
    return tagger


def score_purchase(
    goal: Goal,
    product: Product,
    selected_options: Mapping[str, str],
    price: float,
    tagger: NounTagger | str | None = None,
    reward_rule: str = DEFAULT_REWARD_RULE,
) -> RewardResult:
    """Score buying ``product`` at ``price`` with ``selected_options`` (group -> value) against ``goal``.

    ``reward_rule`` chooses how goal options are matched (see the module docstring).
    """
    _check_inputs(selected_options, price)
    goal_terms = REWARD_RULES[check_reward_rule(reward_rule)](goal)
    noun_tagger = _resolve_tagger(tagger)
    type_parts = type_reward(goal, product, noun_tagger)

    attributes = list(goal.attributes)
    matched_attributes, unmatched_attributes = _split(
        attributes, [_attribute_found(attribute, product) for attribute in attributes]
    )

    goal_values = list(goal.option_values)
    selected = [normalize_color(value) for value in selected_options.values()]
    matched_options, unmatched_options = _split(
        goal_values, [any(_fuzzy_match(value, term) for value in selected) for term in goal_terms]
    )

    price_ok = price <= goal.price_upper
    total = len(attributes) + len(goal_values) + 1
    reward = (len(matched_attributes) + len(matched_options) + int(price_ok)) / total * type_parts["r_type"]
    components: dict[str, Any] = {
        "reward": reward,
        **type_parts,
        "r_att": len(matched_attributes) / len(attributes) if attributes else None,
        "w_att": len(attributes) / total,
        "r_option": len(matched_options) / len(goal_values) if goal_values else None,
        "w_option": len(goal_values) / total,
        "r_price": price_ok,
        "w_price": 1 / total,
        "matched_attributes": matched_attributes,
        "unmatched_attributes": unmatched_attributes,
        "matched_options": matched_options,
        "unmatched_options": unmatched_options,
        "selected_options": dict(selected_options),
        "price": float(price),
        "price_upper": float(goal.price_upper),
        "asin": product.asin,
        "goal_asin": goal.asin,
        "tagger": noun_tagger.name,
        "reward_rule": reward_rule,
    }
    return RewardResult(reward=reward, components=components)
