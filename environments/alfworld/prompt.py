"""ALFWorld prompts: ReAct's household instructions and worked episode, admissible commands listed."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from environments.core.prompt import EnvPrompt

INSTRUCTIONS = (
    'Interact with a household to solve a task. Imagine you are an intelligent agent in a household '
    'environment and your target is to perform actions to complete the task goal.\n'
    'Every round I will give you an observation and the list of admissible actions; you have to respond '
    'with one action.\n'
    'The available actions are:\n'
    '1. go to {recep}\n'
    '2. take {obj} from {recep}\n'
    '3. move {obj} to {recep}\n'
    '4. open {recep}\n'
    '5. close {recep}\n'
    '6. toggle {obj} {recep}\n'
    '7. clean {obj} with {recep}\n'
    '8. heat {obj} with {recep}\n'
    '9. cool {obj} with {recep}\n'
    '10. use {obj}\n'
    '11. examine {obj}, look, inventory\n'
    'where {obj} and {recep} correspond to objects and receptacles.\n'
    'After your each turn, the environment will give you immediate feedback based on which you plan your '
    'next few steps. If the environment outputs "Nothing happens.", your previous action was invalid and '
    'you should try a different one.\n'
    'Your response should use the following format:\n'
    '\n'
    'Thought: <your thoughts>\n'
    'Action: <your next action>'
)

VERL_INTRO = "You are an expert agent operating in the ALFRED Embodied Environment."

# ReAct's ALFWorld demonstration (put task, Yao et al., 2023) with ALFWorld 0.4's "move ... to ..." command.
EXAMPLE = (
    ("You are in the middle of a room. Looking quickly around you, you see a cabinet 4, a cabinet 3, a cabinet 2, "
     "a cabinet 1, a countertop 1, a garbagecan 1, a handtowelholder 2, a handtowelholder 1, a sinkbasin 2, a "
     "sinkbasin 1, a toilet 1, a toiletpaperhanger 1, and a towelholder 1.\nYour task is to: put some spraybottle "
     "on toilet.",
     "To solve the task, I need to find and take a spraybottle, then put it on the toilet. A spraybottle is more "
     "likely to appear in a cabinet (1-4), countertop 1, toilet 1, sinkbasin (1-2) or garbagecan 1. I will start "
     "with cabinet 1.",
     "go to cabinet 1"),
    ("On the cabinet 1, you see a cloth 1, a soapbar 1, a soapbottle 1.",
     "There is no spraybottle here. I will check cabinet 2.",
     "go to cabinet 2"),
    ("The cabinet 2 is closed.", "The cabinet is closed, so I open it.", "open cabinet 2"),
    ("You open the cabinet 2. The cabinet 2 is open. In it, you see a candle 1, and a spraybottle 2.",
     "Now I find a spraybottle (2). Next, I need to take it.",
     "take spraybottle 2 from cabinet 2"),
    ("You pick up the spraybottle 2 from the cabinet 2.",
     "Now I have the spraybottle. Next, I need to put it on toilet 1.",
     "go to toilet 1"),
    ("On the toilet 1, you see a soapbottle 2.", "I am at the toilet. I put the spraybottle on it.",
     "move spraybottle 2 to toilet 1"),
)

_THOUGHT = re.compile(r"^(?:think|thought)\s*[:：]", re.I)
_SPACES = re.compile(r"\s+")


def list_actions(available: Any) -> list[str]:
    return [str(a) for a in available] if isinstance(available, Sequence) and not isinstance(available, str) else []


def normalize(candidate: str, available: Any) -> tuple[str | None, str | None]:
    """The admissible command the candidate names (case and trailing words tolerated), else the text itself.

    A command that is not admissible is still sent: the game answers "Nothing happens.", as in ALFWorld,
    and a ``think: ...`` action gets "OK." without costing a game step, as in ReAct.
    """
    text = _SPACES.sub(" ", candidate).strip().rstrip(".!").strip()
    if not text:
        return None, "empty action"
    if _THOUGHT.match(text):  # ReAct's thinking action: the game answers "OK." without a step
        return "think: " + _THOUGHT.sub("", text, count=1).strip(), None
    admissible = list_actions(available)
    lowered = text.lower()
    by_lower = {a.lower(): a for a in admissible}
    if lowered in by_lower:
        return by_lower[lowered], None
    # "go to cabinet 1 to look for a mug": the longest admissible command the reply starts with
    prefixes = [a for a in admissible if lowered.startswith(a.lower() + " ")]
    if prefixes:
        return max(prefixes, key=len), None
    return lowered, None


ALFWORLD_PROMPT = EnvPrompt(
    react_instructions=INSTRUCTIONS,
    verl_intro=VERL_INTRO,
    list_actions=list_actions,
    concrete_actions=lambda available, task: list_actions(available),
    normalize=normalize,
    example=EXAMPLE,
    syntax=None,
    thought_action="think: {}",
    default_history={"react": 6, "verl": 2},
)
