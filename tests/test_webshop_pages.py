"""The text extraction rules on hand-written HTML (real BeautifulSoup, html.parser), and the
``text_rich`` strings of the item sub-pages and the done page."""

from __future__ import annotations

import pytest

from environments.webshop.engine import WebShopFactory
from environments.webshop.observation import parse_page, rich_text, simple_text

PAGE = """<!DOCTYPE html>
<html>
  <head><title>WebShop</title><style>p { color: red; }</style><meta charset="utf-8"></head>
  <body>
    <!-- a comment is not text -->
    <h4>Instruction: <br>buy a &lt;red&gt; hat</h4>
    <div><span>a</span> <span>b</span></div>
    <p>   </p>
    <p>
    </p>
    <form><button class="btn btn-success">Back to Search</button></form>
    <a class="product-link" href="#">B000000001</a>
    <h5>  padded  </h5>
    <input type="radio" id="radio_color0" name="Color" value="red">
    <label for="radio_color0">red</label>
    <input type="radio" id="radio_size0" name="size" value="back to search">
    <label for="radio_size0">back to search</label>
    <script>var hidden = "not text";</script>
  </body>
</html>
"""


def test_whitespace_and_visibility_rules():
    parsed = parse_page(PAGE)
    # "Instruction: " and the instruction are two nodes; the space between the spans has no newline
    # (an empty segment), the spaces-only <p> too; the newline-only <p> is dropped.
    assert simple_text(parsed) == (
        "Instruction: [SEP] buy a <red> hat [SEP] a [SEP]  [SEP] b [SEP]  [SEP] Back to Search [SEP] B000000001 "
        "[SEP] padded [SEP] red [SEP] back to search"
    )


def test_clickables_follow_the_original_order_and_overrides():
    parsed = parse_page(PAGE)
    # Buttons, then product links (lowercased text), then option values (as written); an option
    # named like a button keeps the button's position.
    assert parsed.available_actions() == {
        "has_search_bar": False,
        "clickables": ["back to search", "b000000001", "red"],
    }
    assert parse_page('<input id="search_input" type="text">').available_actions()["has_search_bar"] is True


def test_rich_text_markup():
    parsed = parse_page(PAGE)
    rich = rich_text(parsed, {"color": "red"}, {"B000000001"})
    assert rich.startswith("You have clicked red.\nInstruction: \nbuy a <red> hat\na\n \nb\n")
    assert "[button] Back to Search [button_]\n\n[clicked button] B000000001 [clicked button_]\n" in rich
    assert "  padded  \n  [clicked button] red [clicked button_]\n  [button] back to search [button_]\n" in rich
    plain = rich_text(parsed, {}, set())
    assert not plain.startswith("You have clicked") and "\n[button] B000000001 [button_]\n" in plain


@pytest.fixture(scope="module")
def rich_session():
    session = WebShopFactory(observation_mode="text_rich", show_attributes=True).new_session()
    _, info = session.reset({"goal_index": 580})
    session.step("search[amazon essentials men's slim-fit long-sleeve solid pocket oxford shirt]")
    session.step("click[b07f2g93bj]")
    session.step("click[lavender]")
    return session, info["goal"]["instruction"]


def nav(instruction: str) -> str:
    return f"Instruction:\n{instruction}\n[button] Back to Search [button_]\n[button] < Prev [button_]\n"


@pytest.mark.parametrize(
    "button, content",
    [
        (
            "description",
            "An Amazon brand - This slim-fit oxford shirt provides a classic, versatile look with "
            "box-pleated back yoke for everyday use\n",
        ),
        (
            "features",
            " This slim-fit oxford shirt provides a classic, versatile look with box-pleated back yoke for "
            "everyday use \n Features a button-down collar, patch chest pocket, rounded hem and barrel cuffs \n Work "
            "made better: we listen to customer feedback and fine-tune every detail to ensure quality, fit, and "
            "comfort \n",
        ),
        ("reviews", ""),
        (
            "attributes",
            " slim fit\n button closure\n long sleeve\n machine wash\nfashion\nmen's casual button-down "
            "shirts\nClothing, Shoes & Jewelry › Men › Clothing › Shirts › Casual Button-Down Shirts\n",
        ),
    ],
)
def test_rich_sub_pages(rich_session, button, content):
    session, instruction = rich_session
    # Sub-pages show no option labels, so nothing is marked clicked there.
    assert session.step(f"click[{button}]").observation == nav(instruction) + content
    assert session.step("click[< prev]").observation.startswith("You have clicked lavender.\n")


DONE_PAGE_TEXTS = [  # the original done page's text nodes as the original text environment renders them
    "Thank you for shopping with us!", "Your code: ", "None", " (Paste it in your MTurk interface.)",
    "Purchased", "asin", "B07F2G93BJ", "options", '{"color": "lavender", "size": "x-large"}',
    "attrs", "None", "category", "None", "query", "None", "product category", "None",
    "Target", "asin", "options", "attrs", "price upper", "instuction text", "category", "product category", "query",
    "Goal ", "None", "Reward", "Your score (min 0.0, max 1.0)", "0.8571428571428571", "Reward Details ", "None",
]


def buy_lavender_x_large(mode: str):
    session = WebShopFactory(observation_mode=mode).new_session()
    session.reset({"goal_index": 580})
    session.step("search[amazon essentials men's slim-fit long-sleeve solid pocket oxford shirt]")
    session.step("click[b07f2g93bj]")
    session.step("click[x-large]")
    session.step("click[lavender]")
    return session.step("click[buy now]")


@pytest.mark.parametrize(
    ("mode", "render"),
    [
        ("text", lambda texts: " [SEP] ".join(text.strip() for text in texts)),
        ("text_rich", lambda texts: "".join(f"{text}\n" for text in texts)),
    ],
)
def test_done_page_texts(mode, render):
    outcome = buy_lavender_x_large(mode)
    assert outcome.terminated and outcome.reward == 6 / 7  # the goal wants "x-small"
    assert outcome.observation == render(DONE_PAGE_TEXTS)


def test_done_page_html():
    html = buy_lavender_x_large("html").observation
    assert [node.text for node in parse_page(html).nodes] == DONE_PAGE_TEXTS
    assert '<div style="display:none">' in html  # what a browser hides is still text to an agent
