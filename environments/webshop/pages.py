"""The shop's pages: which page a session is on, its simulated URL, and its HTML.

The templates (package data in ``templates/``) keep the text-bearing structure of the original
WebShop templates node for node (the same texts, the same parents for buttons, option labels and
product links, the same in-node whitespace), because the agents' text observations are extracted
from this HTML. Only the plumbing differs: every button posts an action string to the shop's action
endpoint, so the pages a person clicks through in a browser drive the same state machine.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import NamedTuple

import jinja2

from environments.webshop.catalogue import Catalogue

TEMPLATE_DIR = Path(__file__).with_name("templates")
STATIC_DIR = Path(__file__).with_name("static")
DEFAULT_BASE_URL = "http://127.0.0.1:3000"
"""Where the original's simulated browser pretends the shop lives; the ``url`` observations use it."""
RESULTS_PER_PAGE = 10
STATIC_URL_PATH = "/webshop-static"
"""Where the shop's stylesheet is served (the human shop's blueprint mounts ``static/`` there)."""


class PageKind(enum.Enum):
    SEARCH = "search"
    RESULTS = "search_results"
    ITEM = "item_page"
    SUB_PAGE = "item_sub_page"
    DONE = "done"


@dataclass(frozen=True)
class SubPage:
    """An item sub-page: the button label shown on the item page and its template."""

    key: str
    label: str
    template: str


SUB_PAGES: dict[str, SubPage] = {
    sub.key: sub
    for sub in (
        SubPage("description", "Description", "description_page.html"),
        SubPage("features", "Features", "features_page.html"),
        SubPage("reviews", "Reviews", "review_page.html"),
        SubPage("attributes", "Attributes", "attributes_page.html"),
    )
}
"""Keyed by the lowercased button text, which is what ``click[...]`` names."""


def visible_sub_pages(show_attributes: bool) -> tuple[SubPage, ...]:
    """The sub-page buttons of an item page (Attributes only when enabled, as in the original)."""
    return tuple(sub for sub in SUB_PAGES.values() if show_attributes or sub.key != "attributes")


@dataclass(frozen=True)
class Links:
    """Where a rendered page's forms and links point: the action endpoint and static files.

    ``new_task`` is set only for the human shop (a link on the done page); agents' pages leave it
    empty so that it adds nothing to their observations.
    """

    act: str
    static: str
    new_task: str = ""

    @classmethod
    def for_session(cls, base_url: str, session_id: str) -> Links:
        return cls(act=f"{base_url}/act/{session_id}", static=f"{base_url}{STATIC_URL_PATH}")


@dataclass(frozen=True)
class PageState:
    """Everything that decides which page is shown (the original keeps the same in its session)."""

    kind: PageKind = PageKind.SEARCH
    keywords: tuple[str, ...] = ()
    page: int = 1
    asin: str | None = None
    options: Mapping[str, str] = field(default_factory=dict, hash=False)
    sub_page: str | None = None

    def url(self, base_url: str, session_id: str) -> str:
        """The simulated URL, built exactly as the original text environment builds it."""
        keywords = "+".join(self.keywords)
        if self.kind is PageKind.SEARCH:
            return f"{base_url}/{session_id}"
        if self.kind is PageKind.RESULTS:
            return f"{base_url}/search_results/{session_id}/{keywords}/{self.page}"
        if self.kind is PageKind.ITEM:
            options = json.dumps(dict(self.options))
            return f"{base_url}/item_page/{session_id}/{self.asin}/{keywords}/{self.page}/{options}"
        if self.kind is PageKind.SUB_PAGE:
            label = SUB_PAGES[self.sub_page or ""].label
            return (
                f"{base_url}/item_sub_page/{session_id}/{self.asin}/{keywords}/{self.page}/{label}/{dict(self.options)}"
            )
        return f"{base_url}/done/{session_id}/{self.asin}/{dict(self.options)}"


@cache
def _environment() -> jinja2.Environment:
    # Autoescaping as Flask's render_template_string does: values are escaped in the HTML and come
    # back unchanged from the text extractor.
    # auto_reload off: the templates are package data, and checking their mtimes cost every render a stat.
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        auto_reload=False,
    )


def _render(template: str, **context: object) -> str:
    return _environment().get_template(template).render(**context)


@dataclass(frozen=True)
class Layout:
    """Everything a page shows except the instruction and the link targets (hashable: a cache key).

    ``asins`` holds the products listed on a results page, or the one product of an item, sub- or
    done page. ``options`` (the chosen options) only changes attributes of the item page (checked
    radio buttons, the product image), never its text; :meth:`text_key` drops it there.
    """

    kind: PageKind
    asins: tuple[str, ...] = ()
    page: int = 1
    total: int = 0
    sub_page: str | None = None
    options: tuple[tuple[str, str], ...] = ()
    reward: float = 0.0
    show_attributes: bool = False
    slotted: bool = False

    def text_frame(self, catalogue: Catalogue) -> tuple[Layout, dict[str, str]]:
        """A layout that many pages share for their text, and the texts to fill into its slots.

        A results page lists its products as slots (so one parse serves every query with the same
        page number, total and count); an item page drops the chosen options (they change only
        attributes). See :meth:`~environments.webshop.observation.ParsedPage.fill`.
        """
        if self.kind is PageKind.RESULTS:
            values: dict[str, str] = {}
            for i, product in enumerate(map(catalogue.product, self.asins)):
                values.update({_slot("asin", i): product.asin, _slot("title", i): product.title})
                values[_slot("price", i)] = product.price_tag
            slots = tuple(_slot("asin", i) for i in range(len(self.asins)))
            return replace(self, asins=slots, slotted=True), values
        if self.kind is PageKind.ITEM:
            return replace(self, options=()), {}
        return self, {}


def _slot(field_name: str, position: int) -> str:
    return f"@@{field_name}-{position}@@"


class Listing(NamedTuple):
    """What a results page shows of one product."""

    asin: str
    title: str
    price_tag: str
    main_image: str


def _search(layout: Layout, catalogue: Catalogue, **context: object) -> str:
    return _render("search_page.html", **context)


def _listings(layout: Layout, catalogue: Catalogue) -> list[Listing]:
    if layout.slotted:
        positions = range(len(layout.asins))
        return [Listing(_slot("asin", i), _slot("title", i), _slot("price", i), "") for i in positions]
    products = map(catalogue.product, layout.asins)
    return [Listing(p.asin, p.title, p.price_tag, p.main_image) for p in products]


def _results(layout: Layout, catalogue: Catalogue, **context: object) -> str:
    listings = _listings(layout, catalogue)
    return _render("results_page.html", products=listings, page=layout.page, total=layout.total, **context)


def _item(layout: Layout, catalogue: Catalogue, **context: object) -> str:
    product = catalogue.product(layout.asins[0])
    options = dict(layout.options)
    chosen_images = [product.option_to_image.get(value) for value in options.values()]
    image = next((url for url in reversed(chosen_images) if url), product.main_image)
    sub_pages = visible_sub_pages(layout.show_attributes)
    return _render("item_page.html", product=product, options=options, image=image, sub_pages=sub_pages, **context)


def _sub_page(layout: Layout, catalogue: Catalogue, **context: object) -> str:
    product = catalogue.product(layout.asins[0])
    return _render(SUB_PAGES[layout.sub_page or ""].template, product=product, **context)


DONE_PAGE_UNSET: dict[str, None] = dict.fromkeys(
    ("mturk_code", "purchased_attrs", "category", "query", "product_category", "goal", "reward_info")
)
"""What the original text environment leaves unset on the done page: it renders the template with the
purchase and the score only, so these show as "None" (or nothing, where a field of the goal is read)."""


def _done(layout: Layout, catalogue: Catalogue, **context: object) -> str:
    options = dict(layout.options)
    return _render(
        "done_page.html", asin=layout.asins[0], options=options, reward=layout.reward, **DONE_PAGE_UNSET, **context
    )


_RENDERERS: dict[PageKind, Callable[..., str]] = {
    PageKind.SEARCH: _search,
    PageKind.RESULTS: _results,
    PageKind.ITEM: _item,
    PageKind.SUB_PAGE: _sub_page,
    PageKind.DONE: _done,
}


def render(layout: Layout, instruction: str, links: Links, catalogue: Catalogue) -> str:
    """The page's HTML."""
    return _RENDERERS[layout.kind](layout, catalogue, instruction_text=instruction, links=links)


def template_characters() -> set[str]:
    """Characters the templates themselves can put into an observation."""
    chars: set[str] = set()
    for path in TEMPLATE_DIR.glob("*.html"):
        chars.update(path.read_text(encoding="utf-8"))
    return chars
