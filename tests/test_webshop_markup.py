"""The one-pass markup reader against BeautifulSoup itself: the same strings, roles and clickables.

``environments.webshop.markup`` replaces building BeautifulSoup's ``html.parser`` tree on the
server's hot path; the observations are defined by that tree, so this compares the two on edge
cases of the tree builder's rules and on real pages of the catalogue (item, sub-, done and results
pages of seeded samples; every page of the catalogue matched when this was written).
"""

from __future__ import annotations

import random

import pytest
from bs4 import BeautifulSoup
from bs4.element import Comment
from markupsafe import escape

from environments.webshop import pages
from environments.webshop.catalogue import load_catalogue
from environments.webshop.observation import Clickable, ClickKind, ParsedPage, Role, TextNode, parse_page

_INVISIBLE = {"style", "script", "head", "title", "meta", "[document]"}


def _bs4_role(node) -> Role:
    parent = node.parent
    if parent.name == "button":
        return Role.BUTTON
    if parent.name == "label":
        return Role.OPTION
    if parent.get("class") == ["product-link"]:
        return Role.PRODUCT
    return Role.TEXT


def bs4_parse(html: str) -> ParsedPage:
    """The original's extraction on a real BeautifulSoup tree (the reference)."""
    soup = BeautifulSoup(html, "html.parser")
    radios = soup.find_all("input", attrs={"type": "radio"})
    groups = {radio.get("id"): str(radio.get("name")).lower() for radio in radios}
    nodes = []
    for node in soup.find_all(string=True):
        if node.parent.name in _INVISIBLE or isinstance(node, Comment) or str(node) == "\n":
            continue
        role = _bs4_role(node)
        nodes.append(TextNode(str(node), role, groups.get(node.parent.get("for")) if role is Role.OPTION else None))
    clickables = {}
    for element in soup.find_all(class_="btn"):
        clickables[element.get_text().lower()] = Clickable(ClickKind.BUTTON)
    for element in soup.find_all(class_="product-link"):
        clickables[element.get_text().lower()] = Clickable(ClickKind.PRODUCT)
    for radio in radios:
        clickables[str(radio.get("value"))] = Clickable(ClickKind.OPTION, group=str(radio.get("name")).lower())
    return ParsedPage(tuple(nodes), soup.find(id="search_input") is not None, clickables)


def assert_same_as_bs4(html: str) -> None:
    ours, reference = parse_page(html), bs4_parse(html)
    assert ours.nodes == reference.nodes
    assert list(ours.clickables.items()) == list(reference.clickables.items())
    assert ours.has_search_bar == reference.has_search_bar


@pytest.mark.parametrize(
    "html",
    [
        "a<!-- a comment ends the string -->b",
        "<p>a</br>b</p>",  # an end tag of a void element never opened
        "<br>x</br>y",  # ... and one of a void element just closed: ignored, the string goes on
        "<p>x<div/>y</p>",
        "<pre>  </pre><p>  </p><p> \n </p><textarea>\n</textarea>",
        "<script>if (a < b && c) { x = '&amp;'; }</script>x",
        "<style>\n</style><STYLE>p{}</style >after",
        "a &amp; b &lt;c&gt; &#39;&#34; &#x41;",
        "a < b and c <= d",
        "<p>a</q>b</p>",  # an end tag with nothing to close
        "<div><p>a<span>b</div>c",  # an end tag closes everything opened inside its element
        "<button class='btn'>A<!--x-->B<br>C<script>no</script></button>",
        '<a class="product-link x">Q</a><a class=product-link>R</a><a class="">S</a>',
        "<input type=radio id=r1 name=Size value='x &amp; y'><label for=r1>x &amp; y</label>",
        "<label>no for</label><input type='radio'><label for=r9>dangling</label>",
        "</>a</ >b<!bogus>c",
        "<!DOCTYPE html>\n<html><head><title>t</title><meta charset=utf-8></head><body>\n</body></html>",
        "<?pi x?>a",
        '<input id="search_input" type="text">',
        "<p>tab\tonly</p><p>\t</p><p>\r\n</p><p>\x0c</p>",
        "<P CLASS=BTN>upper</P><b class='btn  extra'>x</b><i class=\"a btn\">y</i>",
        "<div data-x='a>b' class=\"btn\">quoted &gt;</div>",
        "unclosed <b>bold <i>italic",
    ],
)
def test_tree_builder_rules_match_beautifulsoup(html):
    assert_same_as_bs4(html)


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue()


def _render(catalogue, layout: pages.Layout, instruction: str = "i need a thing & more") -> str:
    return pages.render(layout, instruction, pages.Links.for_session(pages.DEFAULT_BASE_URL, "fixed_0"), catalogue)


def test_item_pages_match_beautifulsoup(catalogue):
    for product in random.Random(1).sample(catalogue.products, 300):
        chosen = tuple((name, values[0]) for name, values in product.options.items())
        html = _render(catalogue, pages.Layout(pages.PageKind.ITEM, (product.asin,), options=chosen,
                                               show_attributes=True))
        assert_same_as_bs4(html)


def test_sub_done_results_and_search_pages_match_beautifulsoup(catalogue):
    rng = random.Random(0)
    for product in rng.sample(catalogue.products, 60):
        for sub_page in pages.SUB_PAGES:
            assert_same_as_bs4(_render(catalogue, pages.Layout(pages.PageKind.SUB_PAGE, (product.asin,),
                                                               sub_page=sub_page)))
        chosen = tuple((name, values[-1]) for name, values in product.options.items())
        done = pages.Layout(pages.PageKind.DONE, (product.asin,), options=chosen, reward=rng.random())
        assert_same_as_bs4(_render(catalogue, done))
    for start in range(0, len(catalogue.products), 25):
        asins = tuple(p.asin for p in catalogue.products[start : start + 10])
        assert_same_as_bs4(_render(catalogue, pages.Layout(pages.PageKind.RESULTS, asins, page=1 + start % 3,
                                                           total=50)))
    assert_same_as_bs4(_render(catalogue, pages.Layout(pages.PageKind.SEARCH)))
    for goal in rng.sample(catalogue.synthetic_goals, 300):
        assert_same_as_bs4(f"<h4>{escape(goal.instruction_text)}</h4>")
