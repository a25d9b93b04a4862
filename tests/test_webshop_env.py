"""The WebShop engine in-process: exact observations for every page type, transitions, rewards, errors.

Expected strings are assembled from the catalogue's own fields and the page texts of the original
WebShop templates (the text extracted with BeautifulSoup, stripped, joined by " [SEP] "), so a change
in the templates, the extractor or the state machine shows up here.
"""

from __future__ import annotations

import json

import pytest

from environments.core.engine import InvalidOptionsError, SessionStateError, TextSession
from environments.webshop.catalogue import load_catalogue
from environments.webshop.data_files import CATALOGUE_FILE
from environments.webshop.engine import WebShopFactory
from environments.webshop.reward import score_purchase
from environments.webshop.search import BM25Index, documents_from_raw_catalogue
from environments.webshop.splits import goal_indices
from foundation.data import data_file

SEP = " [SEP] "
SHORTS = "B005WXS61A"  # Guy Harvey Ladies Fishing Short: 2 option groups, empty description, one empty bullet
SHORTS_QUERY = "guy harvey ladies fishing short"
SHIRT = "B07F2G93BJ"  # target of goal 580; four attributes, three bullet points
SHIRT_GOAL = 580
SHIRT_QUERY = "amazon essentials men's slim-fit long-sleeve solid pocket oxford shirt"
PILLOW_QUERY = "decorative pillows"


@pytest.fixture(scope="module")
def factory() -> WebShopFactory:
    return WebShopFactory()


@pytest.fixture(scope="module")
def rich_factory() -> WebShopFactory:
    return WebShopFactory(observation_mode="text_rich", show_attributes=True)


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue()


@pytest.fixture(scope="module")
def reference_index() -> BM25Index:
    """An index built straight from the raw catalogue file, independent of the engine's own."""
    return BM25Index(documents_from_raw_catalogue(json.loads(data_file(CATALOGUE_FILE).read_text())))


def started(factory: WebShopFactory, goal_index: int = 0) -> tuple[TextSession, str]:
    session = factory.new_session()
    _, info = session.reset({"goal_index": goal_index})
    return session, info["goal"]["instruction"]


def header(instruction: str) -> list[str]:
    return ["Instruction:", instruction, "Back to Search"]


def item_text(instruction: str, product, sub_pages=("Description", "Features", "Reviews")) -> str:
    parts = header(instruction) + ["< Prev"]
    for name, values in product.options.items():
        parts += [name, *values]
    parts += [product.title, f"Price: {product.price_tag}", "Rating: N.A.", *sub_pages, "Buy Now"]
    return SEP.join(parts)


def open_product(session: TextSession, query: str, asin: str):
    outcome = session.step(f"search[{query}]")
    assert asin.lower() in outcome.info["available_actions"]["clickables"], "product not on the first results page"
    return session.step(f"click[{asin.lower()}]")


def test_search_page(factory, catalogue):
    session = factory.new_session()
    observation, info = session.reset({"goal_index": 0})
    instruction = catalogue.synthetic_goals[0].instruction_text
    assert observation == f"WebShop{SEP}Instruction:{SEP}{instruction}{SEP}Search"
    assert info["available_actions"] == {"has_search_bar": True, "clickables": ["search"]}
    assert session.available_actions() == info["available_actions"]
    assert session.observation() == observation
    goal = info["goal"]
    assert goal["index"] == 0 and goal["asin"] == "B0743JKHBV" and goal["instruction"] == instruction
    assert goal["price_upper"] == 50.0 and goal["options"] == {"size": '28" x 28"'}
    json.dumps(info)


def test_results_pages(factory, catalogue, reference_index):
    session, instruction = started(factory)
    hits = [asin for asin, _ in reference_index.search(PILLOW_QUERY, k=50)]
    assert len(hits) == 50

    def listing(asins):
        return [
            part
            for asin in asins
            for part in (asin, catalogue.product(asin).title.strip(), catalogue.product(asin).price_tag)
        ]

    outcome = session.step(f"search[{PILLOW_QUERY}]")
    assert outcome.info["action_valid"] and outcome.reward == 0 and not outcome.terminated
    assert outcome.observation == SEP.join(
        header(instruction) + ["Page 1 (Total results: 50)", "Next >"] + listing(hits[:10])
    )
    assert outcome.info["available_actions"] == {
        "has_search_bar": False,
        "clickables": ["back to search", "next >"] + [asin.lower() for asin in hits[:10]],
    }

    outcome = session.step("click[next >]")
    assert outcome.observation == SEP.join(
        header(instruction) + ["Page 2 (Total results: 50)", "< Prev", "Next >"] + listing(hits[10:20])
    )
    assert outcome.info["available_actions"]["clickables"][:3] == ["back to search", "< prev", "next >"]
    for _ in range(4):  # "Next >" has no upper bound: page 6 lists nothing
        outcome = session.step("click[next >]")
    assert outcome.observation == SEP.join(header(instruction) + ["Page 6 (Total results: 50)", "< Prev", "Next >"])
    outcome = session.step("click[< prev]")
    assert outcome.observation.endswith(SEP.join(listing(hits[40:50])))


def test_item_page_options_and_sub_pages(factory, catalogue):
    session, instruction = started(factory)
    shorts = catalogue.product(SHORTS)
    outcome = open_product(session, SHORTS_QUERY, SHORTS)
    assert outcome.observation == item_text(instruction, shorts)
    assert outcome.info["available_actions"] == {
        "has_search_bar": False,
        "clickables": [
            "back to search",
            "< prev",
            "description",
            "features",
            "reviews",
            "buy now",
            "16",
            '16"',
            "red",
            "navy",
        ],
    }
    # Selecting an option re-shows the item page.
    assert session.step("click[red]").observation == item_text(instruction, shorts)
    assert session.step("click[16]").info["action_valid"]

    nav = SEP.join(header(instruction) + ["< Prev"])
    assert session.step("click[description]").observation == nav  # empty description: no text node
    assert session.step("click[features]").info["action_valid"] is False  # no Features button on a sub-page
    assert session.step("click[< prev]").observation == item_text(instruction, shorts)
    # One bullet point that is an empty string: a space-only node without newline -> an empty segment.
    assert session.step("click[features]").observation == nav + SEP
    session.step("click[< prev]")
    assert session.step("click[reviews]").observation == nav  # the original never loads reviews
    session.step("click[< prev]")
    outcome = session.step("click[buy now]")
    assert outcome.terminated
    assert outcome.info["purchased"] == {"asin": SHORTS, "options": {"color": "red", "size": "16"}, "price": 29.99}


def test_features_description_and_attributes_pages(catalogue):
    factory = WebShopFactory(show_attributes=True)
    session, instruction = started(factory, SHIRT_GOAL)
    shirt = catalogue.product(SHIRT)
    outcome = open_product(session, SHIRT_QUERY, SHIRT)
    assert outcome.observation == item_text(instruction, shirt, ("Description", "Features", "Reviews", "Attributes"))
    assert "attributes" in outcome.info["available_actions"]["clickables"]
    nav = header(instruction) + ["< Prev"]
    assert session.step("click[description]").observation == SEP.join(nav + [shirt.description.strip()])
    session.step("click[< prev]")
    features = session.step("click[features]").observation
    assert features == SEP.join(nav + [bullet.strip() for bullet in shirt.bullet_points])
    assert len(shirt.bullet_points) == 3
    session.step("click[< prev]")
    attributes = session.step("click[attributes]").observation
    expected = [*shirt.attributes, shirt.category, shirt.query, shirt.product_category]
    assert attributes == SEP.join(nav + expected)
    assert expected[:4] == ["slim fit", "button closure", "long sleeve", "machine wash"]


def test_text_rich_marks_buttons_options_and_visited_products(rich_factory, catalogue):
    session = rich_factory.new_session()
    observation, info = session.reset({"goal_index": 0})
    instruction = info["goal"]["instruction"]
    # The search page's instruction node is "Instruction: " (trailing space kept in text_rich).
    assert observation == f"WebShop\nInstruction: \n{instruction}\n[button] Search [button_]\n"

    results = session.step(f"search[{SHORTS_QUERY}]").observation
    assert results.startswith(
        f"Instruction:\n{instruction}\n[button] Back to Search [button_]\nPage 1 (Total results: 50)\n"
        f"[button] Next > [button_]\n\n[button] {SHORTS} [button_]\nGuy Harvey Ladies Fishing Short\n$29.99\n"
    )
    item = session.step(f"click[{SHORTS.lower()}]").observation
    assert "\n  [button] red [button_]\n" in item and not item.startswith("You have clicked")
    item = session.step("click[red]").observation
    assert item.startswith("You have clicked red.\nInstruction:\n")
    assert "\n  [clicked button] red [clicked button_]\n  [button] navy [button_]\n" in item
    session.step("click[16]")
    item = session.step("click[navy]").observation  # same group as red: replaces it
    assert item == (
        "You have clicked navy.\nYou have clicked 16.\n"  # each clicked option, the later one first
        f"Instruction:\n{instruction}\n[button] Back to Search [button_]\n[button] < Prev [button_]\n"
        'size\n  [clicked button] 16 [clicked button_]\n  [button] 16" [button_]\n'
        "color\n  [button] red [button_]\n  [clicked button] navy [clicked button_]\n"
        "Guy Harvey Ladies Fishing Short\nPrice: $29.99\nRating: N.A.\n[button] Description [button_]\n"
        "[button] Features [button_]\n[button] Reviews [button_]\n[button] Attributes [button_]\n"
        "[button] Buy Now [button_]\n"
    )
    # A sub-page keeps the options; coming back shows them still clicked.
    session.step("click[description]")
    assert session.step("click[< prev]").observation.startswith("You have clicked navy.\n")
    # "< Prev" on the item page: the same results page, options cleared, the product marked visited.
    results = session.step("click[< prev]").observation
    assert f"\n[clicked button] {SHORTS} [clicked button_]\n" in results
    item = session.step(f"click[{SHORTS.lower()}]").observation
    assert not item.startswith("You have clicked")
    # "Back to Search" clears the session, so the product is no longer marked visited.
    session.step("click[back to search]")
    results = session.step(f"search[{SHORTS_QUERY}]").observation
    assert f"\n[button] {SHORTS} [button_]\n" in results


def test_prev_from_item_returns_to_the_same_results_page(factory):
    session, _ = started(factory)
    session.step(f"search[{PILLOW_QUERY}]")
    page2 = session.step("click[next >]")
    product = page2.info["available_actions"]["clickables"][3]
    session.step(f"click[{product}]")
    assert session.step("click[< prev]").observation == page2.observation


def test_search_from_any_page_resets_product_and_options(factory, catalogue):
    session, instruction = started(factory)
    open_product(session, SHORTS_QUERY, SHORTS)
    session.step("click[red]")
    # No search bar on the item page, but search[...] is allowed from any page.
    outcome = session.step(f"search[{SHORTS_QUERY}]")
    assert outcome.info["action_valid"] and outcome.observation.startswith(SEP.join(header(instruction)))
    assert "Page 1 (Total results: 50)" in outcome.observation
    outcome = session.step(f"click[{SHORTS.lower()}]")
    bought = session.step("click[buy now]")
    assert bought.info["purchased"]["options"] == {}


def test_back_to_search(factory, catalogue):
    session, instruction = started(factory)
    first = session.observation()
    open_product(session, SHORTS_QUERY, SHORTS)
    outcome = session.step("click[back to search]")
    assert outcome.observation == first
    assert outcome.info["available_actions"]["has_search_bar"] is True


@pytest.mark.parametrize(
    "action",
    [
        "click[search]",  # never clickable
        "click[b005wxs61a]",  # not on this page
        "search[]",  # empty keywords
        "buy now",
        "",
        "look around",
        "Search[shorts]",  # the verb is case-sensitive, as in the original
        " search[shorts]",
        "click[]",
    ],
)
def test_invalid_actions_change_nothing(factory, action):
    session, _ = started(factory)
    before = session.observation()
    outcome = session.step(action)
    assert (outcome.observation, outcome.reward, outcome.terminated) == (before, 0.0, False)
    assert outcome.info["action_valid"] is False
    assert outcome.info["available_actions"] == {"has_search_bar": True, "clickables": ["search"]}


def test_action_parsing_follows_the_original(factory):
    session, _ = started(factory)
    # The argument is lowercased, so ASINs and buttons may be written in any case.
    outcome = session.step(f"search[{SHORTS_QUERY.upper()}]")
    assert outcome.info["action_valid"] and f"{SHORTS}{SEP}Guy Harvey" in outcome.observation
    assert session.step(f"click[{SHORTS}]").info["action_valid"]
    assert session.step("click[< PREV]").info["action_valid"]
    # The pattern matches from the start and need not reach the end: trailing text is ignored.
    outcome = session.step("search[shorts] and then some")
    assert outcome.info["action_valid"]


def test_purchase_reward_and_done_page(factory, catalogue):
    session, instruction = started(factory, SHIRT_GOAL)
    goal = catalogue.synthetic_goals[SHIRT_GOAL]
    shirt = catalogue.product(SHIRT)
    open_product(session, SHIRT_QUERY, SHIRT)
    for value in goal.options.values():
        assert session.step(f"click[{value}]").info["action_valid"]
    outcome = session.step("click[buy now]")
    expected = score_purchase(goal, shirt, dict(goal.options), shirt.price)
    assert outcome.terminated and outcome.reward == expected.reward == 1.0
    assert outcome.info["reward_components"] == expected.components
    assert outcome.info["purchased"] == {"asin": SHIRT, "options": dict(goal.options), "price": 18.5}
    options_json = json.dumps(dict(goal.options), sort_keys=True)
    # The original text environment's done page (tests/test_webshop_pages.py checks every node).
    assert outcome.observation.startswith(SEP.join(["Thank you for shopping with us!", "Your code:", "None"]))
    assert SEP.join(["Purchased", "asin", SHIRT, "options", options_json, "attrs"]) in outcome.observation
    assert outcome.observation.endswith(SEP.join(["Your score (min 0.0, max 1.0)", "1.0", "Reward Details", "None"]))
    json.dumps(outcome.info)
    with pytest.raises(SessionStateError):
        session.step("click[back to search]")
    # A new episode starts cleanly in the same session.
    observation, info = session.reset({"goal_index": 1})
    assert observation.startswith("WebShop") and info["goal"]["index"] == 1


def test_partial_purchase_scores_below_one(factory, catalogue):
    session, _ = started(factory, SHIRT_GOAL)
    open_product(session, SHIRT_QUERY, SHIRT)
    outcome = session.step("click[buy now]")
    goal = catalogue.synthetic_goals[SHIRT_GOAL]
    assert outcome.reward == pytest.approx(5 / 7)  # 4 attributes + price, no options, of 4 + 2 + 1
    assert outcome.reward == score_purchase(goal, catalogue.product(SHIRT), {}, 18.5).reward


def test_url_and_html_modes(catalogue):
    url_session = WebShopFactory(observation_mode="url").new_session()
    html_session = WebShopFactory(observation_mode="html").new_session()
    for session in (url_session, html_session):
        session.reset({"goal_index": 0})
    assert url_session.observation() == "http://127.0.0.1:3000/fixed_0"
    assert html_session.observation().lstrip().startswith("<!DOCTYPE html>")
    assert url_session.step(f"search[{SHORTS_QUERY}]").observation == (
        "http://127.0.0.1:3000/search_results/fixed_0/guy+harvey+ladies+fishing+short/1"
    )
    assert url_session.step(f"click[{SHORTS.lower()}]").observation == (
        "http://127.0.0.1:3000/item_page/fixed_0/B005WXS61A/guy+harvey+ladies+fishing+short/1/{}"
    )
    assert url_session.step("click[red]").observation.endswith('/1/{"color": "red"}')
    html = html_session.step(f"search[{SHORTS_QUERY}]").observation
    assert 'class="product-link"' in html and "Total results: 50" in html


def test_goal_selection(factory, catalogue):
    session = factory.new_session()
    _, info = session.reset({"session": "fixed_12"})
    assert info["goal"]["index"] == 12 and info["session"] == "fixed_12"
    assert info["goal"]["instruction"] == catalogue.synthetic_goals[12].instruction_text
    test_goals = set(goal_indices("test"))
    picks = [session.reset({"split": "test", "seed": seed})[1]["goal"]["index"] for seed in range(20)]
    assert set(picks) <= test_goals and len(set(picks)) > 5
    assert picks == [session.reset({"split": "test", "seed": seed})[1]["goal"]["index"] for seed in range(20)]
    weighted = {session.reset({"seed": seed})[1]["goal"]["index"] for seed in range(5)}
    assert weighted <= set(range(6910))


@pytest.mark.parametrize(
    "options, message",
    [
        ({"goal_index": 6910}, "goal_index"),
        ({"goal_index": -1}, "goal_index"),
        ({"goal_index": "3"}, "goal_index"),
        ({"split": "validation"}, "validation"),
        ({"session": "random_3"}, "fixed_"),
        ({"goal": 3}, "unknown reset option"),
        ({"goal_index": 1, "split": "test"}, "at most one"),
        ({"split": "test", "seed": "x"}, "seed"),
    ],
)
def test_bad_reset_options(factory, options, message):
    session = factory.new_session()
    with pytest.raises(InvalidOptionsError, match=message):
        session.reset(options)


def test_bad_factory_options_and_state_errors():
    with pytest.raises(InvalidOptionsError, match="observation_mode"):
        WebShopFactory(observation_mode="pixels")
    with pytest.raises(InvalidOptionsError, match="human_goals"):
        WebShopFactory(human_goals="yes")
    session = WebShopFactory().new_session()
    with pytest.raises(SessionStateError):
        session.step("search[shorts]")
    with pytest.raises(SessionStateError):
        session.observation()


def test_human_goals():
    factory = WebShopFactory(human_goals=True)
    assert factory.describe()["goals"] == 13
    session = factory.new_session()
    observation, info = session.reset({"goal_index": 0})
    assert info["goal"]["options"] == ["blue"]
    assert observation.endswith("and price lower than 50.00 dollars [SEP] Search")
    with pytest.raises(InvalidOptionsError):
        session.reset({"goal_index": 13})


def test_describe(factory):
    described = factory.describe()
    assert described["products"] == 1000 and described["goals"] == 6910
    assert described["observation_mode"] == "text"
    json.dumps(described)
