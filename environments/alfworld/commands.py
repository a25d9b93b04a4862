"""What an agent types, turned into what the game accepts.

The engine matches a command against its admissible commands exactly; anything else is
"Nothing happens.". Agents write "Go to desk 1." or "put mug 1 in/on desk 1" (the older ReAct-era
dialect), so commands are normalised (trimmed, lowercased, trailing "." dropped, spaces collapsed)
and a placement written in one dialect is mapped to the game's own: "put X in Y", "put X on Y" and
"put X in/on Y" <-> "move X to Y". The dialect the agent used is reported so an evaluation can say
which one it relied on.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

THINK_PREFIX = "think:"

# Objects and receptacles are "<name> <number>" ("apple 1", "countertop 2"): anchoring on the
# number keeps "in"/"on" inside a name from being read as the preposition.
_PLACEMENTS: dict[str, re.Pattern[str]] = {
    "move": re.compile(r"^move (?P<obj>\S.*? \d+) to (?P<recep>\S.*? \d+)$"),
    "put": re.compile(r"^put (?P<obj>\S.*? \d+) (?:in/on|in|on) (?P<recep>\S.*? \d+)$"),
}


def normalise(command: str) -> str:
    """Trim, lowercase, collapse whitespace and drop trailing full stops."""
    return " ".join(command.lower().split()).rstrip(".").rstrip()


def is_think(command: str) -> bool:
    """A ReAct "think: ..." action (after normalisation)."""
    return command.startswith(THINK_PREFIX)


def placement(command: str) -> tuple[str, str, str] | None:
    """``(dialect, object, receptacle)`` if the command places an object, else ``None``."""
    for dialect, pattern in _PLACEMENTS.items():
        match = pattern.match(command)
        if match:
            return dialect, match["obj"], match["recep"]
    return None


@dataclass(frozen=True)
class Resolved:
    """The command to send to the game, the placement dialect the agent used, and admissibility."""

    command: str
    dialect: str | None
    admissible: bool


def resolve(command: str, admissible: Sequence[str], map_dialect: bool = True) -> Resolved:
    """Map a normalised command onto the admissible one it means.

    An admissible command is used as it is. With ``map_dialect``, a placement that is not
    admissible in its own dialect becomes the admissible placement of the same object onto the same
    receptacle, if there is one. Anything else goes to the game unchanged ("Nothing happens.").
    """
    placed = placement(command)
    dialect = placed[0] if placed else None
    if command in admissible:
        return Resolved(command, dialect, True)
    if placed and map_dialect:
        for candidate in admissible:
            other = placement(candidate)
            if other and other[1:] == placed[1:]:
                return Resolved(candidate, dialect, True)
    return Resolved(command, dialect, False)


def game_dialect(command_templates: Sequence[str]) -> str:
    """The placement dialect a game's own grammar uses ("move X to Y" in the current files)."""
    return "move" if any(template.startswith("move ") for template in command_templates) else "put"
