"""Plugin distributions written into a directory: the modules plus a ``.dist-info`` with their entry points.

``importlib.metadata`` finds such a directory like any installed distribution once it is on the path, so
tests see real entry points (in-process with :func:`on_path`, or in a subprocess with
:func:`subprocess_env`) without pip-installing anything into the shared virtualenv.
"""

from __future__ import annotations

import importlib
import os
import sys
import textwrap
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def write_plugin(root: Path, distribution: str, files: Mapping[str, str],
                 entry_points: Mapping[str, Mapping[str, str]], version: str = "0.0.1") -> Path:
    """Write ``files`` (relative path -> source, dedented) and the distribution's metadata under ``root``.

    ``entry_points`` maps a group (e.g. ``harness.routers``) to ``{name: "module:attr"}``. Returns ``root``.
    """
    root.mkdir(parents=True, exist_ok=True)
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    info = root / f"{distribution.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n")
    lines = []
    for group, declared in entry_points.items():
        lines += [f"[{group}]", *(f"{name} = {target}" for name, target in declared.items()), ""]
    (info / "entry_points.txt").write_text("\n".join(lines))
    return root


@contextmanager
def on_path(root: Path) -> Iterator[None]:
    """Make the plugins under ``root`` importable and discoverable in this process for the block."""
    sys.path.insert(0, str(root))
    importlib.invalidate_caches()
    try:
        yield
    finally:
        sys.path.remove(str(root))
        importlib.invalidate_caches()


def subprocess_env(root: Path) -> dict[str, str]:
    """Environment variables for a subprocess (e.g. the ``harness`` CLI) that sees the plugins under ``root``."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(REPO)])}
