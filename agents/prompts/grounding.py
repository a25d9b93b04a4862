"""Action grounding: the agent sends the admissible action nearest to what the model wrote.

Off by default, as the original benchmarks run: an action that is not admissible is sent as it is
and the environment answers it as invalid. With ``nearest`` grounding the agent sends, of the
actions a scripted agent may send at this step (``EnvPrompt.concrete_actions``: ALFWorld's
admissible commands; WebShop's clicks, and while the page has a search bar the instruction itself
as the query), the one whose text is most similar to the model's action (for a malformed reply,
to its first line). This is the "action translation" of Huang et al. (2022, *Language Models as
Zero-Shot Planners*), who map every model output to the most similar admissible step. A model too
small to spell a product id or to copy an instruction then still acts, so what it learnt about
*which* action to take can be measured. It is a property of the agent, recorded with the policy, and
must be the same for every strategy compared.
"""

from __future__ import annotations

from collections.abc import Sequence

from rapidfuzz import fuzz, process, utils

GROUNDING_MODES = ("none", "nearest")


def nearest(text: str, candidates: Sequence[str]) -> str:
    """The candidate most similar to ``text`` (normalised edit similarity, case-insensitive; ties: first).

    ``candidates`` must not be empty."""
    return process.extractOne(text, list(candidates), scorer=fuzz.ratio, processor=utils.default_process)[0]


def check_mode(mode: str) -> str:
    if mode not in GROUNDING_MODES:
        raise ValueError(f"unknown grounding {mode!r}; known: {', '.join(GROUNDING_MODES)}")
    return mode
