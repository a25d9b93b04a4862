"""Memoised pure steps of the TextWorld PDDL engine, installed inside game worker processes.

Loading a game spends most of its time in fast-downward's PDDL→SAS translation, which textworld
runs four times per new game (``PddlState`` is built on ``load`` and again on every ``reset``, each
translating the problem twice: once in full for play, once pruned for the planner). The translation
is a pure function of the domain and problem text, so :class:`TranslationMemo` keys it by their
SHA-256 and keeps the SAS text (gzip-compressed) in an in-memory LRU and, optionally, on disk in the
cache directory. The parsed PDDL task that comes with it is rebuilt by fast-downward's own parser
(milliseconds). The planner's pruned copy is only read by ``replan`` (policy commands), which these
engines never request, so it is served the full translation: one translation per new game, none
for a game seen before.

Stepping renders every observation and every admissible command through textworld's text grammar,
and spends its time in three places that repeat the same work:

- re-parsing the same grammar strings with tatsu: :class:`GrammarParseMemo` keeps each parse and
  hands out deep copies (the engine mutates them);
- re-parsing the same rule conditions (``Rule.parse_conjunctive_query``), which the grammar only
  matches against the state: :class:`QueryParseMemo` keeps each parsed rule;
- deep copies of the derivation context. ``Symbol.copy`` deep-copies a symbol *with* its context,
  the whole game state included, only to replace that context at once; and ``copy_context``
  deep-copies the context's ``variables`` (entity infos, which the grammar's expressions only read:
  ``{o.name}``, ``{o.indefinite + ' ' + o.name}``) and ``mapping`` (placeholders to variables,
  immutable values). :func:`light_copy_context` and :func:`light_symbol_copy` give the same
  derivations with shallow copies of those two maps and without copying the state.

Together they take a step from about 23 ms of CPU to 2.5 ms (``benchmarks/bench_alfworld.py``).
They are installed by replacing the names textworld looks up at call time
(``textworld.envs.pddl.logic.fast_downward``, and ``_parse_and_convert``, ``Rule``, ``copy_context``
and ``Symbol.copy`` in ``textworld.envs.pddl.textgen``), only in worker processes.
``tests/test_alfworld_engine.py`` checks that play is identical with and without them, on
walkthroughs and on random admissible play.
"""

from __future__ import annotations

import contextlib
import copy
import gzip
import hashlib
import io
import logging
import os
import sys
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from types import ModuleType
from typing import Any

log = logging.getLogger(__name__)


class _LRU:
    """A small thread-safe LRU mapping with hit/miss counts."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._data: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Any) -> Any | None:
        with self._lock:
            value = self._data.get(key)
            if value is None:
                self.misses += 1
                return None
            self.hits += 1
            self._data.move_to_end(key)
            return value

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.max_entries:
                self._data.popitem(last=False)

    def stats(self) -> dict[str, int]:
        return {"entries": len(self._data), "hits": self.hits, "misses": self.misses}


class TranslationMemo:
    """``fast_downward.pddl2sas`` memoised by content hash, in memory and optionally on disk."""

    def __init__(self, disk_dir: Path | None = None, max_entries: int = 1024) -> None:
        import fast_downward

        self._downward = fast_downward
        self._cache = _LRU(max_entries)
        # The translator's version is part of the key, so an upgrade never reads stale SAS files.
        self._salt = f"fast-downward-textworld=={version('fast-downward-textworld')}"
        self.disk_dir = disk_dir / self._salt if disk_dir is not None else None
        self.disk_hits = 0

    def pddl2sas(self, domain: str, problem: str, verbose: bool = False, optimize: bool = False) -> tuple[Any, str]:
        key = hashlib.sha256(f"{self._salt}\0{optimize}\0{domain}\0{problem}".encode()).hexdigest()
        packed = self._cache.get(key) or self._read_disk(key)
        if packed is not None:
            return _parse_task(domain, problem), gzip.decompress(packed).decode("utf-8")
        task, sas = self._downward.pddl2sas(domain, problem, verbose=verbose, optimize=optimize)
        packed = gzip.compress(sas.encode("utf-8"), compresslevel=1)
        self._cache.put(key, packed)
        self._write_disk(key, packed)
        return task, sas

    def _disk_path(self, key: str) -> Path | None:
        return self.disk_dir / key[:2] / f"{key}.sas.gz" if self.disk_dir is not None else None

    def _read_disk(self, key: str) -> bytes | None:
        path = self._disk_path(key)
        if path is None or not path.is_file():
            return None
        packed = path.read_bytes()
        try:
            gzip.decompress(packed)
        except (OSError, EOFError) as exc:  # a torn or foreign file: translate again and overwrite it
            log.warning("ignoring unreadable SAS cache file %s: %s", path, exc)
            return None
        self.disk_hits += 1
        self._cache.put(key, packed)
        return packed

    def _write_disk(self, key: str, packed: bytes) -> None:
        path = self._disk_path(key)
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(packed)
            os.replace(tmp, path)
        except OSError as exc:  # a read-only or full cache only costs speed
            log.warning("cannot write SAS cache file %s: %s", path, exc)

    def stats(self) -> dict[str, int]:
        return {**self._cache.stats(), "disk_hits": self.disk_hits}


def _parse_task(domain: str, problem: str) -> Any:
    """The normalised PDDL task, as ``pddl2sas`` builds it before translating."""
    lisp_parser, parsing_functions, normalize = _translator_modules()
    with contextlib.redirect_stdout(io.StringIO()):  # its warnings, as pddl2sas captures them
        task = parsing_functions.parse_task(
            lisp_parser.parse_nested_list(domain.split("\n")), lisp_parser.parse_nested_list(problem.split("\n"))
        )
        normalize.normalize(task)
    return task


def _translator_modules() -> tuple[ModuleType, ModuleType, ModuleType]:
    # fast-downward's options module parses sys.argv on first import; give it what it expects.
    saved = sys.argv
    sys.argv = ["translate.py", "domain", "task"]
    try:
        from fast_downward.translate import normalize
        from fast_downward.translate.pddl_parser import lisp_parser, parsing_functions
    finally:
        sys.argv = saved
    return lisp_parser, parsing_functions, normalize


class GrammarParseMemo:
    """textworld's grammar parser memoised by input; each caller gets its own deep copy."""

    def __init__(self, parse: Callable[..., Any], max_entries: int = 8192) -> None:
        self._parse = parse
        self._cache = _LRU(max_entries)

    def __call__(self, text: str, rule_name: str, trace: bool = False) -> Any:
        key = (text, rule_name)
        parsed = self._cache.get(key)
        if parsed is None:
            parsed = self._parse(text, rule_name=rule_name, trace=trace)
            self._cache.put(key, parsed)
        return copy.deepcopy(parsed)

    def stats(self) -> dict[str, int]:
        return self._cache.stats()


class QueryParseMemo:
    """``Rule.parse_conjunctive_query`` memoised by expression; the grammar only matches the rule."""

    def __init__(self, parse: Callable[[str], Any], max_entries: int = 4096) -> None:
        self._parse = parse
        self._cache = _LRU(max_entries)

    def parse_conjunctive_query(self, expression: str) -> Any:
        rule = self._cache.get(expression)
        if rule is None:
            rule = self._parse(expression)
            self._cache.put(expression, rule)
        return rule

    def stats(self) -> dict[str, int]:
        return self._cache.stats()


def light_copy_context(context: dict[str, Any]) -> dict[str, Any]:
    """textgen's ``copy_context`` with shallow copies of ``variables`` and ``mapping`` (see above)."""
    return {
        "state": context["state"],
        "facts": context["facts"],
        "variables": dict(context["variables"]),
        "mapping": dict(context["mapping"]),
        "entity_infos": context["entity_infos"],
    }


def light_symbol_copy(symbol: Any, context: dict[str, Any]) -> Any:
    """textgen's ``Symbol.copy`` without deep-copying the context it replaces (nor any symbol's state)."""
    shared = symbol.context
    keep = {id(shared): shared}
    for key in ("state", "facts", "entity_infos"):
        if key in shared:
            keep[id(shared[key])] = shared[key]
    copied = copy.deepcopy(symbol, keep)
    copied.context = light_copy_context(context)
    return copied


class _DownwardWithMemo:
    """Stands in for the ``fast_downward`` module inside textworld's PDDL logic."""

    def __init__(self, module: ModuleType, memo: TranslationMemo) -> None:
        self._module = module
        self._memo = memo

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)

    def pddl2sas(self, domain: str, problem: str, verbose: bool = False, optimize: bool = False) -> tuple[Any, str]:
        # optimize=True is the planner's pruned copy of the task, read only by ``replan`` (policy
        # commands), which these engines never request: it gets the full task instead of a second
        # translation. The full task is the same problem, so even a replan would stay correct.
        return self._memo.pddl2sas(domain, problem, verbose=verbose, optimize=False)


def install(disk_dir: Path | None) -> tuple[TranslationMemo, GrammarParseMemo, QueryParseMemo]:
    """Route this process's textworld PDDL engine through the memos (call once per worker)."""
    import fast_downward
    import textworld.envs.pddl.logic as pddl_logic
    import textworld.envs.pddl.textgen as textgen

    if isinstance(pddl_logic.fast_downward, _DownwardWithMemo):
        raise RuntimeError("the textworld memos are already installed in this process")
    translation = TranslationMemo(disk_dir)
    grammar = GrammarParseMemo(textgen._parse_and_convert)
    query = QueryParseMemo(textgen.Rule.parse_conjunctive_query)
    pddl_logic.fast_downward = _DownwardWithMemo(fast_downward, translation)
    textgen._parse_and_convert = grammar
    textgen.Rule = query  # textgen reads only Rule.parse_conjunctive_query
    textgen.copy_context = light_copy_context
    textgen.Symbol.copy = light_symbol_copy
    log.info("memoising PDDL translation (disk cache: %s), grammar and query parsing", translation.disk_dir)
    return translation, grammar, query
