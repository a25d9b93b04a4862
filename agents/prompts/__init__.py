"""Prompt formats per environment and style; see :mod:`agents.prompts.formats`.

Formats are looked up by ``(environment, style)``: the styles are generic, the environment's spec supplies
an :class:`~environments.core.prompt.EnvPrompt` (``EnvSpec.prompt``: instructions, action listing, action
normalisation, a worked example), so a plugin environment brings its own.
"""

from __future__ import annotations

from agents.prompts.formats import STYLES, ParsedAction, PromptFormat
from environments.core.registry import get_env_spec


def get_prompt_format(env: str, style: str = "react", few_shot: bool = True,
                      history: int | None | str = "default", grounding: str = "none") -> PromptFormat:
    """The prompt format for ``env`` in ``style``; clear errors for unknown names."""
    prompt = get_env_spec(env).env_prompt()
    if style not in STYLES:
        raise ValueError(f"unknown prompt style {style!r}; known: {', '.join(sorted(STYLES))}")
    return STYLES[style](prompt, few_shot=few_shot, history=history, grounding=grounding)


__all__ = ["STYLES", "ParsedAction", "PromptFormat", "get_prompt_format"]
