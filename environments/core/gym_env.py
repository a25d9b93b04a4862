"""One Gymnasium environment for every text engine, in-process or against a server.

Engines differ only in the :class:`TextSession` they hand in; the episode bookkeeping (step cap,
truncation, seeding, rendering) lives here once, so in-process and remote play behave identically.
"""

from __future__ import annotations

import string
from collections.abc import Iterable
from typing import Any

import gymnasium as gym
from gymnasium import spaces

from environments.core.engine import JSONDict, SessionStateError, TextSession

MAX_TEXT_CHARS = 1 << 20
ACTION_CHARSET = frozenset(set(string.printable) - set("\r\x0b\x0c"))
"""Printable ASCII without the control characters the servers reject in actions (tab and newline stay)."""


def text_space(extra_characters: Iterable[str] = (), max_length: int = MAX_TEXT_CHARS) -> spaces.Text:
    """A Text space whose charset covers printable ASCII plus the characters the engine can emit."""
    charset = set(string.printable) | set("".join(extra_characters))
    return spaces.Text(max_length=max_length, min_length=0, charset=frozenset(charset))


class TextGymEnv(gym.Env[str, str]):
    """Gymnasium ``Env`` over a :class:`TextSession`.

    ``terminated`` comes from the game (purchase, win); ``truncated`` is set when ``max_steps``
    actions have been taken without termination. ``info`` is the engine's info dict plus
    ``steps`` and ``max_steps``.
    """

    metadata = {"render_modes": ["human", "ansi"], "render_fps": 4}

    def __init__(
        self,
        session: TextSession,
        max_steps: int,
        observation_space: spaces.Text,
        action_space: spaces.Text | None = None,
        render_mode: str | None = None,
    ) -> None:
        if max_steps < 1:
            raise ValueError(f"max_steps must be at least 1, got {max_steps}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.session = session
        self.max_steps = max_steps
        self.observation_space = observation_space
        self.action_space = action_space or spaces.Text(max_length=1000, min_length=0, charset=ACTION_CHARSET)
        self.render_mode = render_mode
        self._steps = 0
        self._done = True
        self._last_observation = ""

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, JSONDict]:
        super().reset(seed=seed)
        options = dict(options or {})
        options.setdefault("seed", int(self.np_random.integers(0, 2**31 - 1)))
        observation, info = self.session.reset(options)
        self._steps = 0
        self._done = False
        self._last_observation = observation
        info = {**info, "steps": 0, "max_steps": self.max_steps}
        if self.render_mode == "human":
            self.render()
        return observation, info

    def step(self, action: str) -> tuple[str, float, bool, bool, JSONDict]:
        if self._done:
            raise SessionStateError("episode is over (or never started): call reset() first")
        outcome = self.session.step(str(action))
        self._steps += 1
        terminated = outcome.terminated
        truncated = not terminated and self._steps >= self.max_steps
        self._done = terminated or truncated
        self._last_observation = outcome.observation
        info = {**outcome.info, "steps": self._steps, "max_steps": self.max_steps}
        if self.render_mode == "human":
            self.render()
        return outcome.observation, outcome.reward, terminated, truncated, info

    def render(self) -> str | None:
        if self.render_mode == "ansi":
            return self._last_observation
        if self.render_mode == "human":
            print(self._last_observation)  # noqa: T201 - rendering to the terminal is the point
        return None

    def close(self) -> None:
        self.session.close()
        super().close()
