"""The WebShop catalogue and goals, loaded from the original-schema files exactly as the original does.

Published WebShop numbers are only comparable when every run sees the same products, prices, goal
texts and goal order. The original draws range prices and goal price limits from an unseeded RNG, so
its runs disagree; here one ``random.Random(233)`` is consumed in the original order instead:

1. one uniform draw per range-priced product, in catalogue order (the price actually charged);
2. one ``sample(candidates, 2)`` per goal-generating product (synthetic) or per human instruction,
   in generation order (the goal's price limit);
3. a fresh ``Random(233)`` shuffles the goal list; goal index ``i`` is the i-th goal afterwards.

Everything is loaded once per process (:func:`load_catalogue` is cached) and is immutable afterwards.
"""

from __future__ import annotations

import itertools
import json
import logging
import random
import re
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from environments.webshop.data_files import ATTRIBUTES_FILE, CATALOGUE_FILE, HUMAN_INSTRUCTIONS_FILE
from foundation.data import data_file

log = logging.getLogger(__name__)

RANDOM_SEED = 233
"""Seeds both the price draws (before loading) and the goal shuffle, as documented in the spec."""
PRICE_STEPS: tuple[float, ...] = tuple(10.0 * i for i in range(1, 100))
"""Candidate price limits: the multiples of 10 up to 990."""
NO_PRICE_LIMIT = 1_000_000.0
MISSING_PRICE = 100.0
DUMMY_ATTRIBUTE = "DUMMY_ATTR"
"""What the original stores for a product that has no attribute record at all."""

_NOT_PRICE_CHARS = re.compile(r"[^\d.]")


@dataclass(frozen=True)
class Product:
    """One catalogue item with the fields the pages, the search engine and the reward read.

    ``pricing`` is the parsed price list (one price, or the two ends of a range); ``price`` is the
    price actually charged (a seed-233 uniform draw inside a range); ``price_tag`` is what the pages
    show (``$x`` or ``$a to $b``). ``options`` maps each lowercased option group, in catalogue order,
    to its lowercased values (``/`` rendered as `` | ``).
    """

    asin: str
    title: str
    description: str
    bullet_points: tuple[str, ...]
    pricing: tuple[float, ...]
    price_tag: str
    price: float
    options: Mapping[str, tuple[str, ...]] = field(hash=False)
    option_to_image: Mapping[str, str | None] = field(hash=False, repr=False)
    attributes: tuple[str, ...]
    category: str
    query: str
    product_category: str
    main_image: str
    rating: str = "N.A."
    reviews: tuple[Mapping[str, Any], ...] = ()

    @property
    def name(self) -> str:
        """The product name (the original's ``name``; identical to ``Title``)."""
        return self.title

    def to_json(self) -> dict[str, Any]:
        """The product as a JSON-serialisable dict (for info records and debugging)."""
        return {
            "asin": self.asin,
            "title": self.title,
            "price": self.price,
            "price_tag": self.price_tag,
            "options": {name: list(values) for name, values in self.options.items()},
            "attributes": list(self.attributes),
            "category": self.category,
            "query": self.query,
            "product_category": self.product_category,
        }


@dataclass(frozen=True)
class Goal:
    """One shopping task: the instruction and what a perfect purchase must match.

    ``options`` is a dict (option name -> wanted value) for synthetic goals and a tuple of wanted
    values for human goals, as in the original; :attr:`option_values` gives the values either way.
    ``name``, ``query``, ``category`` and ``product_category`` are the target product's, used by the
    reward's type factor.
    """

    asin: str
    instruction_text: str
    attributes: tuple[str, ...]
    options: Mapping[str, str] | tuple[str, ...] = field(hash=False)
    price_upper: float
    name: str
    query: str
    category: str
    product_category: str
    weight: float
    human: bool = False

    @property
    def option_values(self) -> tuple[str, ...]:
        if isinstance(self.options, Mapping):
            return tuple(self.options.values())
        return tuple(self.options)

    def to_json(self) -> dict[str, Any]:
        return {
            "asin": self.asin,
            "instruction_text": self.instruction_text,
            "attributes": list(self.attributes),
            "goal_options": dict(self.options) if isinstance(self.options, Mapping) else list(self.options),
            "price_upper": self.price_upper,
            "name": self.name,
            "query": self.query,
            "category": self.category,
            "product_category": self.product_category,
            "weight": self.weight,
            "human": self.human,
        }


@dataclass(frozen=True, eq=False)
class Catalogue:
    """Products in catalogue order, both goal lists in their canonical (shuffled) order.

    Compared and hashed by identity: there is one per process and data directory.
    """

    products: tuple[Product, ...]
    by_asin: Mapping[str, Product] = field(repr=False)
    synthetic_goals: tuple[Goal, ...] = field(repr=False)
    human_goals: tuple[Goal, ...] = field(repr=False)
    load_seconds: float = 0.0

    def goals(self, human: bool = False) -> tuple[Goal, ...]:
        return self.human_goals if human else self.synthetic_goals

    def product(self, asin: str) -> Product:
        """The product with this ASIN (case-insensitive, since actions lowercase their argument)."""
        try:
            return self.by_asin[asin.upper()]
        except KeyError:
            raise KeyError(f"no product with ASIN {asin!r} in the catalogue") from None

    def characters(self) -> set[str]:
        """Every character that product or goal text can put on a page (for Gymnasium's Text space)."""
        chars: set[str] = set()
        for product in self.products:
            chars.update(product.title, product.description, product.price_tag, product.asin)
            chars.update(product.category, product.query, product.product_category)
            for text in itertools.chain(product.bullet_points, product.attributes, product.options):
                chars.update(text)
            for values in product.options.values():
                for value in values:
                    chars.update(value)
        for goal in itertools.chain(self.synthetic_goals, self.human_goals):
            chars.update(goal.instruction_text)
        return chars


def _parse_pricing(raw: str | None) -> tuple[tuple[float, ...], str]:
    """The price list and the tag the pages show; a missing price becomes ``$100.0``."""
    if not raw:
        return (MISSING_PRICE,), f"${MISSING_PRICE}"
    prices = [float(_NOT_PRICE_CHARS.sub("", part)) for part in raw.split("$")[1:]]
    if len(prices) == 1:
        return (prices[0],), f"${prices[0]}"
    return (prices[0], prices[1]), f"${prices[0]} to ${prices[1]}"


def _parse_options(raw: Any) -> tuple[dict[str, tuple[str, ...]], dict[str, str | None]]:
    """Option groups (lowercased names, catalogue order) and the image shown for each value."""
    options: dict[str, tuple[str, ...]] = {}
    images: dict[str, str | None] = {}
    if not raw:
        return options, images
    for name, contents in raw.items():
        if contents is None:
            continue
        values = []
        for content in contents:
            value = content["value"].strip().replace("/", " | ").lower()
            values.append(value)
            images[value] = content.get("image")
        options[name.lower()] = tuple(values)
    return options, images


def _charged_price(pricing: Sequence[float], rng: random.Random) -> float:
    """The price charged: the single price, or one uniform draw inside a range (consumes ``rng``)."""
    if len(pricing) == 1:
        return pricing[0]
    return rng.uniform(pricing[0], pricing[1])


def _price_limit(price: float, rng: random.Random) -> tuple[float, str]:
    """A goal's price limit and instruction clause, drawn as the original draws it."""
    candidates = [step for step in PRICE_STEPS if step > price][:4]
    if len(candidates) < 2:
        return NO_PRICE_LIMIT, ""
    _, upper = sorted(rng.sample(candidates, 2))
    return upper, f", and price lower than {upper:.2f} dollars"


def _load_products(
    raw_products: list[dict[str, Any]], raw_attributes: Mapping[str, Any], rng: random.Random
) -> list[Product]:
    products: list[Product] = []
    seen: set[str] = set()
    for raw in raw_products:
        asin = raw["asin"]
        if asin == "nan" or len(asin) > 10 or asin in seen:
            continue
        seen.add(asin)
        bullets = raw["small_description"]
        pricing, price_tag = _parse_pricing(raw.get("pricing"))
        options, images = _parse_options(raw["customization_options"])
        record = raw_attributes.get(asin, {})
        products.append(
            Product(
                asin=asin,
                title=raw["name"],
                description=raw["full_description"],
                bullet_points=tuple(bullets) if isinstance(bullets, list) else (bullets,),
                pricing=pricing,
                price_tag=price_tag,
                price=_charged_price(pricing, rng),
                options=options,
                option_to_image=images,
                attributes=tuple(record.get("attributes", [DUMMY_ATTRIBUTE])),
                category=raw["category"],
                query=raw["query"].lower().strip(),
                product_category=raw["product_category"],
                main_image=raw["images"][0],
            )
        )
    return products


def _with_weights(goals: list[dict[str, Any]], human: bool) -> list[Goal]:
    """Attach sampling weights: mean of 1/(goals sharing the attribute) (1 for human goals)."""
    counts: Counter[str] = Counter(att for goal in goals for att in goal["attributes"])
    out = []
    for goal in goals:
        if human:
            weight = 1.0
        else:
            weight = sum(1.0 / counts[att] for att in goal["attributes"]) / len(goal["attributes"])
        out.append(Goal(weight=weight, human=human, **goal))
    return out


def _target_fields(product: Product) -> dict[str, str]:
    return {
        "asin": product.asin,
        "name": product.title,
        "query": product.query,
        "category": product.category,
        "product_category": product.product_category,
    }


def synthetic_goals(
    products: Sequence[Product], raw_attributes: Mapping[str, Any], rng: random.Random
) -> list[Goal]:
    """One goal per option combination of each product with an instruction, in catalogue order."""
    goals: list[dict[str, Any]] = []
    for product in products:
        instruction = raw_attributes.get(product.asin, {}).get("instruction")
        if instruction is None:
            continue
        attributes = tuple(raw_attributes[product.asin]["instruction_attributes"])
        if not attributes:
            raise ValueError(f"product {product.asin} has an instruction but no instruction_attributes")
        price_upper, price_text = _price_limit(product.price, rng)
        names = sorted(product.options)
        for combination in itertools.product(*(product.options[name] for name in names)):
            wanted = dict(zip(names, combination, strict=True))
            option_text = ", and ".join(f"{name}: {value}" for name, value in wanted.items())
            option_text = f" with {option_text}" if option_text else ""
            goals.append(
                {
                    **_target_fields(product),
                    "instruction_text": f"{instruction}{option_text}{price_text}",
                    "attributes": attributes,
                    "options": wanted,
                    "price_upper": price_upper,
                }
            )
    return _with_weights(goals, human=False)


def human_goals(
    products: Sequence[Product], raw_human: Mapping[str, Sequence[Mapping[str, Any]]], rng: random.Random
) -> list[Goal]:
    """One goal per human instruction with at least one instruction attribute, in catalogue order."""
    goals: list[dict[str, Any]] = []
    for product in products:
        for record in raw_human.get(product.asin, ()):
            attributes = tuple(record["instruction_attributes"])
            if not attributes:
                continue
            price_upper, price_text = _price_limit(product.price, rng)
            goals.append(
                {
                    **_target_fields(product),
                    "instruction_text": record["instruction"].strip(".") + price_text,
                    "attributes": attributes,
                    "options": tuple(record["instruction_options"]),
                    "price_upper": price_upper,
                }
            )
    return _with_weights(goals, human=True)


def _shuffled(goals: list[Goal]) -> tuple[Goal, ...]:
    random.Random(RANDOM_SEED).shuffle(goals)
    return tuple(goals)


def _read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def build_catalogue(
    raw_products: list[dict[str, Any]],
    raw_attributes: Mapping[str, Any],
    raw_human: Mapping[str, Sequence[Mapping[str, Any]]],
) -> Catalogue:
    """The catalogue from already-parsed original-schema records (see the module docstring for RNG order)."""
    start = time.perf_counter()
    rng = random.Random(RANDOM_SEED)
    products = _load_products(raw_products, raw_attributes, rng)
    after_prices = rng.getstate()
    synthetic = synthetic_goals(products, raw_attributes, rng)
    rng.setstate(after_prices)  # the human-goal setting starts from the same point of the sequence
    human = human_goals(products, raw_human, rng)
    return Catalogue(
        products=tuple(products),
        by_asin={product.asin: product for product in products},
        synthetic_goals=_shuffled(synthetic),
        human_goals=_shuffled(human),
        load_seconds=time.perf_counter() - start,
    )


@cache
def load_catalogue(data_dir: str | None = None) -> Catalogue:
    """The 1k-product catalogue with its goals, loaded once per process (and per data directory)."""
    start = time.perf_counter()
    catalogue = build_catalogue(
        _read_json(data_file(CATALOGUE_FILE, data_dir)),
        _read_json(data_file(ATTRIBUTES_FILE, data_dir)),
        _read_json(data_file(HUMAN_INSTRUCTIONS_FILE, data_dir)),
    )
    elapsed = time.perf_counter() - start
    log.info(
        "WebShop catalogue: %d products, %d synthetic and %d human goals in %.3f s",
        len(catalogue.products),
        len(catalogue.synthetic_goals),
        len(catalogue.human_goals),
        elapsed,
    )
    return catalogue
