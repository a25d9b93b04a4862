"""Prompt formats per environment and style; see :mod:`agents.prompts.formats`.

Formats are looked up by ``(environment, style)``: the styles are generic, the environment supplies
an :class:`EnvPrompt` (instructions, action listing, action normalisation, a worked example). Another
environment plugs in with :func:`register_env_prompt`.
"""

from __future__ import annotations

from agents.prompts.alfworld import ALFWORLD_PROMPT
from agents.prompts.formats import STYLES, EnvPrompt, ParsedAction, PromptFormat
from agents.prompts.webshop import WEBSHOP_PROMPT

ENV_PROMPTS: dict[str, EnvPrompt] = {p.env: p for p in (WEBSHOP_PROMPT, ALFWORLD_PROMPT)}


def register_env_prompt(prompt: EnvPrompt) -> None:
    ENV_PROMPTS[prompt.env] = prompt


def get_prompt_format(env: str, style: str = "react", few_shot: bool = True,
                      history: int | None | str = "default", grounding: str = "none") -> PromptFormat:
    """The prompt format for ``env`` in ``style``; clear errors for unknown names."""
    if env not in ENV_PROMPTS:
        raise ValueError(f"no prompts for environment {env!r}; known: {', '.join(sorted(ENV_PROMPTS))}")
    if style not in STYLES:
        raise ValueError(f"unknown prompt style {style!r}; known: {', '.join(sorted(STYLES))}")
    return STYLES[style](ENV_PROMPTS[env], few_shot=few_shot, history=history, grounding=grounding)


__all__ = ["ENV_PROMPTS", "STYLES", "EnvPrompt", "ParsedAction", "PromptFormat", "get_prompt_format",
           "register_env_prompt"]
