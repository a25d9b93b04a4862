"""The WebShop state machine behind the server, the Gymnasium client and the human shop.

A :class:`WebShopSession` is one simulated shopper: it holds the goal and the page state (keywords,
results page, product, chosen options, sub-page), renders the current page with the templates and
derives the observation from it. Transitions follow the original text environment:

* ``search[keywords]`` (any page, non-empty keywords): results page 1; product and options cleared.
* ``click[x]`` is valid only when ``x`` is one of the current page's clickables (and not "search"):
  "buy now" scores the purchase and ends the episode; "back to search" clears the session;
  "next >" / "< prev" page through results; "< prev" on a sub-page returns to the item page with
  the options kept, on the item page to the same results page with the options cleared; the
  sub-page buttons open that sub-page; an ASIN opens its item page; an option value selects it.
* anything else leaves everything unchanged: same observation, reward 0, ``action_valid`` False.

A :class:`WebShopFactory` holds what all sessions share: the catalogue, the search index and the
caches (search results per query, parsed pages per HTML document).
"""

from __future__ import annotations

import itertools
import logging
import random
import re
import string
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cache, lru_cache
from typing import Any

from environments.core.engine import InvalidOptionsError, JSONDict, SessionStateError, StepOutcome
from environments.webshop import pages
from environments.webshop.catalogue import Catalogue, Goal, Product, load_catalogue
from environments.webshop.nouns import get_noun_tagger
from environments.webshop.observation import (
    INSTRUCTION_SLOT,
    OBSERVATION_MODES,
    PARSE_CACHE_SIZE,
    ClickKind,
    PageView,
    ParsedPage,
    parse_page,
)
from environments.webshop.pages import (
    DEFAULT_BASE_URL,
    RESULTS_PER_PAGE,
    SUB_PAGES,
    Layout,
    Links,
    PageKind,
    PageState,
)
from environments.webshop.reward import DEFAULT_REWARD_RULE, check_reward_rule, score_purchase
from environments.webshop.search import SEARCH_RETURN_N, BM25Index, document_text
from environments.webshop.splits import goal_indices, split_names

log = logging.getLogger(__name__)

SEARCH_CACHE_SIZE = 8192
_ACTION_PATTERN = re.compile(r"(.+)\[(.+)\]")
RESET_OPTION_KEYS = frozenset({"goal_index", "split", "session", "seed", "reward_rule"})
_SESSION_PATTERN = re.compile(r"fixed_(\d+)")

BUY_NOW = "buy now"
BACK_TO_SEARCH = "back to search"
NEXT_PAGE = "next >"
PREV_PAGE = "< prev"


def parse_action(action: str) -> tuple[str, str | None]:
    """``name[argument]`` -> (name, argument), matched from the start as the original does.

    The pattern is greedy and need not reach the end of the string, so ``search[a] b`` searches
    for ``a``; an action without brackets is all name.
    """
    match = _ACTION_PATTERN.match(action)
    if match is None:
        return action, None
    return match.group(1), match.group(2)


class ProductSearch:
    """The BM25 engine over the catalogue, with the top-50 results cached per query."""

    def __init__(self, catalogue: Catalogue) -> None:
        started = time.perf_counter()
        self._catalogue = catalogue
        self._index = BM25Index(
            (p.asin, document_text(p.title, p.description, p.bullet_points, p.options)) for p in catalogue.products
        )
        self.build_seconds = time.perf_counter() - started
        self.results = lru_cache(maxsize=SEARCH_CACHE_SIZE)(self._search)

    def _search(self, query: str) -> tuple[Product, ...]:
        hits = self._index.search(query, k=SEARCH_RETURN_N)
        return tuple(self._catalogue.by_asin[asin] for asin, _ in hits if asin in self._catalogue.by_asin)


@cache
def shared_search(data_dir: str | None = None) -> ProductSearch:
    """One search engine per process and data directory, shared by every factory and session."""
    return ProductSearch(load_catalogue(data_dir))


@cache
def _observation_charset(catalogue: Catalogue) -> str:
    return "".join(sorted(catalogue.characters() | pages.template_characters() | set(string.printable)))


@dataclass(frozen=True)
class Purchase:
    asin: str
    options: Mapping[str, str]
    price: float
    reward: float
    components: JSONDict


class WebShopFactory:
    """Makes :class:`WebShopSession` objects that share one catalogue, search index and cache.

    Options: ``observation_mode`` (``text``, ``text_rich``, ``html``, ``url``), ``human_goals``
    (the 13 human instructions instead of the 6,910 synthetic goals), ``show_attributes`` (the
    Attributes button on item pages), ``base_url`` (the host in ``url`` observations), ``data_dir``
    (where the benchmark data lives; default: ``foundation.data``'s lookup), ``noun_tagger`` (a
    registered noun tagger name for the reward; default: the reward module's) and ``reward_rule``
    (``original``, the default, or ``values``: how goal options are matched, see
    :mod:`environments.webshop.reward`; a reset option of the same name overrides it per episode).
    """

    def __init__(
        self,
        observation_mode: str = "text",
        human_goals: bool = False,
        show_attributes: bool = False,
        base_url: str = DEFAULT_BASE_URL,
        data_dir: str | None = None,
        noun_tagger: str | None = None,
        reward_rule: str = DEFAULT_REWARD_RULE,
    ) -> None:
        if observation_mode not in OBSERVATION_MODES:
            raise InvalidOptionsError(
                f"unknown observation_mode {observation_mode!r}; choose one of {sorted(OBSERVATION_MODES)}"
            )
        for name, value in (("human_goals", human_goals), ("show_attributes", show_attributes)):
            if not isinstance(value, bool):
                raise InvalidOptionsError(f"{name} must be true or false, got {value!r}")
        self.observation_mode = observation_mode
        self.human_goals = human_goals
        self.show_attributes = show_attributes
        self.base_url = base_url.rstrip("/")
        self.noun_tagger = noun_tagger
        self.reward_rule = _checked_reward_rule(reward_rule)
        self.catalogue = load_catalogue(data_dir)
        self.search = shared_search(data_dir)
        self.goals = self.catalogue.goals(human_goals)
        self._cumulative_weights = list(itertools.accumulate(goal.weight for goal in self.goals))
        self._agent_links = Links.for_session(self.base_url, "layout")
        self.parsed_layout = lru_cache(maxsize=PARSE_CACHE_SIZE)(self._parse_layout)

    def _parse_layout(self, layout: Layout) -> ParsedPage:
        """Render a text frame once, the instruction left as a slot, and parse it (shared by all
        sessions: the parse, not the rendering, is the expensive part of a step)."""
        return parse_page(pages.render(layout, INSTRUCTION_SLOT, self._agent_links, self.catalogue))

    def new_session(self) -> WebShopSession:
        return WebShopSession(self)

    def warm_up(self) -> None:
        """Load the reward's noun tagger (a spaCy pipeline: a second or more) and tag every goal and
        product name in batches, before the first purchases need them (one at a time, those tags were
        a fifth of a fresh server's time under load)."""
        tagger = get_noun_tagger() if self.noun_tagger is None else get_noun_tagger(self.noun_tagger)
        tag_ahead = getattr(tagger, "tag_ahead", None)  # optional: a registered tagger may not batch
        if tag_ahead is not None:
            tag_ahead([goal.name for goal in self.goals] + [product.name for product in self.catalogue.products])

    def describe(self) -> JSONDict:
        return {
            "products": len(self.catalogue.products),
            "goals": len(self.goals),
            "goal_set": "human" if self.human_goals else "synthetic",
            "splits": {name: len(goal_indices(name, self.human_goals, self.catalogue)) for name in self.splits},
            "observation_mode": self.observation_mode,
            "show_attributes": self.show_attributes,
            "reward_rule": self.reward_rule,
            "observation_charset": self.observation_charset,
        }

    @property
    def observation_charset(self) -> str:
        """Every character an observation can contain (sorted), for Gymnasium's Text space."""
        return _observation_charset(self.catalogue)

    @property
    def splits(self) -> list[str]:
        return split_names(self.human_goals)

    def choose_goal(self, options: Mapping[str, Any]) -> tuple[int, str]:
        """The goal index and session label that reset options ask for (see :meth:`WebShopSession.reset`)."""
        unknown = set(options) - RESET_OPTION_KEYS
        if unknown:
            raise InvalidOptionsError(
                f"unknown reset option(s) {sorted(unknown)}; WebShop takes {sorted(RESET_OPTION_KEYS)}"
            )
        chosen = [key for key in ("goal_index", "split", "session") if options.get(key) is not None]
        if len(chosen) > 1:
            raise InvalidOptionsError(f"give at most one of goal_index, split and session, got {chosen}")
        seed = options.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise InvalidOptionsError(f"seed must be an integer, got {seed!r}")
        rng = random.Random(seed)
        if "goal_index" in chosen:
            index = self._check_index(options["goal_index"])
        elif "session" in chosen:
            session = options["session"]
            match = _SESSION_PATTERN.fullmatch(session) if isinstance(session, str) else None
            if match is None:
                raise InvalidOptionsError(f"session must look like 'fixed_<goal index>', got {session!r}")
            return self._check_index(int(match.group(1))), session
        elif "split" in chosen:
            split = options["split"]
            if not isinstance(split, str):
                raise InvalidOptionsError(f"split must be a string, got {split!r}")
            index = rng.choice(goal_indices(split, self.human_goals, self.catalogue))
        else:  # the original's default: a goal drawn with the goal weights
            index = rng.choices(range(len(self.goals)), cum_weights=self._cumulative_weights)[0]
        return index, f"fixed_{index}"

    def _check_index(self, index: Any) -> int:
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(self.goals):
            raise InvalidOptionsError(f"goal_index must be an integer in [0, {len(self.goals)}), got {index!r}")
        return index

    def close(self) -> None:
        """Nothing to release: the catalogue and index are shared per process."""


def _checked_reward_rule(name: Any) -> str:
    try:
        return check_reward_rule(name)
    except ValueError as exc:
        raise InvalidOptionsError(str(exc)) from None


class WebShopSession:
    """One shopper on the simulated site (a :class:`~environments.core.engine.TextSession`)."""

    def __init__(self, factory: WebShopFactory) -> None:
        self.factory = factory
        self._goal: Goal | None = None
        self._goal_index = -1
        self._reward_rule = factory.reward_rule
        self.label = ""
        self._state = PageState()
        self._visited: set[str] = set()
        self._purchase: Purchase | None = None
        self._view: PageView | None = None
        self._observation = ""

    # -- TextSession -------------------------------------------------------------------------
    def reset(self, options: Mapping[str, Any] | None = None) -> tuple[str, JSONDict]:
        """Start an episode on the search page.

        Options (at most one of the first three): ``goal_index`` (int), ``split`` (a split name,
        sampled uniformly with ``seed``), ``session`` (``"fixed_<i>"``, the original's fixed
        sessions); with none of them a goal is drawn with the goal weights, as in the original.
        ``reward_rule`` overrides the factory's for this episode.
        """
        if options is not None and not isinstance(options, Mapping):
            raise InvalidOptionsError(f"reset options must be a mapping, got {type(options).__name__}")
        index, label = self.factory.choose_goal(dict(options or {}))
        self._reward_rule = _checked_reward_rule((options or {}).get("reward_rule", self.factory.reward_rule))
        self._goal_index = index
        self._goal = self.factory.goals[index]
        self.label = label
        self._state = PageState()
        self._visited = set()
        self._purchase = None
        self._observation = self._render()
        return self._observation, self._info()

    def step(self, action: str) -> StepOutcome:
        if self._goal is None:
            raise SessionStateError("step() before reset(): start an episode first")
        if self._purchase is not None:
            raise SessionStateError("the episode ended with a purchase; call reset() for a new one")
        if not isinstance(action, str):
            raise TypeError(f"action must be a string, got {type(action).__name__}")
        valid = self._apply(action)
        if valid:
            self._observation = self._render()
        info = {**self._info(), "action_valid": valid}
        reward = 0.0
        if valid and self._purchase is not None:
            reward = self._purchase.reward
            info["purchased"] = {
                "asin": self._purchase.asin,
                "options": dict(self._purchase.options),
                "price": self._purchase.price,
            }
            info["reward_components"] = self._purchase.components
        return StepOutcome(self._observation, reward, self._purchase is not None and valid, info)

    def observation(self) -> str:
        if self._goal is None:
            raise SessionStateError("no observation before reset()")
        return self._observation

    def available_actions(self) -> JSONDict:
        if self._goal is None:
            raise SessionStateError("no available actions before reset()")
        return self._current_view().parsed.available_actions()

    def close(self) -> None:
        self._goal = None
        self._view = None

    # -- state --------------------------------------------------------------------------------
    @property
    def goal(self) -> Goal:
        if self._goal is None:
            raise SessionStateError("no goal before reset()")
        return self._goal

    @property
    def state(self) -> PageState:
        return self._state

    @property
    def visited_asins(self) -> frozenset[str]:
        """Products whose item page was opened since the last search-page visit (``text_rich`` marks them)."""
        return frozenset(self._visited)

    @property
    def done(self) -> bool:
        return self._purchase is not None

    @property
    def purchase(self) -> Purchase | None:
        return self._purchase

    def url(self, base_url: str | None = None, session_id: str | None = None) -> str:
        """The current page's simulated URL (the ``url`` observation)."""
        base = self.factory.base_url if base_url is None else base_url
        return self._state.url(base, self.label if session_id is None else session_id)

    def layout(self) -> Layout:
        """What the current page shows, apart from the instruction and link targets."""
        state = self._state
        show_attributes = self.factory.show_attributes
        if state.kind is PageKind.RESULTS:
            results = self._results()
            shown = results[(state.page - 1) * RESULTS_PER_PAGE : state.page * RESULTS_PER_PAGE]
            asins = tuple(product.asin for product in shown)
            return Layout(PageKind.RESULTS, asins=asins, page=state.page, total=len(results))
        if state.kind is PageKind.DONE:
            purchase = self._purchase
            assert purchase is not None, "the done page exists only after a purchase"
            options = tuple(purchase.options.items())
            return Layout(PageKind.DONE, (purchase.asin,), options=options, reward=purchase.reward)
        asins = (state.asin,) if state.asin else ()
        options = tuple(state.options.items())
        return Layout(state.kind, asins, sub_page=state.sub_page, options=options, show_attributes=show_attributes)

    def html(self, links: Links | None = None) -> str:
        """The current page rendered with ``links`` (default: the agent-facing ones)."""
        links = links or Links.for_session(self.factory.base_url, self.label)
        return pages.render(self.layout(), self.goal.instruction_text, links, self.factory.catalogue)

    def _render(self) -> str:
        """Build the view of the new state and return its observation in the factory's mode."""
        frame, values = self.layout().text_frame(self.factory.catalogue)
        values[INSTRUCTION_SLOT] = self.goal.instruction_text
        parsed = self.factory.parsed_layout(frame).fill(values) or parse_page(self.html())
        self._view = PageView(
            parsed=parsed,
            url=self.url(),
            selected=dict(self._state.options),
            visited_asins=self.visited_asins,
            render_html=self.html,
        )
        return OBSERVATION_MODES[self.factory.observation_mode](self._view)

    def _current_view(self) -> PageView:
        if self._view is None:
            raise SessionStateError("no page before reset()")
        return self._view

    def _results(self) -> tuple[Product, ...]:
        return self.factory.search.results(" ".join(self._state.keywords))

    def _info(self) -> JSONDict:
        goal = self.goal
        return {
            "goal": {
                "index": self._goal_index,
                "instruction": goal.instruction_text,
                "asin": goal.asin,
                "attributes": list(goal.attributes),
                "options": dict(goal.options) if isinstance(goal.options, Mapping) else list(goal.options),
                "price_upper": goal.price_upper,
                "name": goal.name,
                "query": goal.query,
                "category": goal.category,
                "product_category": goal.product_category,
            },
            "session": self.label,
            "reward_rule": self._reward_rule,
            "page": self._state.kind.value,
            "available_actions": self._current_view().parsed.available_actions(),
        }

    # -- transitions --------------------------------------------------------------------------
    def _apply(self, action: str) -> bool:
        """Apply one action; False (and nothing changed) when the current page does not allow it."""
        name, argument = parse_action(action)
        if argument is not None:
            argument = argument.lower()
        if name == "search" and argument:
            self._state = PageState(kind=PageKind.RESULTS, keywords=tuple(argument.split(" ")), page=1)
            return True
        if name != "click" or argument is None or argument == "search":
            return False
        clickables = self._current_view().parsed.clickables
        if argument not in clickables:
            return False
        self._click(argument, clickables[argument].kind, clickables[argument].group)
        return True

    def _click(self, target: str, kind: ClickKind, group: str | None) -> None:
        """The original's dispatch, in its order (so an option named like a button acts as that button)."""
        state = self._state
        if target == BUY_NOW:
            self._buy()
        elif target == BACK_TO_SEARCH:
            self._state = PageState()
            self._visited = set()
        elif target == NEXT_PAGE and state.kind is PageKind.RESULTS:
            self._state = replace(state, page=state.page + 1)
        elif target == PREV_PAGE and state.kind is PageKind.RESULTS:
            self._state = replace(state, page=state.page - 1)
        elif target == PREV_PAGE and state.kind is PageKind.SUB_PAGE:
            self._state = replace(state, kind=PageKind.ITEM, sub_page=None)
        elif target == PREV_PAGE and state.kind is PageKind.ITEM:
            self._state = PageState(kind=PageKind.RESULTS, keywords=state.keywords, page=state.page)
        elif target in SUB_PAGES:
            self._state = replace(state, kind=PageKind.SUB_PAGE, sub_page=target)
        elif kind is ClickKind.PRODUCT:
            asin = target.upper()
            self._visited.add(asin)
            self._state = replace(state, kind=PageKind.ITEM, asin=asin, sub_page=None)
        elif kind is ClickKind.OPTION:
            self._state = replace(state, kind=PageKind.ITEM, options={**state.options, str(group): target})
        else:  # a button with no transition of its own re-shows the item page, as in the original
            self._state = replace(state, kind=PageKind.ITEM, sub_page=None)

    def _buy(self) -> None:
        state = self._state
        product = self.factory.catalogue.product(state.asin or "")
        result = score_purchase(
            self.goal, product, dict(state.options), product.price, self.factory.noun_tagger, self._reward_rule
        )
        self._purchase = Purchase(
            asin=product.asin,
            options=dict(state.options),
            price=product.price,
            reward=result.reward,
            components=result.components,
        )
        self._state = replace(state, kind=PageKind.DONE, sub_page=None)
