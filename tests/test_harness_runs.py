"""Run identity: what a fingerprint holds (config and code revision), what may change on a resume, and
what run.json records of each attempt."""

from __future__ import annotations

import json
import re

import pytest

from harness.config import EvalConfig, validate_config
from harness.runs import (
    NOT_IDENTITY,
    RunDirError,
    code_revision,
    config_fingerprint,
    open_run,
    record_invocation,
    source_hash,
)

CONFIG = {
    "name": "identity",
    "envs": [{"name": "webshop", "train_split": "train", "train_tasks": 4, "eval_splits": ["test"]}],
    "strategies": ["sft-only"],
    "seeds": [0],
}


def test_settings_that_cannot_change_results_do_not_block_a_resume(tmp_path):
    assert set(NOT_IDENTITY) <= set(EvalConfig.model_fields)
    run = open_run(validate_config(CONFIG), tmp_path / "run")
    relaxed = {**CONFIG, "name": "renamed", "output_dir": str(tmp_path / "elsewhere"), "torch_threads": 7,
               "rollout_concurrency": 3}
    assert open_run(validate_config(relaxed), tmp_path / "run").root == run.root
    with pytest.raises(RunDirError, match="different configuration"):
        open_run(validate_config({**CONFIG, "seeds": [1]}), tmp_path / "run")


def test_the_fingerprint_carries_the_code_revision_and_other_code_is_refused_by_name(tmp_path):
    config = validate_config(CONFIG)
    assert config_fingerprint(config, "git:" + "0" * 40) != config_fingerprint(config) == config_fingerprint(
        config, code_revision())
    run = open_run(config, tmp_path / "run")
    manifest = json.loads(run.manifest_path.read_text())
    assert manifest["environment"]["code_revision"] == code_revision()
    # the same config, made by other code: rewrite the manifest as that code would have written it
    manifest["environment"]["code_revision"] = "git:" + "0" * 40
    manifest["config"]["fingerprint"] = config_fingerprint(config, "git:" + "0" * 40)
    run.manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(RunDirError, match=r"made by other code \(revision git:0{40}; this checkout is "):
        open_run(config, tmp_path / "run")
    assert open_run(config, tmp_path / "run", fresh=True).manifest().environment["code_revision"] == code_revision()


def test_code_revision_is_a_commit_in_a_checkout_and_the_source_hash_follows_every_file(tmp_path):
    assert re.fullmatch(r"git:[0-9a-f]{40}(\+[0-9a-f]{12})?", code_revision())  # this repository is a checkout
    package = tmp_path / "pkg"
    (package / "__pycache__").mkdir(parents=True)
    (package / "a.py").write_text("x = 1\n")
    first = source_hash(tmp_path, ["pkg"])
    (package / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"compiled")
    assert source_hash(tmp_path, ["pkg"]) == first  # caches are not code
    (package / "template.html").write_text("<p>")
    second = source_hash(tmp_path, ["pkg"])
    (package / "a.py").write_text("x = 2\n")
    assert len({first, second, source_hash(tmp_path, ["pkg"])}) == 3


def test_run_json_records_each_attempt_and_its_ray_cluster(tmp_path):
    config = validate_config(CONFIG)
    run = open_run(config, tmp_path / "run")
    record_invocation(run, None)
    record_invocation(open_run(config, tmp_path / "run"), {"address": "10.0.0.1:6379", "workers": 4, "nodes": 2})
    attempts = run.manifest().environment["invocations"]
    assert [a["ray"] for a in attempts] == [None, {"address": "10.0.0.1:6379", "workers": 4, "nodes": 2}]
    assert all(a["hostname"] and a["started_at"] > 0 for a in attempts)
