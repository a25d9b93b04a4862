"""From a rendered page to what the agent sees: observation modes and the available actions.

The text is the original's: the strings of BeautifulSoup's ``html.parser`` tree, whose whitespace
handling defines the observation strings (a whitespace-only text node becomes ``"\\n"`` when it
contains a newline, and is then dropped, and ``" "`` otherwise: an empty segment). The tree itself is
not built: :mod:`environments.webshop.markup` reads the same strings in one pass, 8-10x faster.
Parsing is still the expensive part of a step, so the engine parses each page layout once with placeholders
("slots") for the texts that vary most (the instruction; the ASINs, titles and prices of a results
page), keeps the :class:`ParsedPage` in an LRU cache and fills the slots (:meth:`ParsedPage.fill`);
the parts of ``text_rich`` that depend on the session (clicked options, visited products) are added
afterwards.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import NamedTuple

from markupsafe import escape

from environments.webshop.markup import ROOT, Element, read_markup

SEPARATOR = " [SEP] "
_INVISIBLE_PARENTS = frozenset({"style", "script", "head", "title", "meta", ROOT})
PARSE_CACHE_SIZE = 4096
SLOT_CACHE_SIZE = 65_536
INSTRUCTION_SLOT = "@@instruction@@"
"""Rendered in place of the goal's instruction so that one parse serves every goal (see
:meth:`ParsedPage.fill`)."""


class Role(enum.Enum):
    """What a visible text node is, for ``text_rich`` and for the clickables."""

    TEXT = "text"
    BUTTON = "button"
    OPTION = "option"
    PRODUCT = "product"


class ClickKind(enum.Enum):
    BUTTON = "button"
    PRODUCT = "product"
    OPTION = "option"


@dataclass(frozen=True)
class Clickable:
    """One thing ``click[...]`` can name: a button, a product link or an option (with its group)."""

    kind: ClickKind
    group: str | None = None


class TextNode(NamedTuple):
    """A visible text node: its raw text, its role and, for an option label, the option's group."""

    text: str
    role: Role
    group: str | None = None


@dataclass(frozen=True)
class ParsedPage:
    """The page's visible text nodes (raw, with their role) and what can be clicked on it."""

    nodes: tuple[TextNode, ...]
    has_search_bar: bool
    clickables: dict[str, Clickable]

    def available_actions(self) -> dict[str, object]:
        return {"has_search_bar": self.has_search_bar, "clickables": list(self.clickables)}

    def fill(self, values: Mapping[str, str]) -> ParsedPage | None:
        """This page with each slot node (a key of ``values``) replaced by its text.

        A slot always sits alone between two tags, so the node BeautifulSoup makes of a text there
        does not depend on the rest of the page: parsing a layout once with slots and filling them
        gives exactly what parsing the filled page would, provided each text is kept as one verbatim
        node. When one is not (an empty or whitespace-only text), this returns None and the caller
        parses the real page instead.
        """
        if not all(verbatim(text) for text in values.values()):
            return None
        nodes = tuple(node._replace(text=values[node.text]) if node.text in values else node for node in self.nodes)
        # A clickable's key is its element's lowercased text, so a slotted one becomes the lowercased value.
        clickables = {(values[key].lower() if key in values else key): click for key, click in self.clickables.items()}
        return replace(self, nodes=nodes, clickables=clickables)


def _role(parent: Element) -> Role:
    if parent.name == "button":
        return Role.BUTTON
    if parent.name == "label":
        return Role.OPTION
    if parent.classes == ["product-link"]:
        return Role.PRODUCT
    return Role.TEXT


def parse_page(html: str) -> ParsedPage:
    """Read one HTML document as the original's BeautifulSoup tree does (see :mod:`.markup`)."""
    markup = read_markup(html)
    radios = [e for e in markup.elements if e.name == "input" and e.attrs.get("type") == "radio"]
    groups = [radio.attrs.get("name", "None").lower() for radio in radios]
    radio_groups = {radio.attrs.get("id"): group for radio, group in zip(radios, groups, strict=True)}
    nodes = []
    for text, parent in markup.strings:
        if parent.name in _INVISIBLE_PARENTS or text == "\n":
            continue
        role = _role(parent)
        group = radio_groups.get(parent.attrs.get("for")) if role is Role.OPTION else None
        nodes.append(TextNode(text, role, group))
    # Buttons and product links first (in document order each), then option values: the original
    # builds its clickable dict in this order, so a later entry with the same text overrides an
    # earlier one's target but keeps its position.
    clickables: dict[str, Clickable] = {}
    for element in markup.elements:
        if "btn" in element.classes:
            clickables[markup.text(element).lower()] = Clickable(ClickKind.BUTTON)
    for element in markup.elements:
        if "product-link" in element.classes:
            clickables[markup.text(element).lower()] = Clickable(ClickKind.PRODUCT)
    for radio, group in zip(radios, groups, strict=True):
        clickables[radio.attrs.get("value", "None")] = Clickable(ClickKind.OPTION, group=group)
    has_search_bar = any(element.attrs.get("id") == "search_input" for element in markup.elements)
    return ParsedPage(nodes=tuple(nodes), has_search_bar=has_search_bar, clickables=clickables)


@lru_cache(maxsize=SLOT_CACHE_SIZE)
def text_nodes(text: str) -> tuple[str, ...]:
    """The visible text nodes BeautifulSoup makes of ``text`` rendered (escaped) between two tags."""
    return tuple(node.text for node in parse_page(f"<h4>{escape(text)}</h4>").nodes)


def verbatim(text: str) -> bool:
    """Whether ``text`` between two tags comes back as exactly one text node equal to itself."""
    return text_nodes(text) == (text,)


def simple_text(page: ParsedPage) -> str:
    """The ``text`` mode: every visible text node, stripped, joined by `` [SEP] ``."""
    return SEPARATOR.join(node.text.strip() for node in page.nodes)


def rich_text(page: ParsedPage, selected: Mapping[str, str], visited_asins: Collection[str]) -> str:
    """The ``text_rich`` mode: one line per text node, buttons and options marked up.

    An option label is marked clicked when its value is the one selected in its group, and each
    clicked option prefixes the observation with ``You have clicked <value>.``. (The original tests
    whether ``"value"`` occurs in the item page URL, which holds the choices as JSON: the same in
    the common case, but it misses values that JSON escapes, such as ``28" x 28"``, and marks a
    value chosen in another group too.)
    """
    clicked_prefix = ""
    lines = []
    for text, role, group in page.nodes:
        if role is Role.BUTTON:
            line = f"[button] {text} [button_]"
        elif role is Role.OPTION:
            if group is not None and selected.get(group) == text:
                line = f"  [clicked button] {text} [clicked button_]"
                clicked_prefix = f"You have clicked {text}.\n" + clicked_prefix
            else:
                line = f"  [button] {text} [button_]"
        elif role is Role.PRODUCT:
            marker = "clicked button" if text in visited_asins else "button"
            line = f"\n[{marker}] {text} [{marker}_]"
        else:
            line = text
        lines.append(line + "\n")
    return clicked_prefix + "".join(lines)


class PageView:
    """What any observation mode may need about the current page; the HTML is rendered on demand."""

    def __init__(
        self,
        parsed: ParsedPage,
        url: str,
        selected: Mapping[str, str],
        visited_asins: Collection[str],
        render_html: Callable[[], str],
    ) -> None:
        self.parsed = parsed
        self.url = url
        self.selected = selected
        self.visited_asins = visited_asins
        self._render_html = render_html
        self._html: str | None = None

    @property
    def html(self) -> str:
        if self._html is None:
            self._html = self._render_html()
        return self._html


OBSERVATION_MODES: dict[str, Callable[[PageView], str]] = {
    "html": lambda view: view.html,
    "text": lambda view: simple_text(view.parsed),
    "text_rich": lambda view: rich_text(view.parsed, view.selected, view.visited_asins),
    "url": lambda view: view.url,
}
"""Observation mode name -> how to produce it; the engine validates names against this registry."""
