"""``harness/ALFWorld-v0``: the Gymnasium face of ALFWorld, in-process or against a server.

Every Gymnasium step counts towards ``max_steps``, "think" actions included (ReAct's 50-turn
budget); the engine's own cap counts only the steps that reach the game, so it must be at least
``max_steps`` for truncation to come from here.
"""

from __future__ import annotations

import string
from typing import Any

from gymnasium import spaces

from environments.alfworld.session import ALFWorldFactory
from environments.core.client import RemoteSession, server_health
from environments.core.engine import TextSession
from environments.core.gym_env import TextGymEnv, text_space

DEFAULT_MAX_STEPS = 50
MAX_ACTION_CHARS = 1000
# Commands are one line: no carriage return, vertical tab or form feed (the server refuses them).
ACTION_SPACE_CHARS = frozenset(set(string.printable) - set("\r\x0b\x0c"))


class ALFWorldEnv(TextGymEnv):
    """ALFWorld text games as a Gymnasium ``Env``.

    ``server_url`` plays on a running server (``harness env serve alfworld``); without it the env
    starts its own in-process factory (``factory_options``: see ``ALFWorldConfig``; one worker by
    default). ``session`` plays on a session someone else owns (for example a shared factory's).
    Reset options: ``{"game": id}``, ``{"split": ..., "index": i}`` or ``{"split": ..., "seed": s}``,
    each optionally with ``"task_type"``.
    """

    def __init__(
        self,
        server_url: str | None = None,
        max_steps: int = DEFAULT_MAX_STEPS,
        render_mode: str | None = None,
        *,
        session: TextSession | None = None,
        timeout_s: float = 120.0,
        **factory_options: Any,
    ) -> None:
        self._factory: ALFWorldFactory | None = None
        if session is not None and (server_url is not None or factory_options):
            raise ValueError("give a session, or a server_url, or factory options, not several")
        if session is None and server_url is not None:
            if factory_options:
                raise ValueError(f"factory options {sorted(factory_options)} apply to in-process play only")
            _check_cap(max_steps, server_health(server_url)["engine"]["max_steps"], "the server's")
            session = RemoteSession(server_url, timeout_s=timeout_s)
        elif session is None:
            factory_options.setdefault("workers", 1)
            factory_options.setdefault("max_steps", max_steps)
            self._factory = ALFWorldFactory(**factory_options)
            _check_cap(max_steps, self._factory.config.max_steps, "the engine's")
            session = self._factory.new_session()
        super().__init__(
            session,
            max_steps,
            observation_space=text_space(),
            action_space=spaces.Text(max_length=MAX_ACTION_CHARS, min_length=0, charset=ACTION_SPACE_CHARS),
            render_mode=render_mode,
        )

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self._factory is not None:
                self._factory.close()
                self._factory = None


def _check_cap(max_steps: int, engine_cap: int, whose: str) -> None:
    if max_steps > engine_cap:
        raise ValueError(f"max_steps={max_steps} exceeds {whose} step cap of {engine_cap}; raise that cap")
