"""One registry for every kind of plugin (environments, policies, routers), with one rule for all of them.

Each kind is a :class:`Registry` over an entry-point group (``harness.envs``, ``harness.policies``,
``harness.routers``). The rule:

* **Where entries come from.** Every entry is an entry point ``name = "module:attr"`` of the kind's group.
  The project's own built-ins are declared in ``pyproject.toml`` like any plugin and also in a table in
  code (checked equal to ``pyproject.toml`` by the tests); the table stands in for this project's
  installed metadata, so a checkout whose metadata is stale (not reinstalled since a built-in was added)
  still finds every built-in. Other distributions' entry points are the plugins.
* **Name clashes.** A name belongs to its first claim: built-ins first, then plugins in order of
  distribution name. A later claim to a taken name is refused: it is not loaded, a warning is logged and
  listings show it with the clash as its error. So a plugin adds names; it never replaces a built-in or
  another plugin, silently or otherwise.
* **Broken plugins.** An entry point that fails to import, names an object of the wrong type, or an object
  whose own name differs from the entry point's, is kept as a broken entry. The other entries are not
  affected; listings show it with its error; looking it up raises :class:`RegistryLookupError` naming the
  plugin, its entry point and the original exception (chained as ``__cause__``).
* **Unknown names** raise :class:`RegistryLookupError` too, listing the installed names.

Loading is lazy, as in inspect_ai's registry: discovery reads metadata only, and an entry's module is
imported when the entry is first looked up or listed. Standard library only (this is ``foundation``).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Generic, Self, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

#: the distribution whose entry points the built-in tables stand in for
PROJECT_DISTRIBUTION = "prism-harness"
BUILTIN = "built-in"


def _normalized(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One claim to a name: where it points, who declared it, and what it loaded to (or why it did not)."""

    name: str
    source: str  # the entry point's "module:attr"
    origin: str  # "built-in", or the plugin's "distribution version"
    value: T | None = None
    error: str = ""  # empty when the entry loaded and passed the checks
    cause: BaseException | None = field(default=None, compare=False, repr=False)

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def declaration(self) -> str:
        """The entry point as written in a pyproject.toml, for error messages."""
        return f"{self.name} = {self.source!r}"


class RegistryLookupError(LookupError):
    """Looking a name up failed: no such name (``entry`` is None), or the plugin claiming it is broken."""

    def __init__(self, message: str, kind: str = "", name: str = "", entry: Entry | None = None) -> None:
        super().__init__(message, kind, name)  # picklable (e.g. raised in a Ray actor): args rebuild it
        self.kind, self.name, self.entry = kind, name, entry

    def __str__(self) -> str:
        return str(self.args[0])

    @classmethod
    def unknown(cls, kind: str, name: str, installed: list[str]) -> Self:
        return cls(f"unknown {kind} {name!r}; installed: {', '.join(installed) or 'none'}", kind, name)

    @classmethod
    def broken(cls, kind: str, group: str, entry: Entry) -> Self:
        return cls(f"{kind} {entry.name!r} is a broken plugin ({entry.origin}, entry point {entry.declaration} "
                   f"in group {group!r}): {entry.error}", kind, entry.name, entry)


class Registry(Generic[T]):
    """The installed entries of one kind of plugin, looked up by name (see the module docstring for the rule).

    ``accepts(value)`` says whether a loaded entry point is of the kind (``expected`` describes it for
    error messages); ``name_of(value)``, when given, is the name the object gives itself, which must be its
    entry point's name. ``error`` is the exception type lookups raise (a kind's own subclass, so that
    callers can catch one kind's failures).
    """

    def __init__(self, kind: str, group: str, builtins: Mapping[str, str], accepts: Callable[[object], bool],
                 expected: str, name_of: Callable[[T], str] | None = None,
                 error: type[RegistryLookupError] = RegistryLookupError) -> None:
        self.kind, self.group, self.builtins = kind, group, dict(builtins)
        self.accepts, self.expected, self.name_of, self.error = accepts, expected, name_of, error
        self._lock = threading.RLock()
        self._claims: dict[str, Entry[T]] | None = None
        self._refused: list[Entry[T]] = []
        self._loaded: dict[str, Entry[T]] = {}

    def names(self) -> list[str]:
        """Every claimed name (broken plugins included), built-ins first; loads nothing."""
        return list(self._discover())

    def get(self, name: str) -> T:
        """The object registered as ``name``; :class:`RegistryLookupError` (``self.error``) if there is none
        or its plugin is broken."""
        entry = self.entry(name)
        if not entry.ok:
            raise self.error.broken(self.kind, self.group, entry) from entry.cause
        return entry.value  # type: ignore[return-value]

    def entry(self, name: str) -> Entry[T]:
        """The loaded entry owning ``name`` (possibly broken); unknown names raise."""
        claims = self._discover()
        if name not in claims:
            raise self.error.unknown(self.kind, name, list(claims))
        return self._load(claims[name])

    def entries(self) -> list[Entry[T]]:
        """Every entry, loaded, for listings: the owners of the names, then the refused clashing claims."""
        claims = self._discover()
        return [self._load(claim) for claim in claims.values()] + list(self._refused)

    def loaded(self) -> dict[str, T]:
        """The working entries by name (broken ones are left out, not raised)."""
        loaded = (self._load(claim) for claim in self._discover().values())
        return {entry.name: entry.value for entry in loaded if entry.ok}  # type: ignore[misc]

    def refresh(self) -> None:
        """Forget what was discovered and loaded (after installing or removing a plugin in this process)."""
        with self._lock:
            self._claims, self._refused, self._loaded = None, [], {}

    def _discover(self) -> dict[str, Entry[T]]:
        with self._lock:
            if self._claims is None:
                self._claims, self._refused = self._claim_names()
            return self._claims

    def _claim_names(self) -> tuple[dict[str, Entry[T]], list[Entry[T]]]:
        builtins = [Entry(name, source, BUILTIN) for name, source in self.builtins.items()]
        plugins = []
        for ep in entry_points(group=self.group):
            dist = ep.dist
            if dist is not None and _normalized(dist.name) == _normalized(PROJECT_DISTRIBUTION):
                continue  # our own metadata: the built-in table stands in for it, stale or not
            origin = f"{dist.name} {dist.version}" if dist is not None else "unknown distribution"
            plugins.append(Entry(ep.name, ep.value, origin))
        plugins.sort(key=lambda e: (_normalized(e.origin), e.name, e.source))
        owners: dict[str, Entry[T]] = {}
        refused: list[Entry[T]] = []
        for claim in builtins + plugins:
            owner = owners.get(claim.name)
            if owner is None:
                owners[claim.name] = claim
            elif (owner.source, owner.origin) != (claim.source, claim.origin):
                error = (f"the name {claim.name!r} is taken by {owner.source} ({owner.origin}); "
                         f"a plugin cannot replace it, so this entry point is ignored")
                log.warning("%s %s (%s): %s", self.kind, claim.declaration, claim.origin, error)
                refused.append(Entry(claim.name, claim.source, claim.origin, error=error))
        return owners, refused

    def _load(self, claim: Entry[T]) -> Entry[T]:
        with self._lock:
            if claim.name not in self._loaded:
                self._loaded[claim.name] = self._check(claim)
            return self._loaded[claim.name]

    def _check(self, claim: Entry[T]) -> Entry[T]:
        try:
            value = EntryPoint(claim.name, claim.source, self.group).load()
        except Exception as exc:  # any import-time failure of a plugin must not take the others down
            log.warning("%s %s (%s) failed to load: %s: %s", self.kind, claim.declaration, claim.origin,
                        type(exc).__name__, exc)
            return Entry(claim.name, claim.source, claim.origin,
                         error=f"failed to load: {type(exc).__name__}: {exc}", cause=exc)
        if not self.accepts(value):
            error = f"{claim.source} is {type(value).__name__} {value!r:.80}, not {self.expected}"
        elif self.name_of is not None and self.name_of(value) != claim.name:
            error = f"{claim.source} calls itself {self.name_of(value)!r}, not {claim.name!r} as its entry point"
        else:
            return Entry(claim.name, claim.source, claim.origin, value=value)
        log.warning("%s %s (%s) is broken: %s", self.kind, claim.declaration, claim.origin, error)
        return Entry(claim.name, claim.source, claim.origin, error=error)
