"""A trajectory as the policy saw it: the agents' prompt for every step, followed by the step's output.

Training must show the model exactly the text it sees at rollout time, so this module does not
write prompts: it rebuilds each step's :class:`~agents.policy.AgentTurn` (task, observation,
available actions, history) and renders it with the agents layer's
:class:`~agents.prompts.PromptFormat` and the model's chat template, as the backends do. Each step
becomes one row ``prompt tokens + output tokens + end-of-turn``; only the output and the
end-of-turn token are targets. (The prompt of step ``i+1`` is not an extension of step ``i``'s: the
formats show the available actions only for the current step and a bounded history, so steps
cannot share one row.)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from agents.policy import AgentTurn, HistoryItem, Message
from agents.prompts import get_prompt_format
from environments.core.trajectory import Step, Trajectory
from prism_train.config import PromptConfig
from prism_train.modeling import TokenizedTrajectory, TokenRow

log = logging.getLogger(__name__)


def step_output(step: Step) -> str:
    """What the policy wrote at ``step``: the rollout's raw output when recorded, else the action
    (scripted experts write just the action)."""
    output = step.info.get("output") if isinstance(step.info, dict) else None
    return output if isinstance(output, str) and output.strip() else step.action


def _history_output(step: Step) -> str:
    """What the rollout engine put in the policy's history for ``step``: the recorded output as it
    was, an empty one included (the prompt format then shows the action), else the action."""
    output = step.info.get("output") if isinstance(step.info, dict) else None
    return output if isinstance(output, str) else step.action


def step_turn(trajectory: Trajectory, index: int) -> AgentTurn:
    """The :class:`AgentTurn` the policy acted on at step ``index`` of ``trajectory``."""
    step = trajectory.steps[index]
    history = [HistoryItem(s.observation, s.action, _history_output(s)) for s in trajectory.steps[:index]]
    return AgentTurn(
        episode_id=trajectory.id, env=trajectory.env, task=trajectory.task, observation=step.observation,
        available_actions=step.info.get("available_actions"), history=history, seed=trajectory.seed,
        info=dict(step.info),
    )


class TrajectoryTokenizer:
    """Turns trajectories into :class:`TokenizedTrajectory` rows with the model's chat template."""

    def __init__(self, tokenizer: Any, prompt: PromptConfig | None = None) -> None:
        self.tokenizer = tokenizer
        self.prompt = prompt or PromptConfig()
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError("the tokenizer has no chat template; training needs a chat (instruct) model")
        self._formats: dict[str, Any] = {}

    def _format(self, env: str):
        if env not in self._formats:
            self._formats[env] = get_prompt_format(env, self.prompt.style, few_shot=self.prompt.few_shot,
                                                   history=self.prompt.history)
        return self._formats[env]

    def messages(self, trajectory: Trajectory, index: int) -> list[Message]:
        """The chat messages of step ``index``'s prompt (what the backend was sent)."""
        return self._format(trajectory.env).messages(step_turn(trajectory, index))

    def _render(self, messages: Sequence[Message], generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(list(messages), tokenize=False,
                                                  add_generation_prompt=generation_prompt)

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def prompt_ids(self, messages: Sequence[Message]) -> list[int]:
        """Token ids of a prompt ending with the assistant header, exactly as the backends encode it."""
        return self._ids(self._render(messages, generation_prompt=True))

    def output_ids(self, messages: Sequence[Message], output: str) -> list[int]:
        """Token ids of the assistant turn after the prompt: the output and the end-of-turn token.

        Taken from the chat template's own rendering of the turn, cut after the tokenizer's EOS
        (what the model emits to stop); whitespace the template puts after it is not generated.
        """
        prompt = self._render(messages, generation_prompt=True)
        full = self._render([*messages, {"role": "assistant", "content": output}], generation_prompt=False)
        if not full.startswith(prompt):
            raise ValueError("the chat template does not render the assistant turn after the generation prompt; "
                             "cannot tell the output tokens apart")
        turn = full[len(prompt):]
        eos = self.tokenizer.eos_token
        if eos and eos in turn:
            turn = turn[: turn.index(eos) + len(eos)]
        return self._ids(turn)

    def tokenize(self, trajectory: Trajectory) -> TokenizedTrajectory:
        """One row per step (steps longer than ``max_length`` are dropped with a warning)."""
        rows = []
        for index, step in enumerate(trajectory.steps):
            messages = self.messages(trajectory, index)
            prompt = self.prompt_ids(messages)
            output = self.output_ids(messages, step_output(step))
            if len(prompt) + len(output) > self.prompt.max_length:
                log.warning("%s step %d: %d tokens exceed max_length %d; step dropped", trajectory.id, index,
                            len(prompt) + len(output), self.prompt.max_length)
                continue
            rows.append(TokenRow(prompt + output, [False] * len(prompt) + [True] * len(output)))
        return TokenizedTrajectory(trajectory.id, rows)

    def tokenize_all(self, trajectories: Sequence[Trajectory]) -> list[TokenizedTrajectory]:
        return [self.tokenize(t) for t in trajectories]
