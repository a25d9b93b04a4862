"""Prompt formats: how an :class:`~agents.policy.AgentTurn` becomes chat messages, and back.

Two styles, in the formats the community uses, each for every environment that has an
:class:`EnvPrompt`:

- ``react``: ReAct as AgentGym runs it, multi-turn chat. The system message holds the instructions
  (and, with ``few_shot``, one worked episode); past steps are user/assistant turns; the model answers
  ``Thought: ...`` then ``Action: ...``.
- ``verl``: verl-agent's single-turn template: one user message with the task, the last few
  observation/action pairs, the current observation and the admissible actions; the model answers
  ``<think>...</think><action>...</action>``.

``history`` bounds how many past steps the prompt shows (``None`` = all, ``"default"`` = the
environment's default for the style), which bounds prompt length.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from agents.policy import AgentTurn, Message
from agents.prompts.grounding import check_mode, nearest
from agents.prompts.parsing import extract, fallback_action
from environments.core.prompt import EnvPrompt


@dataclass(frozen=True)
class ParsedAction:
    """The action to send (always set), and when the reply could not be parsed, why (``error``)."""

    action: str
    thought: str | None = None
    error: str | None = None
    variant: str = ""
    grounded_from: str | None = None  # the action as parsed, when grounding replaced it


class PromptFormat(ABC):
    """Renders turns for one environment and parses the replies."""

    style: str = ""
    stop: tuple[str, ...] = ()

    def __init__(self, prompt: EnvPrompt, few_shot: bool = True, history: int | None | str = "default",
                 grounding: str = "none") -> None:
        self.prompt = prompt
        self.few_shot = few_shot
        self.grounding = check_mode(grounding)
        self.history = prompt.default_history.get(self.style) if history == "default" else history
        if self.history is not None and (not isinstance(self.history, int) or self.history < 0):
            raise ValueError(f"history must be >= 0 or None, got {self.history}")

    @abstractmethod
    def messages(self, turn: AgentTurn) -> list[Message]:
        """The chat conversation for ``turn``."""

    def parse(self, text: str, available_actions: Any, task: str = "") -> ParsedAction:
        found = extract(text, self.prompt.syntax)
        if found.candidate is None and found.thought and self.prompt.thought_action:
            return ParsedAction(self.prompt.thought_action.format(found.thought), found.thought, None, "thought_only")
        if found.candidate is None:
            action, error = fallback_action(text), "no action found in the reply"
        else:
            action, error = self.prompt.normalize(found.candidate, available_actions)
            action = fallback_action(found.candidate) if action is None else action
        # grounding maps every reply, well-formed or not (a cut-off "search[..." too), to an action
        grounded = self._ground(action, available_actions, task)
        return ParsedAction(grounded, found.thought, error, found.variant,
                            grounded_from=action if grounded != action else None)

    def _ground(self, action: str, available_actions: Any, task: str) -> str:
        """With ``nearest`` grounding, the most similar of the actions a scripted agent may send here
        (``EnvPrompt.concrete_actions``); thinking actions pass, they are always allowed."""
        if self.grounding != "nearest":
            return action
        thinking = self.prompt.thought_action and action.startswith(self.prompt.thought_action.split("{}")[0])
        candidates = self.prompt.concrete_actions(available_actions, task)
        if thinking or not candidates or action in candidates:
            return action
        return nearest(action, candidates)

    def _recent(self, turn: AgentTurn):
        if self.history is None:
            return turn.history
        return turn.history[len(turn.history) - self.history:] if self.history else []

    def describe(self) -> dict[str, Any]:
        return {"style": self.style, "few_shot": self.few_shot, "history": self.history, "grounding": self.grounding}


class ReActFormat(PromptFormat):
    style = "react"
    stop = ("\nObservation:",)

    def _system(self) -> str:
        """Instructions and the worked example: the same for every episode, so backends can cache it."""
        parts = [self.prompt.react_instructions.strip()]
        if self.few_shot and self.prompt.example:
            lines = ["Here is an example of a whole episode:"]
            for observation, thought, action in self.prompt.example:
                lines += [f"Observation: {observation}", f"Thought: {thought}", f"Action: {action}"]
            parts.append("\n".join(lines))
        return "\n\n".join(parts)

    def messages(self, turn: AgentTurn) -> list[Message]:
        recent = self._recent(turn)
        skipped = len(turn.history) - len(recent)
        header = f"Your task is to: {turn.task}\n" + (f"({skipped} earlier steps not shown)\n" if skipped else "")
        messages: list[Message] = [{"role": "system", "content": self._system()}]
        for i, item in enumerate(recent):
            messages.append({"role": "user", "content": f"{header if i == 0 else ''}Observation: {item.observation}"})
            messages.append({"role": "assistant", "content": item.output.strip() or f"Action: {item.action}"})
        actions = "\n".join(f"- {a}" for a in self.prompt.list_actions(turn.available_actions))
        messages.append({
            "role": "user",
            "content": f"{'' if recent else header}Observation: {turn.observation}\n\nAvailable actions:\n{actions}"
                       "\n\nAnswer with one line 'Thought: ...' and then one line 'Action: ...'.",
        })
        return messages


class VerlFormat(PromptFormat):
    style = "verl"
    stop = ("</action>",)

    def messages(self, turn: AgentTurn) -> list[Message]:
        recent = self._recent(turn)
        actions = ",\n".join(f"'{a}'" for a in self.prompt.list_actions(turn.available_actions))
        lines = [self.prompt.verl_intro.strip(), f"Your task is to: {turn.task}"]
        if self.few_shot and self.prompt.example:
            observation, thought, action = self.prompt.example[0]
            lines.append(f"An example step. Observation: {observation}\n"
                         f"Reply: <think>{thought}</think><action>{action}</action>")
        if recent:
            start = len(turn.history) - len(recent)
            pairs = "".join(f"\n[Observation {start + i + 1}: '{item.observation}', Action {start + i + 1}: "
                            f"'{item.action}']" for i, item in enumerate(recent))
            lines.append(f"Prior to this step, you have already taken {turn.step} step(s). Below are the most "
                         f"recent {len(recent)} observations and the corresponding actions you took:{pairs}")
            lines.append(f"You are now at step {turn.step + 1} and your current observation is: {turn.observation}")
        else:
            lines.append(f"Your current observation is: {turn.observation}")
        lines.append(f"Your admissible actions of the current situation are:\n[\n{actions}\n].")
        lines.append(
            "Now it's your turn to take an action.\nYou should first reason step-by-step about the current "
            "situation. This reasoning process MUST be enclosed within <think> </think> tags.\nOnce you've "
            "finished your reasoning, you should choose an admissible action for current step and present it "
            "within <action> </action> tags."
        )
        return [{"role": "user", "content": "\n".join(lines)}]


STYLES: dict[str, type[PromptFormat]] = {"react": ReActFormat, "verl": VerlFormat}
