"""WebShop prompts: AgentGym's instructions, ReAct's worked episode, ``search[...]``/``click[...]`` actions."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from environments.core.prompt import EnvPrompt

SYNTAX = re.compile(r"\b(search|click)\s*\[([^\]\n]*)\]", re.I)
_LOOSE = re.compile(r"^(search|click)\s*[:\s]\s*(\S.*)$", re.I)

INSTRUCTIONS = (
    'You are web shopping.\n'
    'I will give you instructions about what to do.\n'
    'You have to follow the instructions.\n'
    'Every round I will give you an observation and a list of available actions, you have to respond an '
    'action based on the state and instruction.\n'
    'You can use search action if search is available.\n'
    'You can click one of the buttons in clickables.\n'
    'An action should be of the following structure:\n'
    'search[keywords]\n'
    'click[value]\n'
    'If the action is not valid, perform nothing.\n'
    'Keywords in search are up to you, but the value in click must be a value in the list of available actions.\n'
    'Remember that your keywords in search should be carefully designed.\n'
    'Your response should use the following format:\n'
    '\n'
    'Thought: I think ...\n'
    'Action: click[something]'
)

VERL_INTRO = "You are an expert autonomous agent operating in the WebShop e-commerce platform."

_DEODORANT = ("i would like a 3 ounce bottle of bright citrus deodorant for sensitive skin, "
              "and price lower than 50.00 dollars")
_TITLE = ("Bright Citrus Deodorant by Earth Mama | Natural and Safe for Sensitive Skin, Pregnancy and Breastfeeding, "
          "Contains Organic Calendula 3-Ounce")
_ITEM_PAGE = (f"Instruction: [SEP] {_DEODORANT} [SEP] Back to Search [SEP] < Prev [SEP] scent [SEP] assorted scents "
              "[SEP] bright citrus [SEP] calming lavender [SEP] ginger fresh [SEP] simply non-scents [SEP] size [SEP] "
              "travel set (4-pack) [SEP] 3 ounce (pack of 1) [SEP] 3-ounce (2-pack) [SEP] "
              f"{_TITLE} [SEP] Price: $10.99 [SEP] Rating: N.A. [SEP] Description [SEP] Features [SEP] Reviews "
              "[SEP] Buy Now")

# ReAct's WebShop demonstration (Yao et al., 2023), in this engine's text observations.
EXAMPLE = (
    (f"WebShop [SEP] Instruction: [SEP] {_DEODORANT} [SEP] Search",
     "I need a 3 ounce bright citrus deodorant for sensitive skin. I will search for it.",
     "search[3 ounce bright citrus deodorant sensitive skin]"),
    (f"Instruction: [SEP] {_DEODORANT} [SEP] Back to Search [SEP] Page 1 (Total results: 50) [SEP] Next > [SEP] "
     f"B078GWRC1J [SEP] {_TITLE} [SEP] $10.99 [SEP] B078GTKVXY [SEP] Ginger Fresh Deodorant by Earth Mama | "
     "Natural and Safe for Sensitive Skin, Pregnancy and Breastfeeding, Contains Organic Calendula 3-Ounce [SEP] "
     "$10.99 [SEP] B08KBVJ4XN [SEP] Barrel and Oak - Aluminum-Free Deodorant, Deodorant for Men, Essential "
     "Oil-Based Scent, 24-Hour Odor Protection, Cedar & Patchouli Blend, Gentle on Sensitive Skin (Mountain Sage, "
     "2.7 oz, 2-Pack) [SEP] $15.95",
     "B078GWRC1J is a bright citrus deodorant for sensitive skin under 50 dollars. I will check it.",
     "click[b078gwrc1j]"),
    (_ITEM_PAGE,
     "The item has the options 'bright citrus' and '3 ounce (pack of 1)'. I will select the scent first.",
     "click[bright citrus]"),
    (_ITEM_PAGE, "Now I select the size.", "click[3 ounce (pack of 1)]"),
    (_ITEM_PAGE, "Both options are selected and the price is below 50 dollars. I will buy it.", "click[buy now]"),
)


def list_actions(available: Any) -> list[str]:
    """verl-agent's rendering: the search template when there is a search bar, then every click."""
    if not isinstance(available, Mapping):
        return []
    actions = ["search[<your query>]"] if available.get("has_search_bar") else []
    actions += [f"click[{c}]" for c in available.get("clickables", []) if c != "search"]
    return actions


def concrete_actions(available: Any, task: str) -> list[str]:
    """Every action a scripted agent can send: the task as the query, and every click."""
    actions = list_actions(available)
    if actions and actions[0] == "search[<your query>]":
        query = SYNTAX.sub(" ", task).replace("[", " ").replace("]", " ").strip()
        actions[0] = f"search[{query}]"
    return actions


def normalize(candidate: str, available: Any) -> tuple[str | None, str | None]:
    """``search[...]``/``click[...]`` from the candidate; click values take the page's spelling."""
    found = SYNTAX.search(candidate) or _LOOSE.match(candidate.strip())
    if found is None:
        clickables = list(available.get("clickables", [])) if isinstance(available, Mapping) else []
        exact = {c.lower(): c for c in clickables}.get(candidate.strip().lower())
        if exact is not None:
            return f"click[{exact}]", None
        return None, f"no search[...] or click[...] action in {candidate[:80]!r}"
    verb, argument = found.group(1).lower(), found.group(2).strip().rstrip("]").strip()
    if not argument:
        return None, f"empty {verb}[] action"
    if verb == "click" and isinstance(available, Mapping):
        argument = {c.lower(): c for c in available.get("clickables", [])}.get(argument.lower(), argument)
    return f"{verb}[{argument}]", None


WEBSHOP_PROMPT = EnvPrompt(
    react_instructions=INSTRUCTIONS,
    verl_intro=VERL_INTRO,
    list_actions=list_actions,
    concrete_actions=concrete_actions,
    normalize=normalize,
    example=EXAMPLE,
    syntax=SYNTAX,
    default_history={"react": 3, "verl": 2},
)
