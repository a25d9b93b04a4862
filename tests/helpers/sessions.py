"""The smallest real text session, for the session-manager and server tests."""

from __future__ import annotations

from environments.core.engine import StepOutcome


class CountingSession:
    """The smallest real TextSession: counts its steps, so tests can see which session they reached."""

    def __init__(self) -> None:
        self.steps = 0
        self.closed = False

    def reset(self, options=None):
        self.steps = 0
        return "start", {"available_actions": ["tick"]}

    def step(self, action):
        self.steps += 1
        return StepOutcome(f"tick {self.steps}", 0.0, False, {"action_valid": action == "tick"})

    def observation(self):
        return f"tick {self.steps}"

    def available_actions(self):
        return ["tick"]

    def close(self):
        self.closed = True
