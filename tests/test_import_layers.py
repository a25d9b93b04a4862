"""The import architecture: layers and cycles (import-linter, contracts in pyproject.toml) and the rule
for function-local imports (only to defer something heavy; see docs/architecture.md)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
PACKAGES = tuple(PYPROJECT["tool"]["importlinter"]["root_packages"])

# Third-party packages that are slow to import, need a GPU stack or are optional extras: the only
# reason a function may import something itself (so that the CLI, listings and the leaderboard load
# without them). Everything else is imported at the top of the module, in dependency order.
HEAVY = frozenset({"torch", "transformers", "peft", "tokenizers", "gguf", "vllm", "ray", "spacy", "textworld",
                   "alfworld", "fast_downward", "matplotlib", "playwright"})


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for package in PACKAGES for p in sorted((REPO / package).rglob("*.py"))}


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imported_names(node: ast.Import | ast.ImportFrom) -> list[str]:
    """Every module the statement may load: ``from a.b import c`` loads ``a.b`` and maybe ``a.b.c``."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    return [base] + [f"{base}.{alias.name}" for alias in node.names]


def _imports(tree: ast.Module) -> tuple[list[ast.Import | ast.ImportFrom], list[ast.Import | ast.ImportFrom]]:
    """(imports run when the module loads, imports inside functions); TYPE_CHECKING blocks are neither."""
    top: list[ast.Import | ast.ImportFrom] = []
    local: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        if _is_type_checking(node):
            return
        if isinstance(node, ast.Import | ast.ImportFrom) and not getattr(node, "level", 0):
            (local if in_function else top).append(node)
        for child in ast.iter_child_nodes(node):
            visit(child, in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda))

    visit(tree, False)
    return top, local


# The CLI's modules: a command imports its implementation when it runs, so that `harness --help` and
# each command load only what that command needs (not gymnasium, flask, pydantic... for every call).
CLI_MODULES = ("harness.cli", "harness.commands")


def _plugin_modules() -> set[str]:
    """Modules our entry points name: a plugin declaration may defer its implementation, so that listing
    the plugins (``harness env list``, ``harness models policies``) never loads every engine and backend."""
    groups = PYPROJECT["project"]["entry-points"].values()
    return {target.split(":")[0] for group in groups for target in group.values()}


def _heavy_modules(modules: dict[str, Path]) -> set[str]:
    """Our modules that load a heavy package when imported (directly or through our other modules)."""
    loads: dict[str, set[str]] = {}
    for name, path in modules.items():
        top, _ = _imports(ast.parse(path.read_text(encoding="utf-8")))
        targets = {n for node in top for n in _imported_names(node)}
        parents = {".".join(name.split(".")[:k]) for k in range(1, name.count(".") + 1)}
        loads[name] = {t for t in targets | parents if t in modules or t.split(".")[0] in HEAVY}
    heavy = {name for name, targets in loads.items() if any(t.split(".")[0] in HEAVY for t in targets)}
    changed = True
    while changed:
        grown = {name for name, targets in loads.items() if targets & heavy} - heavy
        heavy |= grown
        changed = bool(grown)
    return heavy


def test_layer_and_cycle_contracts_hold():
    """lint-imports checks pyproject's contracts: no upward import between the packages, and no cycle
    between the modules of a package (function-local imports count: they only hide a cycle)."""
    result = subprocess.run([str(Path(sys.executable).parent / "lint-imports")], cwd=REPO, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_every_installed_package_has_a_layer():
    """A new top-level package must be placed in the layers, or nothing would check its imports."""
    installed = {p.rstrip("*") for p in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]}
    layers = next(c for c in PYPROJECT["tool"]["importlinter"]["contracts"] if c["type"] == "layers")["layers"]
    assert installed == set(PACKAGES) == set(layers)


def test_the_container_images_carry_every_installed_package():
    """The images install the project from the packages the Containerfile copies: one left out is an image
    whose server dies at start with ModuleNotFoundError."""
    copied = set(re.findall(r"^COPY (\w+) /src/\1$", (REPO / "containers" / "Containerfile").read_text(), re.M))
    in_context = set(re.findall(r"^!(\w+)/$", (REPO / ".dockerignore").read_text(), re.M))
    assert copied == in_context == set(PACKAGES)


def test_foundation_needs_only_the_standard_library():
    """The floor must import on any machine: standard library and itself, nothing else."""
    modules = _modules()
    outside = []
    for name, path in modules.items():
        if name.split(".")[0] != "foundation":
            continue
        top, local = _imports(ast.parse(path.read_text(encoding="utf-8")))
        for node in top + local:
            root = _imported_names(node)[0].split(".")[0]
            if root not in sys.stdlib_module_names and root not in {"foundation", "__future__"}:
                outside.append(f"{path.relative_to(REPO)}:{node.lineno} imports {root}")
    assert not outside, outside


def _deferrable(node: ast.Import | ast.ImportFrom, module: str, heavy: set[str], plugins: set[str]) -> bool:
    names = _imported_names(node)
    if any(n.split(".")[0] in HEAVY or n in heavy for n in names):
        return True
    deferring_module = module in plugins or module.startswith(CLI_MODULES)
    return deferring_module and names[0].split(".")[0] not in sys.stdlib_module_names


def test_function_local_imports_only_defer_heavy_dependencies():
    """A function may import something itself only to defer a heavy package (torch, vLLM, Ray, spaCy, ...),
    a plugin's implementation (in the module its entry point names) or a CLI command's implementation;
    every other import belongs at the top of its module. Deferred imports cannot hide a cycle: the
    acyclic contract counts them too."""
    modules = _modules()
    heavy = _heavy_modules(modules)
    plugins = _plugin_modules()
    misplaced = []
    for name, path in modules.items():
        _, local = _imports(ast.parse(path.read_text(encoding="utf-8")))
        for node in local:
            if not _deferrable(node, name, heavy, plugins):
                misplaced.append(f"{path.relative_to(REPO)}:{node.lineno} {ast.unparse(node)}")
    assert not misplaced, "imports to move to the top of their module:\n" + "\n".join(misplaced)
