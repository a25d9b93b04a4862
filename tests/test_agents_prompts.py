"""Prompt formats and action extraction: the output variants real models produce, and clear failures."""

from __future__ import annotations

import pytest

from agents.policy import AgentTurn, HistoryItem
from agents.prompts import get_prompt_format
from environments.core.registry import UnknownEnvError

WEBSHOP_ACTIONS = {"has_search_bar": False, "clickables": ["back to search", "next >", "b09lskqf8c", "Buy Now"]}
ALFWORLD_ACTIONS = ["go to countertop 1", "go to cabinet 1", "take apple 1 from countertop 1", "look"]


@pytest.mark.parametrize(("reply", "action", "variant"), [
    ("Thought: the first one fits.\nAction: click[B09LSKQF8C]", "click[b09lskqf8c]", "action_line"),
    ("Thought:\nI think so.\n\nAction: \nclick[buy now]", "click[Buy Now]", "action_line"),
    ("```\nclick[next >]\n```", "click[next >]", "inline_syntax"),
    ("I will click[b09lskqf8c] to see the details.", "click[b09lskqf8c]", "inline_syntax"),
    ("Action: search[red shoes] and then compare prices", "search[red shoes]", "action_line"),
    ("**Action:** click[back to search]", "click[back to search]", "action_line"),
    ("<think>it matches</think>\n<action>click[buy now]</action>", "click[Buy Now]", "action_tag"),
    ("<think>search first</think><action>search[blue jeans 32w]", "search[blue jeans 32w]", "action_tag"),
    ("b09lskqf8c", "click[b09lskqf8c]", "bare_line"),
    ("search: wireless earbuds", "search[wireless earbuds]", "bare_line"),
])
def test_webshop_variants(reply, action, variant):
    parsed = get_prompt_format("webshop").parse(reply, WEBSHOP_ACTIONS)
    assert (parsed.action, parsed.variant, parsed.error) == (action, variant, None)


@pytest.mark.parametrize(("reply", "action"), [
    ("> go to countertop 1", "go to countertop 1"),
    ("think: I need an apple first.\n> go to cabinet 1", "go to cabinet 1"),
    ("> think: I need an apple.\nOK.\n> take apple 1 from countertop 1", "take apple 1 from countertop 1"),
    ("Thought: it is on the counter.\nAction: Go to Countertop 1.", "go to countertop 1"),
    ("go to cabinet 1 to look for the apple", "go to cabinet 1"),
    ("`look`", "look"),
    ("Action 3: look", "look"),
    ("think: the apple may be in the fridge", "think: the apple may be in the fridge"),
    ("<think>x</think><action>open fridge 1</action>", "open fridge 1"),
])
def test_alfworld_variants(reply, action):
    parsed = get_prompt_format("alfworld").parse(reply, ALFWORLD_ACTIONS)
    assert parsed.action == action and parsed.error is None


@pytest.mark.parametrize(("env", "reply", "available", "action"), [
    ("webshop", "click[b09lskqf8x]", WEBSHOP_ACTIONS, "click[b09lskqf8c]"),
    ("webshop", "click[buy nw]", WEBSHOP_ACTIONS, "click[Buy Now]"),
    ("webshop", "search[b09lskqf8c]", WEBSHOP_ACTIONS, "click[b09lskqf8c]"),  # no search bar on this page
    ("webshop", "search[red shoe]", {"has_search_bar": True, "clickables": ["search"]}, "search[red shoes size 9]"),
    ("alfworld", "go to countertop 7", ALFWORLD_ACTIONS, "go to countertop 1"),
    ("alfworld", "take apple from counter", ALFWORLD_ACTIONS, "take apple 1 from countertop 1"),
    ("alfworld", "think: where is it", ALFWORLD_ACTIONS, "think: where is it"),
    ("alfworld", "look", ALFWORLD_ACTIONS, "look"),
])
def test_nearest_grounding_sends_the_most_similar_admissible_action(env, reply, available, action):
    parsed = get_prompt_format(env, grounding="nearest").parse(reply, available, task="red shoes size 9")
    assert parsed.action == action and parsed.error is None
    assert parsed.grounded_from == (None if action.lower() == reply.lower() else get_prompt_format(env).parse(
        reply, available).action)


def test_nearest_grounding_also_maps_a_reply_cut_off_before_its_action_closes():
    """A reply cut at max_new_tokens ("search[red shoes and and and") is still mapped, and the
    malformed reply stays recorded as a parse error."""
    search_page = {"has_search_bar": True, "clickables": ["search"]}
    cut_off = "search[red shoes and price and price and price and pri"
    plain = get_prompt_format("webshop").parse(cut_off, search_page)
    grounded = get_prompt_format("webshop", grounding="nearest").parse(cut_off, search_page, task="red shoes size 9")
    assert plain.error is not None and plain.action == cut_off
    assert grounded.action == "search[red shoes size 9]" and grounded.error == plain.error
    assert grounded.grounded_from == cut_off


def test_without_grounding_inadmissible_actions_are_sent_as_written():
    assert get_prompt_format("webshop").parse("click[b09lskqf8x]", WEBSHOP_ACTIONS).action == "click[b09lskqf8x]"
    assert get_prompt_format("alfworld").parse("go to countertop 7", ALFWORLD_ACTIONS).action == "go to countertop 7"
    with pytest.raises(ValueError, match="unknown grounding"):
        get_prompt_format("webshop", grounding="closest")


def test_thoughts_are_kept():
    parsed = get_prompt_format("webshop").parse("Thought: cheap and matching.\nAction: click[next >]", WEBSHOP_ACTIONS)
    assert parsed.thought == "cheap and matching."
    tagged = get_prompt_format("alfworld", "verl").parse("<think>go left</think><action>look</action>", [])
    assert tagged.thought == "go left"


@pytest.mark.parametrize(("env", "reply", "available"), [
    ("webshop", "I am not sure what to do here.", WEBSHOP_ACTIONS),
    ("webshop", "", WEBSHOP_ACTIONS),
    ("webshop", "Thought: still thinking", WEBSHOP_ACTIONS),
    ("webshop", "Action: click[]", WEBSHOP_ACTIONS),
    ("alfworld", "   \n\n", ALFWORLD_ACTIONS),
])
def test_unparseable_replies_say_why_and_still_give_a_bounded_action(env, reply, available):
    parsed = get_prompt_format(env).parse(reply, available)
    assert parsed.error
    assert parsed.action and len(parsed.action) <= 200 and "\n" not in parsed.action


def test_fallback_action_is_sanitised():
    parsed = get_prompt_format("webshop").parse("\x01weird\x02 output " + "x" * 500, WEBSHOP_ACTIONS)
    assert parsed.error and "\x01" not in parsed.action and len(parsed.action) == 200


def turn(env: str, steps: int, available) -> AgentTurn:
    history = [HistoryItem(f"observation {i}", f"action {i}", f"Thought: t{i}\nAction: action {i}")
               for i in range(steps)]
    return AgentTurn("e", env, "buy a red shoe", f"observation {steps}", available, history)


def test_react_prompt_keeps_a_fixed_system_message_and_a_bounded_history():
    fmt = get_prompt_format("webshop", "react", history=2)
    early, late = fmt.messages(turn("webshop", 0, WEBSHOP_ACTIONS)), fmt.messages(turn("webshop", 6, WEBSHOP_ACTIONS))
    assert early[0] == late[0] and early[0]["role"] == "system"  # identical across episodes: cacheable
    assert "Here is an example" in early[0]["content"] and "search[3 ounce" in early[0]["content"]
    assert [m["role"] for m in late] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert "buy a red shoe" in late[1]["content"] and "4 earlier steps not shown" in late[1]["content"]
    assert "observation 4" in late[1]["content"] and "Thought: t5" in late[4]["content"]
    assert "- click[b09lskqf8c]" in late[-1]["content"] and "observation 6" in late[-1]["content"]
    plain = get_prompt_format("webshop", "react", few_shot=False).messages(turn("webshop", 0, WEBSHOP_ACTIONS))
    assert "example" not in plain[0]["content"]


def test_verl_prompt_lists_admissible_actions_and_recent_history():
    fmt = get_prompt_format("alfworld", "verl")
    [message] = fmt.messages(turn("alfworld", 5, ALFWORLD_ACTIONS))
    text = message["content"]
    assert message["role"] == "user" and "ALFRED Embodied Environment" in text
    assert "'take apple 1 from countertop 1'" in text and "<action> </action>" in text
    assert "already taken 5 step(s)" in text and "[Observation 5: 'observation 4', Action 5: 'action 4']" in text
    assert "observation 2" not in text  # default verl history is 2 steps
    assert fmt.stop == ("</action>",)


def test_unknown_names_are_clear_errors():
    with pytest.raises(UnknownEnvError, match="unknown environment 'chess'"):
        get_prompt_format("chess")
    with pytest.raises(ValueError, match="unknown prompt style 'cot'"):
        get_prompt_format("webshop", "cot")
    with pytest.raises(ValueError, match="history"):
        get_prompt_format("webshop", history=-3)
