"""Routing strategies: the built-ins' splits, determinism, validation, and third-party plugins."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest

from tests.helpers.plugins import subprocess_env, write_plugin
from tests.helpers.trajectories import short_prompt, short_trajectories, webshop_expert_trajectories

HARNESS = [sys.executable, "-m", "harness.cli"]


def _score(trajectory, norms, loss=1.0):
    from prism_train.scores import ProbeScore

    return ProbeScore.build(id=trajectory.id, env=trajectory.env, task_id=trajectory.task_id, loss=loss,
                            action_tokens=10, matrices=[f"0.m{i}" for i in range(len(norms))],
                            numels=[16] * len(norms), norms=norms)


@pytest.fixture(scope="module")
def probed(tiny_model_dir):
    """Real probe scores of the tiny model on the short demonstrations."""
    from prism_train.formatting import TrajectoryTokenizer
    from prism_train.modeling import load_causal_lm, load_tokenizer
    from prism_train.probe import ProbeConfig, probe

    trajectories = list(short_trajectories())
    tokenized = TrajectoryTokenizer(load_tokenizer(tiny_model_dir), short_prompt()).tokenize_all(trajectories)
    scores = probe(load_causal_lm(tiny_model_dir), trajectories, tokenized, ProbeConfig(precision="float32"))
    return trajectories, {s.id: s for s in scores}


def _request(trajectories, scores, seed=0, rollout=None):
    from prism_train.routers import RoutingRequest, tasks_of

    return RoutingRequest(trajectories, scores, tasks_of(trajectories), seed, rollout)


def test_every_builtin_is_registered_with_its_requirements():
    from prism_train.routers import BUILTIN_ROUTERS, describe_routers

    infos = {info.name: info for info in describe_routers()}
    assert set(BUILTIN_ROUTERS) <= set(infos)
    assert infos["prism-gini"].requires == {"scores"} and infos["difficulty"].requires == {"rollout"}
    assert infos["random"].requires == frozenset() and all(infos[n].description for n in BUILTIN_ROUTERS)


def test_prism_routers_split_at_the_median_of_real_probe_scores(probed):
    from prism_train.routers import route

    trajectories, scores = probed
    for name, statistic in (("prism-gini", "gini"), ("prism-cv", "cv"), ("prism-kurtosis", "kurtosis"),
                            ("grad-norm", "grad_norm"), ("loss", "loss")):
        decision = route(name, _request(trajectories, scores))
        value = {t.id: scores[t.id].loss if statistic == "loss" else scores[t.id].statistics[statistic]
                 for t in trajectories}
        ordered = sorted(value.values())
        median = (ordered[5] + ordered[6]) / 2
        assert {t.id for t in decision.sft} == {i for i, v in value.items() if v <= median}
        assert {t.key for t in decision.rl} == {f"webshop/{t.task_id}" for t in trajectories if value[t.id] > median}
        assert set(decision.sft_reasons.values()) == {f"{name}: {statistic} <= median {median:.6g}"}
        assert set(decision.rl_reasons.values()) == {f"{name}: {statistic} > median {median:.6g}"}
        records = decision.to_records()  # each item's own value goes with it into routing.jsonl
        assert {r["id"]: r["value"] for r in records if r["set"] == "sft"} == {t.id: value[t.id] for t in decision.sft}
    gini = route("prism-gini", _request(trajectories, scores))
    reverse = route("prism-reverse", _request(trajectories, scores))
    assert {t.id for t in reverse.sft} == {t.id for t in trajectories} - {t.id for t in gini.sft}
    reverse_cv = route("prism-reverse", _request(trajectories, scores), statistic="cv")
    assert {t.id for t in reverse_cv.sft} == ({t.id for t in trajectories}
                                              - {t.id for t in route("prism-cv", _request(trajectories, scores)).sft})


def test_whole_set_strategies_and_the_random_half(probed):
    from prism_train.routers import route

    trajectories, scores = probed
    tasks = {f"webshop/{t.task_id}" for t in trajectories}
    sft_only = route("sft-only", _request(trajectories, {}))
    assert len(sft_only.sft) == len(trajectories) and not sft_only.rl
    rl_only = route("rl-only", _request(trajectories, {}))
    assert not rl_only.sft and {t.key for t in rl_only.rl} == tasks
    both = route("sft-then-rl", _request(trajectories, {}))
    assert len(both.sft) == len(trajectories) and {t.key for t in both.rl} == tasks
    halves = [route("random", _request(trajectories, {}, seed=s)) for s in (0, 0, 1)]
    assert [t.id for t in halves[0].sft] == [t.id for t in halves[1].sft]  # same seed, same split
    assert {t.id for t in halves[0].sft} != {t.id for t in halves[2].sft}
    assert len(halves[0].sft) == 6 and len(halves[0].rl) == 6


def test_ties_split_in_halves_deterministically_per_seed():
    from prism_train.routers import route

    trajectories = list(short_trajectories())[:7]
    scores = {t.id: _score(t, [1.0, 2.0, 3.0]) for t in trajectories}  # identical scores: all tied
    first = route("prism-gini", _request(trajectories, scores, seed=3))
    again = route("prism-gini", _request(list(reversed(trajectories)), scores, seed=3))
    other = route("prism-gini", _request(trajectories, scores, seed=4))
    assert len(first.sft) == 4 and len(first.rl) == 3  # ceil(n/2) to SFT, as "<= median" does
    assert {t.id for t in first.sft} == {t.id for t in again.sft}  # input order does not matter
    assert {t.id for t in first.sft} != {t.id for t in other.sft}


def test_missing_inputs_and_bad_plugins_get_clear_errors(probed):
    from prism_train.routers import (
        RouterError,
        RoutingDecision,
        RoutingRequest,
        UnknownRouterError,
        route,
        tasks_of,
        validate_decision,
    )

    trajectories, scores = probed
    with pytest.raises(RouterError, match="needs probe scores"):
        route("prism-gini", _request(trajectories, {}))
    with pytest.raises(RouterError, match="rollout callback"):
        route("difficulty", _request(trajectories, scores))
    with pytest.raises(UnknownRouterError, match="unknown router 'prism-ginny'"):
        route("prism-ginny", _request(trajectories, scores))
    with pytest.raises(RouterError, match="does not take these options"):
        route("random", _request(trajectories, scores), k=3)
    with pytest.raises(ValueError, match="outside the task pool"):
        RoutingRequest(trajectories, scores, tasks_of(trajectories[:3]), 0)
    request = _request(trajectories, scores)
    stranger = dataclasses.replace(trajectories[0], id="webshop/test/stranger")
    with pytest.raises(RouterError, match="unknown trajectories"):
        validate_decision(RoutingDecision("x", sft=[stranger], sft_reasons={stranger.id: "?"}), request)
    with pytest.raises(RouterError, match="needs a reason"):
        validate_decision(RoutingDecision("x", sft=[trajectories[0]]), request)


def test_decisions_round_trip_through_disk(probed, tmp_path):
    from prism_train.routers import read_decision, route, write_decision

    trajectories, scores = probed
    decision = route("prism-gini", _request(trajectories, scores))
    write_decision(tmp_path / "routing.jsonl", decision)
    saved = read_decision(tmp_path / "routing.jsonl")
    assert saved.strategy == "prism-gini"
    assert saved.sft_ids == [t.id for t in decision.sft]
    assert [(t.key, t.split) for t in saved.rl_tasks] == [(t.key, t.split) for t in decision.rl]
    assert all(json.loads(line)["version"] == 1 for line in (tmp_path / "routing.jsonl").read_text().splitlines())


def test_difficulty_routes_by_the_rollouts_of_the_current_policy(tiny_model_dir, tmp_path):
    """Real rollouts in WebShop: the scripted expert solves its tasks (-> RL), the untrained tiny model
    fails every episode (-> SFT); both through the rollout engine."""
    from agents.backends.hf import TransformersBackend
    from agents.lm_policy import LMPolicy
    from agents.policy import SamplingParams
    from agents.scripted import ExpertPolicy
    from prism_train.ledger import Ledger
    from prism_train.rl import rollout_callback
    from prism_train.routers import route

    trajectories = list(webshop_expert_trajectories())[:3]
    ledger = Ledger(None, strategy="difficulty")
    expert = rollout_callback(ExpertPolicy(), "webshop", ledger=ledger, output_dir=tmp_path / "expert")
    solved = route("difficulty", _request(trajectories, {}, rollout=expert), k=2)
    assert not solved.sft and len(solved.rl) == 3
    assert all(r == "difficulty: solved 2/2" for r in solved.rl_reasons.values())
    policy = LMPolicy(TransformersBackend(tiny_model_dir), SamplingParams(max_new_tokens=8, temperature=1.0),
                      few_shot=False, history=0)
    untrained = rollout_callback(policy, "webshop", ledger=ledger, max_steps=1)
    failed = route("difficulty", _request(trajectories, {}, rollout=untrained), k=2)
    assert [t.id for t in failed.sft] == [t.id for t in trajectories] and not failed.rl
    assert [e.phase for e in ledger.entries] == ["routing", "routing"] and ledger.entries[1].env_steps == 6


LONGEST_FIRST = '''
    """A third-party router: the longer half of the demonstrations to SFT, the rest to RL."""
    from prism_train.routers import Router, RoutingDecision, median_split


    class LongestFirst(Router):
        name = "longest-first"
        description = "longer demonstrations to SFT, shorter ones' tasks to RL"

        def route(self, request):
            short, long, median = median_split(request.trajectories, lambda t: len(t.steps),
                                               lambda t: t.id, request.seed)
            rl = {request.task_for(t).key: f"{len(t.steps)} steps <= {median}" for t in short}
            return RoutingDecision(self.name, sft=long, rl=[t for t in request.tasks if t.key in rl],
                                   sft_reasons={t.id: f"{len(t.steps)} steps > {median}" for t in long},
                                   rl_reasons=rl)
'''


@pytest.fixture
def installed_plugin(tmp_path):
    """The plugin as its own distribution (module + dist-info) in a directory the CLI subprocesses see."""
    return write_plugin(tmp_path / "plugin", "prism-test-longest-first",
                        {"prism_test_longest_first.py": LONGEST_FIRST},
                        {"harness.routers": {"longest-first": "prism_test_longest_first:LongestFirst"}})


def test_a_third_party_router_is_listed_and_runs_without_touching_this_code(installed_plugin, tmp_path):
    from environments.core.trajectory import TrajectoryWriter
    from prism_train.routers import read_decision

    env = subprocess_env(installed_plugin)
    listed = subprocess.run([*HARNESS, "routers", "list", "--json"], capture_output=True, text=True, env=env,
                            cwd=tmp_path, check=True, timeout=120)
    routers = {r["name"]: r for r in json.loads(listed.stdout)}
    assert routers["longest-first"]["source"] == "prism_test_longest_first:LongestFirst"
    assert routers["longest-first"]["origin"] == "prism-test-longest-first 0.0.1"
    assert not routers["longest-first"]["error"]
    assert "prism-gini" in routers
    trajectories = list(short_trajectories())
    with TrajectoryWriter(tmp_path / "expert.jsonl") as writer:
        writer.write_all(trajectories)
    subprocess.run([*HARNESS, "routers", "run", "longest-first", "-t", str(tmp_path / "expert.jsonl"),
                    "-o", str(tmp_path / "routing.jsonl")], env=env, cwd=tmp_path, check=True, timeout=120)
    decision = read_decision(tmp_path / "routing.jsonl")
    assert decision.strategy == "longest-first"
    steps = {t.id: len(t.steps) for t in trajectories}
    rl_tasks = {t.task_id for t in decision.rl_tasks}
    assert len(decision.sft_ids) == 6 and len(rl_tasks) == 6
    assert min(steps[i] for i in decision.sft_ids) >= max(steps[t.id] for t in trajectories if t.task_id in rl_tasks)
