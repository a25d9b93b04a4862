"""A third environment, installed from outside the project, runs through `harness eval` with no edit here.

The plugin is a real (if small) game: find a hidden number from 1 to 8, told "too low" or "too high",
with two splits of tasks, a bisecting scripted expert, its own success rule, prompt and scoring. It is
written as a distribution into a temporary directory (``tests.helpers.plugins``: the module and a
``.dist-info`` declaring its ``harness.envs`` entry point) and reaches the harness only through
``PYTHONPATH``: nothing is installed and nothing in the project changes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from foundation.records import RunDir
from tests.helpers.eval_configs import TINY
from tests.helpers.plugins import subprocess_env, write_plugin

REPO = Path(__file__).resolve().parents[1]

PLUGIN = '''
"""Number guessing, as a harness environment plugin: everything the harness needs is in SPEC."""

from __future__ import annotations

import re

from environments.core.engine import InvalidOptionsError, SessionStateError, StepOutcome
from environments.core.gym_env import TextGymEnv, text_space
from environments.core.prompt import EnvPrompt
from environments.core.spec import EnvSpec, Task
from foundation.scoring import SCORE, SUCCESS, Scoring

SIZE = 8
SPLITS = {"train": range(0, 24), "test": range(24, 32)}
ACTION = re.compile(r"guess\\[(\\d+)\\]")


def target(index: int) -> int:
    return (index * 5 + index // SIZE) % SIZE + 1


class GuessSession:
    def __init__(self) -> None:
        self.target, self.done, self.last = 0, True, ""

    def available_actions(self) -> list[str]:
        return [f"guess[{k}]" for k in range(1, SIZE + 1)]

    def observation(self) -> str:
        return self.last

    def reset(self, options=None):
        index = dict(options or {}).get("index")
        if not isinstance(index, int) or not 0 <= index < 32:
            raise InvalidOptionsError(f"reset needs an index from 0 to 31, got {index!r}")
        self.target, self.done = target(index), False
        self.last = f"I am thinking of a number from 1 to {SIZE}. Guess it."
        return self.last, {"available_actions": self.available_actions(), "task": f"find my number (1-{SIZE})"}

    def step(self, action: str) -> StepOutcome:
        if self.done:
            raise SessionStateError("reset first")
        found = ACTION.fullmatch(action.strip().lower())
        info = {"available_actions": self.available_actions(), "action_valid": found is not None, "won": False}
        if found is None:
            self.last = "Nothing happens."
        elif int(found.group(1)) == self.target:
            self.done, self.last = True, "Correct!"
            return StepOutcome(self.last, 1.0, True, {**info, "won": True})
        else:
            self.last = f"{found.group(1)} is too {'low' if int(found.group(1)) < self.target else 'high'}."
        return StepOutcome(self.last, 0.0, False, info)

    def close(self) -> None:
        self.done = True


class GuessFactory:
    def new_session(self) -> GuessSession:
        return GuessSession()

    def describe(self) -> dict:
        return {"numbers": SIZE}

    def close(self) -> None:
        pass


class GuessEnv(TextGymEnv):
    def __init__(self, server_url=None, max_steps: int = 6, render_mode=None, *, session=None) -> None:
        super().__init__(session or GuessSession(), max_steps, text_space(), render_mode=render_mode)


class BisectExpert:
    """Halves the interval after every answer: at most four guesses."""

    def begin(self, info) -> None:
        self.low, self.high, self.guess = 1, SIZE, None

    def act(self, observation: str, info):
        if self.guess is not None:
            if "too low" in observation:
                self.low = self.guess + 1
            elif "too high" in observation:
                self.high = self.guess - 1
        self.guess = (self.low + self.high) // 2
        return f"guess[{self.guess}]"


def normalize(candidate: str, available):
    found = ACTION.search(candidate.lower())
    return (found.group(0), None) if found else (None, f"no guess[N] in {candidate[:40]!r}")


PROMPT = EnvPrompt(
    react_instructions="Find the hidden number. Answer with one action, guess[N].\\nThought: ...\\nAction: guess[N]",
    verl_intro="You are playing a number guessing game.",
    list_actions=lambda available: list(available or []),
    concrete_actions=lambda available, task: list(available or []),
    normalize=normalize,
    example=(("I am thinking of a number from 1 to 8. Guess it.", "I start in the middle.", "guess[4]"),),
    syntax=ACTION,
)

SPEC = EnvSpec(
    name="guess",
    gym_id="plugin/Guess-v0",
    description="find a hidden number from 1 to 8, told too low or too high",
    make_factory=lambda **options: GuessFactory(),
    default_max_steps=6,
    gym_entry_point="prism_test_guess:GuessEnv",
    splits=tuple(SPLITS),
    tasks=lambda split: [Task(f"n{i}", {"index": i}, split) for i in SPLITS[split]],
    default_eval_split="test",
    task_text=lambda observation, info: str(info["task"]),
    success=lambda reward, info: bool(info.get("won")),
    prompt=PROMPT,
    scoring=Scoring("Number guessing", (SUCCESS, SCORE), breakdown="success", plotted=("success",)),
    make_expert=lambda **options: BisectExpert(),
)
'''


@pytest.fixture
def plugin_path(tmp_path: Path) -> Path:
    return write_plugin(tmp_path / "site", "prism-test-guess", {"prism_test_guess.py": PLUGIN},
                        {"harness.envs": {"guess": "prism_test_guess:SPEC"}})


def _run(args: list[str], plugin: Path, timeout: int) -> subprocess.CompletedProcess[str]:
    env = {**subprocess_env(plugin), "COLUMNS": "160"}
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def test_the_plugin_gets_its_gym_id_with_its_step_cap(plugin_path: Path) -> None:
    done = _run(["-c", "import environments, gymnasium; spec = gymnasium.spec('plugin/Guess-v0'); "
                 "print(spec.entry_point, spec.max_episode_steps)"], plugin_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["prism_test_guess:GuessEnv", "6"]


def test_a_third_environment_runs_through_harness_eval(plugin_path: Path, tmp_path: Path) -> None:
    config = {**TINY, "name": "plugin-env", "strategies": ["sft-only", "rl-only"],
              "envs": [{"name": "guess", "train_split": "train", "train_tasks": 4, "eval_splits": ["test"],
                        "eval_episodes": 4, "max_steps": 4}]}
    path = tmp_path / "guess.yaml"
    path.write_text(yaml.safe_dump(config))
    done = _run(["-m", "harness.cli", "eval", "--config", str(path), "--run-dir", str(tmp_path / "run")],
                plugin_path, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    run = RunDir(tmp_path / "run")
    assert {(s.cell_id, s.state) for s in run.cells()} == {
        (f"guess__{strategy}__seed0", "done") for strategy in ("untrained", "sft-only", "rl-only")}
    expert = [json.loads(line) for line in (run.shared_dir("guess", 0) / "expert.jsonl").read_text().splitlines()]
    assert len(expert) == 4 and all(t["success"] and len(t["steps"]) <= 4 for t in expert)  # the bisecting expert
    for status in run.cells():
        episodes = run.episodes(status.cell_id)
        assert sorted(e.task_id for e in episodes) == ["n24", "n25", "n26", "n27"]
        assert all(e.success == (e.reward == 1.0) for e in episodes)
    assert run.manifest().scoring["guess"]["title"] == "Number guessing"  # recorded from the plugin's spec
    report = (tmp_path / "run" / "report" / "leaderboard.md").read_text()
    section = report.split("## Number guessing", 1)[1]
    assert all(strategy in section for strategy in ("untrained", "sft-only", "rl-only"))


@pytest.mark.parametrize("name", ["webshop", "alfworld"])
def test_a_builtin_spec_declares_the_whole_contract(name: str) -> None:
    import gymnasium

    from environments.core.registry import get_env_spec
    from foundation.scoring import Scoring

    spec = get_env_spec(name)
    registered = gymnasium.spec(spec.gym_id)
    assert (registered.entry_point, registered.max_episode_steps) == (spec.gym_entry_point, spec.default_max_steps)
    assert spec.default_eval_split in spec.splits and spec.prompt is not None and spec.tasks is not None
    assert Scoring.from_json(json.loads(json.dumps(spec.report_scoring.to_json()))) == spec.report_scoring
