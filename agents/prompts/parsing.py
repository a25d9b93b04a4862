"""Getting an action out of a model's reply, whatever shape the reply takes.

Small models rarely answer in exactly the requested format. The extractor accepts the variants seen
in practice, in this order of trust: ``<action>...</action>`` tags (verl-agent), an ``Action:`` line
(ReAct / AgentGym; the action may be on the next line), a ``> command`` line (ReAct's ALFWorld
transcripts), the environment's own action syntax anywhere in the text (``click[...]``), and finally
the first line that is not a thought. Code fences and surrounding quotes are ignored; ``think: ...``
and ``Thought: ...`` lines are kept as the thought. When nothing usable is found the result says
why, and the caller records it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_FALLBACK_CHARS = 200

_FENCE = re.compile(r"^\s*```[\w-]*\s*$", re.M)
_ACTION_TAG = re.compile(r"<action>\s*(.*?)\s*(?:</action>|$)", re.S | re.I)
_THINK_TAG = re.compile(r"<think>\s*(.*?)\s*(?:</think>|$)", re.S | re.I)
_ACTION_LINE = re.compile(r"^[ \t]*(?:[*_#]+\s*)?action(?:\s*\d+)?[*_]*\s*[:：][*_]*[ \t]*(.*)$", re.I | re.M)
_PROMPT_LINE = re.compile(r"^[ \t]*>[ \t]*(\S.*)$", re.M)
_THOUGHT_LINE = re.compile(r"^[ \t]*>?[ \t]*(?:[*_#]+\s*)?(?:thought|think)(?:\s*\d+)?[*_]*\s*[:：]", re.I)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass(frozen=True)
class Extracted:
    """The raw action text found in a reply, where it was found, and the reasoning around it."""

    candidate: str | None
    variant: str
    thought: str | None


def strip_fences(text: str) -> str:
    return _FENCE.sub("", text)


def _clean(candidate: str) -> str:
    candidate = candidate.strip().strip("`").strip()
    if len(candidate) >= 2 and candidate[0] == candidate[-1] and candidate[0] in "\"'":
        candidate = candidate[1:-1].strip()
    return candidate.removeprefix(">").strip()


def _thought(text: str) -> str | None:
    tag = _THINK_TAG.search(text)
    if tag:
        return tag.group(1).strip() or None
    lines = [line for line in text.splitlines() if _THOUGHT_LINE.match(line)]
    if not lines:
        return None
    first = text.splitlines().index(lines[0])
    body = []
    for line in text.splitlines()[first:]:
        if body and (_ACTION_LINE.match(line) or _PROMPT_LINE.match(line)) and not _THOUGHT_LINE.match(line):
            break
        body.append(_THOUGHT_LINE.sub("", line, count=1).strip())
    return " ".join(part for part in body if part) or None


def extract(text: str, syntax: re.Pattern[str] | None = None) -> Extracted:
    """Find the action in ``text``; ``syntax`` is the environment's action pattern (e.g. ``click[...]``)."""
    text = strip_fences(text)
    thought = _thought(text)
    tag = _ACTION_TAG.search(text)
    if tag and tag.group(1).strip():
        return Extracted(_clean(tag.group(1).strip().splitlines()[0]), "action_tag", thought)
    line = _ACTION_LINE.search(text)
    if line:
        rest = line.group(1).strip()
        if not rest:  # "Action:\nclick[...]" (AgentGym's format puts the action on the next line)
            following = [ln for ln in text[line.end():].splitlines() if ln.strip()]
            rest = following[0] if following else ""
        if rest:
            return Extracted(_clean(rest), "action_line", thought)
    for prompt in _PROMPT_LINE.finditer(text):
        if not _THOUGHT_LINE.match(prompt.group(1)):
            return Extracted(_clean(prompt.group(1)), "prompt_line", thought)
    if syntax is not None:
        found = syntax.search(text)
        if found:
            return Extracted(found.group(0), "inline_syntax", thought)
    for raw in text.splitlines():
        if raw.strip() and not _THOUGHT_LINE.match(raw) and not _THINK_TAG.match(raw.strip()):
            return Extracted(_clean(raw), "bare_line", thought)
    return Extracted(None, "none", thought)


def fallback_action(text: str) -> str:
    """What to send the environment for an unparseable reply: its first line, sanitised and bounded.

    The environment answers it as an invalid action (as the original benchmarks do), so the step
    still counts towards the step cap and a model that never parses cannot loop forever.
    """
    for line in strip_fences(text).splitlines():
        line = _CONTROL.sub(" ", line).strip()
        if line:
            return line[:MAX_FALLBACK_CHARS]
    return "noop"
