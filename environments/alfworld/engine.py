"""One ALFWorld game engine: textworld's PDDL environment behind alfworld's name demangler.

This is the real engine, used the way alfworld's ``AlfredTWEnv`` uses it (``PddlEnv`` wrapped in
``AlfredDemangler`` so objects read "apple 1" rather than raw PDDL ids) minus the gym batching.
An engine object owns a private copy of fast-downward's planner library, so it is created once
and reused for game after game; a repeated start of the game it already holds skips ``load``.
It lives in a worker process (see :mod:`environments.alfworld.worker`).
"""

from __future__ import annotations

from typing import Any


class GameEngine:
    """Loads, resets and steps games; every answer is a plain JSON-serialisable dict."""

    def __init__(self) -> None:
        import textworld
        from alfworld.agents.environment.alfred_tw_env import AlfredDemangler
        from textworld.envs.pddl import PddlEnv

        self._env = AlfredDemangler(PddlEnv(textworld.EnvInfos(won=True, admissible_commands=True)))
        self._loaded: str | None = None
        self.loads = 0

    def start(self, path: str) -> dict[str, Any]:
        """Begin an episode of the game file at ``path`` (loading it unless it is already loaded)."""
        if path != self._loaded:
            self._loaded = None
            self._env.load(path)
            self._loaded = path
            self.loads += 1
        state = self._env.reset()
        return {
            "observation": state.feedback,
            "admissible_commands": list(state["admissible_commands"]),
            "won": bool(state["won"]),
            "command_templates": list(state["command_templates"]),
        }

    def step(self, command: str) -> dict[str, Any]:
        state, _, _ = self._env.step(command)
        return {
            "observation": state.feedback,
            "admissible_commands": list(state["admissible_commands"]),
            "won": bool(state["won"]),
        }
