"""An ALFWorld expert that searches: it knows the task, not where things are.

Why: the stored walkthroughs (:class:`~environments.alfworld.expert.WalkthroughExpert`) are oracle
plans that go straight to the receptacle holding the object. A policy imitating them never sees what
to do when a receptacle does not hold what it wants, so it learns to guess and then loops (measured:
README, "The pretrained base"). This expert plays like the hand-coded expert the original ALFWorld
trains its text agents with: it visits receptacles in the order the room lists them (surfaces first,
then the cabinets, drawers and appliances that may need opening), opens closed ones, remembers what
it has seen, takes the object when it sees it, cleans / heats / cools it or finds the lamp, and
carries it to the target. Its demonstrations therefore contain search.

It reads the task's words (object, target receptacle or lamp, task type) from the game id, which
says exactly what the task text says, and everything else from the observations and the admissible
actions the agent also sees. It can fail (the object is somewhere it never looks before the step
cap); failed episodes are recorded as such and, like any failed expert episode, not trained on.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from environments.core.engine import JSONDict

# task type -> (verb of the transformation, appliances that do it); None: no transformation
_TRANSFORMS: dict[str, tuple[str, tuple[str, ...]] | None] = {
    "pick_and_place_simple": None,
    "pick_two_obj_and_place": None,
    "look_at_obj_in_light": None,
    "pick_clean_then_place_in_recep": ("clean", ("sinkbasin", "bathtubbasin")),
    "pick_heat_then_place_in_recep": ("heat", ("microwave",)),
    "pick_cool_then_place_in_recep": ("cool", ("fridge",)),
}
# receptacles that may need opening: looked into after every surface, since each costs two steps
_CONTAINERS = frozenset({"cabinet", "drawer", "fridge", "microwave", "safe"})
_THING = re.compile(r"\b([a-z]+) (\d+)\b")
_ROOM = re.compile(r"you see (.*?)\.\s*(?:\n|$)", re.IGNORECASE)


@dataclass(frozen=True)
class SearchTask:
    """What a game asks for, in the words of its task text: the object type, the receptacle type it goes
    to (or the lamp to look at it under), and the task type."""

    task_type: str
    obj: str
    target: str

    @classmethod
    def from_game_id(cls, game_id: str) -> SearchTask:
        """``<split>/<task type>-<Object>-<movable>-<Target>-<scene>/<trial>`` (ALFWorld's game folders)."""
        parts = game_id.split("/")
        fields = parts[1].split("-") if len(parts) >= 2 else []
        if len(fields) != 5 or fields[0] not in _TRANSFORMS:
            raise ValueError(f"not an ALFWorld game id with a known task type: {game_id!r}")
        task_type, obj, _movable, target, _scene = fields
        return cls(task_type, obj.lower(), target.lower())


def _kind(thing: str) -> str:
    """``"apple 1"`` -> ``"apple"``."""
    return thing.rsplit(" ", 1)[0]


@dataclass
class _Memory:
    """What the agent has seen so far in this episode."""

    order: list[str] = field(default_factory=list)  # receptacles: surfaces, then containers, as the room lists them
    contents: dict[str, set[str]] = field(default_factory=dict)  # receptacle -> things seen in or on it
    visited: set[str] = field(default_factory=set)
    location: str | None = None
    closed: bool = False  # the current receptacle said it is closed
    holding: str | None = None
    placed: set[str] = field(default_factory=set)
    transformed: bool = False

    def update(self, observation: str) -> None:
        text = observation.strip()
        if self.location is None and not self.order and (room := _ROOM.search(text)):
            listed = [f"{m.group(1)} {m.group(2)}" for m in _THING.finditer(room.group(1))]
            self.order = sorted(listed, key=lambda receptacle: _kind(receptacle) in _CONTAINERS)
        if match := re.match(r"You arrive at ([a-z]+ \d+)\.", text):
            self.location = match.group(1)
            self.visited.add(self.location)
            self.closed = f"The {self.location} is closed" in text
            self._see(self.location, text)
        elif match := re.match(r"You open the ([a-z]+ \d+)\.", text):
            self.closed = False
            self._see(match.group(1), text)
        elif match := re.match(r"You pick up the ([a-z]+ \d+) from the ([a-z]+ \d+)\.", text):
            self.holding = match.group(1)
            self.contents.get(match.group(2), set()).discard(self.holding)
        elif match := re.match(r"You move the ([a-z]+ \d+) to the ([a-z]+ \d+)\.", text):
            self.placed.add(match.group(1))
            self.contents.setdefault(match.group(2), set()).add(match.group(1))
            self.holding = None
        elif re.match(r"You (?:clean|heat|cool) the ", text):
            self.transformed = True

    def _see(self, receptacle: str, text: str) -> None:
        seen = text.split("you see", 1)[1] if "you see" in text else ""
        self.contents[receptacle] = {f"{m.group(1)} {m.group(2)}" for m in _THING.finditer(seen)}

    def where(self, kind: str, exclude: set[str]) -> str | None:
        """A receptacle where a thing of ``kind`` (not in ``exclude``) was seen, other than the current one."""
        for receptacle in self.order:
            things = self.contents.get(receptacle, set())
            if receptacle != self.location and any(_kind(t) == kind and t not in exclude for t in things):
                return receptacle
        return None


class SearchingExpert:
    """A searching policy over observations: ``begin(reset_info)``, then ``act(observation, info)``
    per step; ``act`` returns ``None`` when it has nowhere left to look."""

    def __init__(self) -> None:
        self.task: SearchTask | None = None
        self.memory = _Memory()

    def describe(self) -> JSONDict:
        return {"name": "alfworld-search"}

    def begin(self, info: Mapping[str, Any]) -> None:
        if not info.get("game"):
            raise ValueError("the ALFWorld searching expert needs the reset info's 'game' id")
        self.task = SearchTask.from_game_id(str(info["game"]))
        self.memory = _Memory()

    def act(self, observation: str, info: Mapping[str, Any]) -> str | None:
        if self.task is None:
            raise RuntimeError("begin() must be called before act()")
        memory, task = self.memory, self.task
        memory.update(observation)
        admissible: Sequence[str] = info.get("available_actions") or []
        if memory.holding is None:
            return self._fetch(task.obj, memory.placed, admissible)
        transform = _TRANSFORMS[task.task_type]
        if transform is not None and not memory.transformed:
            verb, appliances = transform
            return self._use_appliance(verb, appliances, admissible)
        if task.task_type == "look_at_obj_in_light":
            use = f"use {task.target}"
            action = next((a for a in admissible if a.startswith(use + " ")), None)
            return action or self._go_towards(task.target, set(), admissible)
        return self._deliver(admissible)

    def _fetch(self, kind: str, exclude: set[str], admissible: Sequence[str]) -> str | None:
        for action in admissible:
            if match := re.fullmatch(r"take ([a-z]+ \d+) from ([a-z]+ \d+)", action):
                if _kind(match.group(1)) == kind and match.group(1) not in exclude:
                    return action
        return self._go_towards(kind, exclude, admissible)

    def _go_towards(self, kind: str, exclude: set[str], admissible: Sequence[str]) -> str | None:
        """To where a ``kind`` was seen; else open the closed receptacle here; else the next unvisited one."""
        memory = self.memory
        if (known := memory.where(kind, exclude)) and f"go to {known}" in admissible:
            return f"go to {known}"
        if memory.closed and memory.location and f"open {memory.location}" in admissible:
            return f"open {memory.location}"
        for receptacle in memory.order:
            if receptacle not in memory.visited and f"go to {receptacle}" in admissible:
                return f"go to {receptacle}"
        return None

    def _use_appliance(self, verb: str, appliances: tuple[str, ...], admissible: Sequence[str]) -> str | None:
        memory = self.memory
        prefix = f"{verb} {memory.holding} with "
        action = next((a for a in admissible if a.startswith(prefix)), None)
        if action:
            return action
        if memory.location and _kind(memory.location) in appliances and f"open {memory.location}" in admissible:
            return f"open {memory.location}"
        return self._go_to_kind(appliances, admissible)

    def _deliver(self, admissible: Sequence[str]) -> str | None:
        memory, task = self.memory, self.task
        assert task is not None
        if memory.location and _kind(memory.location) == task.target:
            move = f"move {memory.holding} to {memory.location}"
            if move in admissible:
                return move
            if f"open {memory.location}" in admissible:
                return f"open {memory.location}"
        return self._go_to_kind((task.target,), admissible)

    def _go_to_kind(self, kinds: tuple[str, ...], admissible: Sequence[str]) -> str | None:
        """To the first receptacle of one of ``kinds``, in the room's order (any instance serves)."""
        memory = self.memory
        for receptacle in memory.order:
            if _kind(receptacle) in kinds and receptacle != memory.location and f"go to {receptacle}" in admissible:
                return f"go to {receptacle}"
        return None
