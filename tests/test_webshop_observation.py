"""Text extraction and the layout cache: the fast path must give exactly what parsing each page gives.

The engine parses each page layout once with a placeholder for the instruction and splices the goal's
instruction in; these tests compare that, over seeded random walks on the real catalogue, with a
direct BeautifulSoup parse of the page each step actually renders.
"""

from __future__ import annotations

import random

import pytest

from environments.webshop.catalogue import load_catalogue
from environments.webshop.engine import WebShopFactory
from environments.webshop.observation import (
    ClickKind,
    Role,
    parse_page,
    rich_text,
    simple_text,
    text_nodes,
    verbatim,
)


def test_whitespace_rules_follow_beautifulsoup():
    # A whitespace-only node with a newline is dropped; one without becomes an empty segment.
    html = (
        "<html><head><title>x</title><style>p{}</style></head>"
        "<body>\n  <p>a</p> <p>  b  </p>\n<!-- c --><p>d</p></body></html>"
    )
    page = parse_page(html)
    assert [node.text for node in page.nodes] == ["a", " ", "  b  ", "d"]
    assert simple_text(page) == "a [SEP]  [SEP] b [SEP] d"


def test_clickables_are_buttons_then_links_then_options():
    html = (
        '<button class="btn">Buy Now</button><a class="product-link">B0X</a>'
        '<input type="radio" id="radio_size0" name="Size" value="buy now"><label for="radio_size0">buy now</label>'
        '<input type="radio" id="radio_size1" name="Size" value="large"><label for="radio_size1">large</label>'
    )
    page = parse_page(html)
    assert list(page.clickables) == ["buy now", "b0x", "large"]
    # An option named like a button keeps the button's place but takes the option's target.
    assert page.clickables["buy now"].kind is ClickKind.OPTION
    assert page.clickables["large"].group == "size"
    assert [(n.role, n.group) for n in page.nodes] == [
        (Role.BUTTON, None),
        (Role.PRODUCT, None),
        (Role.OPTION, "size"),
        (Role.OPTION, "size"),
    ]
    marked = rich_text(page, {"size": "large"}, visited_asins={"B0X"})
    assert marked.startswith("You have clicked large.\n[button] Buy Now [button_]\n\n[clicked button] B0X")
    assert "  [button] buy now [button_]\n  [clicked button] large [clicked button_]\n" in marked


def test_slotted_texts_of_the_real_data_stay_verbatim():
    # Otherwise every page showing them takes the (exact but slower) direct-parse path.
    catalogue = load_catalogue()
    for goal in (*catalogue.synthetic_goals, *catalogue.human_goals):
        assert verbatim(goal.instruction_text)
    odd = [p.asin for p in catalogue.products if not (verbatim(p.asin) and verbatim(p.title) and verbatim(p.price_tag))]
    assert odd == ["B09P71WY8C"]  # its title is empty: no text node at all
    assert catalogue.product("B09P71WY8C").title == ""


def test_results_page_with_an_empty_title_takes_the_direct_path():
    factory = WebShopFactory()
    session = factory.new_session()
    session.reset({"goal_index": 0})
    outcome = session.step("search[decorative window film digital printing]")
    assert outcome.observation == simple_text(parse_page(session.html()))
    assert " [SEP] B09P71WY8C [SEP] $" in outcome.observation  # no segment for the missing title


def test_fill_refuses_texts_that_would_not_stay_one_node():
    page = parse_page('<h4>@@title-0@@</h4><a class="product-link">@@asin-0@@</a>')
    filled = page.fill({"@@title-0@@": "A &amp; B <i>", "@@asin-0@@": "B0X"})
    assert filled is not None
    assert [n.text for n in filled.nodes] == ["A &amp; B <i>", "B0X"] and list(filled.clickables) == ["b0x"]
    assert text_nodes("   ") == (" ",) and not verbatim("   ")
    assert page.fill({"@@title-0@@": "   ", "@@asin-0@@": "B0X"}) is None


@pytest.mark.parametrize("mode", ["text", "text_rich"])
def test_layout_cache_equals_direct_parse_on_random_walks(mode):
    factory = WebShopFactory(observation_mode=mode, show_attributes=True)
    session = factory.new_session()
    rng = random.Random(7)
    steps = 0
    for _ in range(25):
        observation, info = session.reset({"goal_index": rng.randrange(len(factory.goals))})
        for _ in range(10):
            clickables = [c for c in info["available_actions"]["clickables"] if c not in ("buy now", "search")]
            if not clickables or rng.random() < 0.2:
                words = session.goal.instruction_text.split()
                action = f"search[{' '.join(rng.sample(words, min(4, len(words))))}]"
            else:
                action = f"click[{rng.choice(clickables)}]"
            outcome = session.step(action)
            info = outcome.info
            direct = parse_page(session.html())
            if mode == "text":
                expected = simple_text(direct)
            else:
                expected = rich_text(direct, dict(session.state.options), session.visited_asins)
            assert outcome.observation == expected, action
            assert info["available_actions"] == direct.available_actions()
            steps += 1
    assert steps == 250
