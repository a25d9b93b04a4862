"""The one plugin registry (foundation.registry) and its rule, the same for environments, policies and routers:
where built-ins and plugins come from, name clashes, broken plugins, unknown names, and the list commands.

Plugins are real distributions (a module and a ``.dist-info`` with entry points) written into a temporary
directory and put on the path, so importlib.metadata finds them as it finds installed ones.
"""

from __future__ import annotations

import importlib
import json
import pickle
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.helpers.eval_configs import TINY
from tests.helpers.plugins import on_path, subprocess_env, write_plugin

REPO = Path(__file__).resolve().parents[1]
HARNESS = [sys.executable, "-m", "harness.cli"]

OBJECTS = '''
    from agents.policy_spec import PolicySpec
    from prism_train.routers import Router

    NOT_A_PLUGIN = "just a string"
    MISNAMED_POLICY = PolicySpec("someone-else", "a policy that calls itself by another name", lambda: None)

    class MisnamedRouter(Router):
        name = "someone-else"

        def route(self, request):
            raise NotImplementedError
'''
BROKEN_IMPORT = 'raise RuntimeError("boom: a dependency of this plugin is missing")\n'


@dataclass(frozen=True)
class Kind:
    """One kind of plugin: its registry module, a built-in name, and the command that lists it."""

    module: str
    group: str
    builtin: str
    lookup: str  # the public lookup function other code calls
    error: str  # its error class
    command: tuple[str, ...]
    label: str  # the kind's name in messages

    def registry(self):
        return importlib.import_module(self.module).REGISTRY

    def get(self, name: str):
        return getattr(importlib.import_module(self.module), self.lookup)(name)

    def error_class(self) -> type[Exception]:
        return getattr(importlib.import_module(self.module), self.error)


KINDS = {
    "envs": Kind("environments.core.registry", "harness.envs", "webshop", "get_env_spec", "UnknownEnvError",
                 ("env", "list"), "environment"),
    "policies": Kind("agents.registry", "harness.policies", "random", "get_policy_spec", "UnknownPolicyError",
                     ("models", "policies"), "policy"),
    "routers": Kind("prism_train.routers", "harness.routers", "random", "get_router", "UnknownRouterError",
                    ("routers", "list"), "router"),
}
BUILTIN_TABLES = {"envs": ("environments.core.registry", "BUILTIN_ENVS"),
                  "policies": ("agents.registry", "BUILTIN_POLICIES"),
                  "routers": ("prism_train.routers", "BUILTIN_ROUTERS")}


def _write_plugins(root: Path) -> Path:
    """Three plugin distributions: one with a broken entry of every sort per kind, one that claims every
    kind's built-in name, and a pair that claim the same new name."""
    files = {"prism_test_objects.py": OBJECTS, "prism_test_broken_import.py": BROKEN_IMPORT}
    broken = {kind.group: {f"broken-{key}": "prism_test_broken_import:PLUGIN",
                           f"wrong-{key}": "prism_test_objects:NOT_A_PLUGIN"} for key, kind in KINDS.items()}
    broken["harness.policies"]["misnamed-policies"] = "prism_test_objects:MISNAMED_POLICY"
    broken["harness.routers"]["misnamed-routers"] = "prism_test_objects:MisnamedRouter"
    write_plugin(root, "prism-test-broken", files, broken)
    write_plugin(root, "prism-test-clash", {}, {k.group: {k.builtin: "prism_test_objects:NOT_A_PLUGIN"}
                                                for k in KINDS.values()})
    for distribution in ("prism-test-b", "prism-test-a"):
        write_plugin(root, distribution, {}, {k.group: {"shared-name": f"{distribution.replace('-', '_')}:X"}
                                              for k in KINDS.values()})
    return root


@pytest.fixture(scope="module")
def plugins(tmp_path_factory):
    return _write_plugins(tmp_path_factory.mktemp("plugins"))


@pytest.fixture
def installed(plugins):
    """The plugins on the path of this process, every registry rediscovering them (and forgetting them after)."""
    registries = [kind.registry() for kind in KINDS.values()]
    with on_path(plugins):
        for registry in registries:
            registry.refresh()
        yield plugins
    for registry in registries:
        registry.refresh()


@pytest.mark.parametrize("key", list(KINDS))
def test_pyproject_declares_the_builtins_exactly(key):
    """The built-in tables stand in for our own installed metadata, so they must be what pyproject.toml declares."""
    module, table = BUILTIN_TABLES[key]
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"].get("entry-points", {})
    assert declared.get(KINDS[key].group) == getattr(importlib.import_module(module), table), \
        f'pyproject.toml must declare [project.entry-points."{KINDS[key].group}"] with exactly the built-ins'


@pytest.mark.parametrize("key", list(KINDS))
def test_a_broken_plugin_is_listed_and_named_on_lookup_without_taking_the_others_down(installed, key):
    kind = KINDS[key]
    entries = {(e.name, e.origin): e for e in kind.registry().entries()}
    broken = entries[(f"broken-{key}", "prism-test-broken 0.0.1")]
    assert not broken.ok and broken.error == "failed to load: RuntimeError: boom: a dependency of this plugin " \
                                             "is missing"
    assert "not a" in entries[(f"wrong-{key}", "prism-test-broken 0.0.1")].error
    with pytest.raises(kind.error_class()) as raised:
        kind.get(f"broken-{key}")
    message = str(raised.value)
    assert message.startswith(f"{kind.label} 'broken-{key}' is a broken plugin (prism-test-broken 0.0.1, "
                              f"entry point broken-{key} = 'prism_test_broken_import:PLUGIN' in group "
                              f"'{kind.group}')")
    assert "RuntimeError: boom" in message and "unknown" not in message
    assert isinstance(raised.value.__cause__, RuntimeError)
    with pytest.raises(kind.error_class(), match=f"wrong-{key}.*is str 'just a string', not a"):
        kind.get(f"wrong-{key}")
    assert kind.get(kind.builtin)  # the built-ins still load
    assert all(e.ok for e in kind.registry().entries() if e.origin == "built-in")


@pytest.mark.parametrize("key", ["policies", "routers"])
def test_an_object_that_calls_itself_by_another_name_is_broken(installed, key):
    kind = KINDS[key]
    with pytest.raises(kind.error_class(), match="calls itself 'someone-else', not 'misnamed-"):
        kind.get(f"misnamed-{key}")


@pytest.mark.parametrize("key", list(KINDS))
def test_a_taken_name_stays_with_its_first_claim(installed, key):
    """Built-ins first, then plugins by distribution name; a later claim is refused and listed, not loaded."""
    kind = KINDS[key]
    registry = kind.registry()
    owner = registry.entry(kind.builtin)
    assert owner.ok and owner.origin == "built-in"
    refused = {(e.name, e.origin): e for e in registry.entries() if e.error.startswith("the name")}
    clash = refused[(kind.builtin, "prism-test-clash 0.0.1")]
    assert f"is taken by {owner.source} (built-in)" in clash.error and clash.value is None
    shared = registry.entry("shared-name")
    assert (shared.origin, shared.source) == ("prism-test-a 0.0.1", "prism_test_a:X")
    assert "is taken by prism_test_a:X (prism-test-a 0.0.1)" in refused[("shared-name", "prism-test-b 0.0.1")].error
    assert registry.names().count("shared-name") == 1


@pytest.mark.parametrize("key", list(KINDS))
def test_unknown_names_get_one_message_listing_what_is_installed(installed, key):
    kind = KINDS[key]
    with pytest.raises(kind.error_class()) as raised:
        kind.get("no-such-thing")
    installed_names = ", ".join(kind.registry().names())
    assert str(raised.value) == f"unknown {kind.label} 'no-such-thing'; installed: {installed_names}"
    copy = pickle.loads(pickle.dumps(raised.value))  # crosses process boundaries (Ray actors, workers) intact
    assert (type(copy), str(copy), copy.name) == (type(raised.value), str(raised.value), "no-such-thing")
    assert kind.builtin in installed_names and f"broken-{key}" in installed_names


def test_stale_project_metadata_neither_hides_a_builtin_nor_adds_a_removed_one(tmp_path):
    """Our own distribution's installed entry points are replaced by the built-in tables: a checkout installed
    before a built-in was added (or after one was removed) still sees exactly the built-ins."""
    from prism_train.routers import BUILTIN_ROUTERS, REGISTRY

    write_plugin(tmp_path, "prism-harness", {}, {"harness.routers": {"removed-long-ago": "prism_train.gone:Old"}})
    with on_path(tmp_path):
        REGISTRY.refresh()
        try:
            assert REGISTRY.names() == list(BUILTIN_ROUTERS)
        finally:
            REGISTRY.refresh()


@pytest.mark.parametrize("key", list(KINDS))
def test_the_list_command_shows_a_broken_plugin_with_its_error(plugins, key):
    kind = KINDS[key]
    env = {**subprocess_env(plugins), "COLUMNS": "250"}
    listed = subprocess.run([*HARNESS, *kind.command, "--json"], capture_output=True, text=True, env=env,
                            cwd=plugins, check=True, timeout=120)
    records = {(r["name"], r["origin"]): r for r in json.loads(listed.stdout)}
    assert records[(kind.builtin, "built-in")]["error"] == "" and records[(kind.builtin, "built-in")]["description"]
    broken = records[(f"broken-{key}", "prism-test-broken 0.0.1")]
    assert broken["source"] == "prism_test_broken_import:PLUGIN" and "RuntimeError: boom" in broken["error"]
    assert "is taken by" in records[(kind.builtin, "prism-test-clash 0.0.1")]["error"]
    table = subprocess.run([*HARNESS, *kind.command], capture_output=True, text=True, env=env, cwd=plugins,
                           check=True, timeout=120).stdout
    assert f"broken-{key}" in table and "broken:" in table and "RuntimeError:" in table


def test_an_eval_naming_a_broken_router_is_refused_at_planning(plugins, tmp_path):
    config = tmp_path / "broken.yaml"
    config.write_text(yaml.safe_dump({**TINY, "strategies": ["sft-only", "broken-routers"]}))
    done = subprocess.run([*HARNESS, "eval", "--config", str(config), "--dry-run"], capture_output=True, text=True,
                          env=subprocess_env(plugins), cwd=tmp_path, timeout=300)
    output = " ".join((done.stdout + done.stderr).split())  # the console wraps long lines
    assert done.returncode == 2, output
    assert "router 'broken-routers' is a broken plugin (prism-test-broken 0.0.1" in output
    assert "RuntimeError: boom" in output
