"""Aggregation over seeds, compute with shared phases, ratios and frontiers, checked by hand.

The expected numbers follow from the run builders in ``tests.helpers.runs`` (rewards, ledgers); each
is worked out in a comment beside it.
"""

from __future__ import annotations

import json
import math
import shutil
import statistics
from pathlib import Path

import pytest

from foundation.records import RunDir, append_jsonl
from leaderboard.aggregate import Leaderboard, Row, build
from leaderboard.load import load_run, load_runs
from leaderboard.pareto import frontier_mask, pareto_plot
from tests.helpers.runs import build_main_run, build_second_run, entry, make_config

T7, T2, T1 = 2.364624, 4.302653, 12.706205  # 95 % Student-t critical values, 7, 2 and 1 degrees of freedom


def board_of(path: Path) -> Leaderboard:
    return build([load_run(path)], compare=False)


def remove_cell(root: Path, cell: str) -> None:
    shutil.rmtree(root / "cells" / cell)


def rows(board: Leaderboard, env: str) -> dict[str, Row]:
    return {row.strategy: row for b in board.boards if b.env == env for row in b.rows}


def test_webshop_scores_and_success_over_seeds(tmp_path: Path) -> None:
    main_run = build_main_run(tmp_path / "run")
    webshop = rows(board_of(main_run), "webshop")
    # prism-gini rewards per seed: mean 0.875, 0.75, 0.8125 -> scores 87.5, 75, 81.25: mean 81.25, sd 6.25
    score = webshop["prism-gini"].values["score"]
    assert score.values == (87.5, 75.0, 81.25)
    assert score.mean == pytest.approx(81.25)
    assert score.half_width == pytest.approx(T2 * 6.25 / math.sqrt(3), rel=1e-6)
    # rl-only success (reward exactly 1): 2/4, 1/4, 3/4 -> 50, 25, 75: mean 50, sd 25
    success = webshop["rl-only"].values["success"]
    assert (success.values, success.mean) == ((50.0, 25.0, 75.0), 50.0)
    assert success.half_width == pytest.approx(T2 * 25 / math.sqrt(3), rel=1e-6)
    # random has 2 done seeds (seed 2 failed): success 25, 50 -> 37.5 ± t1 · 17.68 / √2
    random = webshop["random"]
    assert random.seeds == (0, 1) and random.episodes == (4, 4)
    assert random.values["success"].half_width == pytest.approx(T1 * 12.5, rel=1e-6)
    assert random.values["score"].half_width == 0.0
    assert [row.strategy for b in board_of(main_run).boards if b.env == "webshop" for row in b.rows] == [
        "prism-gini", "rl-only", "random", "sft-only", "untrained"]


def test_alfworld_success_per_split_and_task_type(tmp_path: Path) -> None:
    main_run = build_main_run(tmp_path / "run")
    board = board_of(main_run)
    alfworld = next(b for b in board.boards if b.env == "alfworld")
    assert [m.key for m in alfworld.columns] == [
        "success", "split:valid_seen", "split:valid_unseen", "type:look_at_obj_in_light",
        "type:pick_and_place_simple", "type:pick_clean_then_place_in_recep"]
    assert [m.label for m in alfworld.columns[:3]] == ["success %", "seen success %", "unseen success %"]
    rl = rows(board, "alfworld")["rl-only"].values
    assert rl["success"].values == (75.0, 50.0, 50.0)
    assert rl["split:valid_seen"].values == (100.0, 50.0, 100.0)
    assert rl["split:valid_unseen"].values == (50.0, 50.0, 0.0)
    assert rl["type:pick_and_place_simple"].values == (100.0, 100.0, 50.0)
    assert rl["type:look_at_obj_in_light"].values == (100.0, 0.0, 100.0)
    assert rl["type:pick_clean_then_place_in_recep"].values == (0.0, 0.0, 0.0)
    # prism-gini seed 2 is still running: two seeds, 100 and 75
    prism = rows(board, "alfworld")["prism-gini"]
    assert prism.seeds == (0, 1)
    assert prism.values["success"].mean == 87.5
    assert prism.values["split:valid_unseen"].half_width == pytest.approx(T1 * 25, rel=1e-6)


def test_compute_adds_the_shared_phases_each_strategy_uses(tmp_path: Path) -> None:
    main_run = build_main_run(tmp_path / "run")
    webshop = rows(board_of(main_run), "webshop")
    # evaluation costs (1 + seed)e12 -> mean 2e12 over seeds 0-2; shared: expert 0 FLOPs/100 steps, probe 5e13
    prism = webshop["prism-gini"].compute
    assert prism.flops == pytest.approx(6e14 + 5e13 + 2e12)
    assert prism.flops_by_phase == pytest.approx({"expert": 0.0, "probe": 5e13, "sft": 1e14, "rollout": 2e14,
                                                  "rl_update": 3e14, "evaluation": 2e12})
    assert prism.env_steps == 100 + 20
    assert prism.device_hours == pytest.approx((6e14 + 5e13 + 2e12) * 1e-11 / 3600)
    assert prism.wall_hours == prism.device_hours
    assert webshop["rl-only"].compute.flops == pytest.approx(1e15 + 2e12)
    assert "probe" not in webshop["sft-only"].compute.flops_by_phase
    assert webshop["sft-only"].compute.flops == pytest.approx(2e14 + 2e12)
    assert webshop["random"].compute.flops == pytest.approx(6e14 + 1.5e12)  # seeds 0 and 1 only
    assert webshop["untrained"].compute.flops == pytest.approx(2e12)  # evaluation only
    assert webshop["untrained"].compute.flops_by_phase == pytest.approx({"evaluation": 2e12})
    assert [c.flops for c in webshop["prism-gini"].seed_compute] == pytest.approx([6.51e14, 6.52e14, 6.53e14])


def test_ratio_to_rl_only_of_the_same_run(tmp_path: Path) -> None:
    main_run = build_main_run(tmp_path / "run")
    webshop = rows(board_of(main_run), "webshop")
    assert webshop["rl-only"].compute_ratio == pytest.approx(1.0)
    assert webshop["prism-gini"].compute_ratio == pytest.approx(6.52e14 / 1.002e15)
    assert webshop["untrained"].compute_ratio == pytest.approx(2e12 / 1.002e15)


def test_each_row_is_paired_with_the_untrained_policy_of_its_own_run(tmp_path: Path) -> None:
    board = build(load_runs([build_main_run(tmp_path / "a"), build_second_run(tmp_path / "b")]), compare=True)
    webshop = {(r.run.label, r.strategy): r for b in board.boards if b.env == "webshop" for r in b.rows}
    # random (seeds 0, 1) minus untrained on the same goals, x100: 100, 50, 0, 50 | 100, 75, 50, 0 (seed 2 failed)
    paired = webshop[("tiny", "random")].vs_baseline
    differences = (100.0, 50.0, 0.0, 50.0, 100.0, 75.0, 50.0, 0.0)
    assert paired.values == differences and paired.mean == pytest.approx(53.125)
    assert paired.half_width == pytest.approx(T7 * statistics.stdev(differences) / math.sqrt(8), rel=1e-6)
    # the second run's rl-only against that run's own untrained (0, 0.5, 0): 100, 50, 50
    assert webshop[("smollm2", "rl-only")].vs_baseline.mean == pytest.approx(200 / 3)
    assert webshop[("tiny", "untrained")].vs_baseline is None
    # ALFWorld prism-gini seed 2 is unfinished: only seeds 0 and 1 pair, success 0/1 per episode x100
    alfworld = rows(board_of(tmp_path / "a"), "alfworld")
    assert alfworld["prism-gini"].vs_baseline.values == (100.0, 100.0, 100.0, 100.0, 0.0, 100.0, 0.0, 100.0)


def test_without_an_untrained_row_there_is_no_pairing(tmp_path: Path) -> None:
    root = build_second_run(tmp_path / "run")
    remove_cell(root, "webshop__untrained__seed0")
    assert {row.vs_baseline for row in rows(board_of(root), "webshop").values()} == {None}


def test_no_rl_only_means_no_ratio(tmp_path: Path) -> None:
    root = build_second_run(tmp_path / "run")
    remove_cell(root, "webshop__rl-only__seed0")
    assert {row.compute_ratio for row in rows(board_of(root), "webshop").values()} == {None}


def test_a_missing_shared_phase_is_warned_about(tmp_path: Path) -> None:
    main_run = build_main_run(tmp_path / "run")
    (RunDir(main_run).shared_dir("webshop", 1) / "ledger.jsonl").write_text(json.dumps(entry("expert", 0).to_json())
                                                                              + "\n")
    board = board_of(main_run)
    assert any("webshop__prism-gini__seed1 uses shared phase 'probe'" in w and "lacks that work" in w
               for w in board.warnings)
    assert rows(board, "webshop")["prism-gini"].seed_compute[1].flops == pytest.approx(6e14 + 2e12)


def test_different_episode_counts_are_warned_about(tmp_path: Path) -> None:
    main_run = build_main_run(tmp_path / "run")
    from foundation.records import EpisodeResult

    extra = EpisodeResult("webshop", "sft-only", 0, "test", "goal-9", 1.0, True, 3)
    append_jsonl(RunDir(main_run).cell_dir("webshop__sft-only__seed0") / "episodes.jsonl", [extra.to_json()])
    warnings = board_of(main_run).warnings
    assert any(w.startswith("webshop, split test: cells were evaluated on different numbers of episodes")
               and "tiny/sft-only: 5/4/4" in w for w in warnings)
    assert not any(w.startswith("alfworld") for w in warnings)


def test_frontier_mask_keeps_only_non_dominated_points() -> None:
    points = [(1.0, 10.0), (2.0, 20.0), (3.0, 15.0), (2.0, 20.0), (5.0, 30.0), (5.0, 25.0), (0.5, 5.0)]
    # (3, 15) is beaten by (2, 20); (5, 25) by (5, 30); equal points are both kept
    assert frontier_mask(points) == [True, True, False, True, True, False, True]
    assert frontier_mask([]) == []


def test_pareto_frontier_membership(tmp_path: Path) -> None:
    main_run = build_main_run(tmp_path / "run")
    board = board_of(main_run)
    expected = {("webshop", "score"): {"untrained", "sft-only", "random", "prism-gini"},
                ("webshop", "success"): {"untrained", "sft-only", "random", "prism-gini"},
                ("alfworld", "success"): {"untrained", "sft-only", "prism-gini"}}
    for env_board in board.boards:
        for key in env_board.scoring.plotted:
            plot = pareto_plot(env_board, key)
            assert {p.row.strategy for p in plot.frontier} == expected[env_board.env, key]
            assert len(plot.points) == len(env_board.rows) and plot.left_out == ()


def test_rows_without_compute_are_left_out_of_the_plot_not_dropped(tmp_path: Path) -> None:
    root = build_second_run(tmp_path / "run")
    (RunDir(root).cell_dir("webshop__untrained__seed0") / "ledger.jsonl").unlink()
    webshop = board_of(root).boards[0]
    plot = pareto_plot(webshop, "score")
    assert plot.left_out == ("smollm2 / untrained: no FLOPs recorded in its ledgers",)
    assert {p.row.strategy for p in plot.points} == {"rl-only", "prism-gini"}


def test_compare_labels_runs_by_model_and_keeps_rows_apart(tmp_path: Path) -> None:
    main, second = build_main_run(tmp_path / "a"), build_second_run(tmp_path / "b")
    board = build(load_runs([main, second]), compare=True)
    webshop = next(b for b in board.boards if b.env == "webshop")
    assert sorted((r.run.label, r.strategy) for r in webshop.rows) == sorted(
        [("tiny", s) for s in ("untrained", "rl-only", "sft-only", "prism-gini", "random")]
        + [("smollm2", s) for s in ("untrained", "rl-only", "prism-gini")])
    smollm2 = {r.strategy: r for r in webshop.rows if r.run.label == "smollm2"}
    # one seed: rewards 1, 0.5, 0.5 -> 66.7, no interval; ratio to its own run's rl-only
    assert smollm2["prism-gini"].values["score"].half_width is None
    assert smollm2["prism-gini"].values["score"].mean == pytest.approx(200 / 3)
    assert smollm2["prism-gini"].compute_ratio == pytest.approx((6e14 + 5e13 + 1e12) / (1e15 + 1e12))
    assert [b.env for b in board.boards] == ["webshop", "alfworld"]  # the configs' order


def test_runs_sharing_a_model_are_told_apart_by_run_id(tmp_path: Path) -> None:
    from harness.runs import open_run
    from tests.helpers.runs import webshop_episodes, write_cell

    first = build_second_run(tmp_path / "first")
    config = make_config("other", "smollm2", [0], [{"name": "webshop", "train_split": "train", "train_tasks": 8,
                                                     "eval_splits": ["test"], "eval_episodes": 3}])
    run = open_run(config, tmp_path / "other")
    write_cell(run, "webshop", "untrained", 0, webshop_episodes("untrained", 0, [0, 0, 1]))
    board = build(load_runs([first, tmp_path / "other"]), compare=True)
    labels = [info.label for info in board.runs]
    assert labels == [f"smollm2 · {info.run_id}" for info in board.runs] and len(set(labels)) == 2


def test_a_plugin_environment_gets_the_generic_scoring(tmp_path: Path) -> None:
    from foundation.records import EpisodeResult
    from harness.runs import open_run
    from tests.helpers.runs import write_cell

    config = make_config("plugin", "tiny", [0], [{"name": "gridworld", "train_split": "train", "train_tasks": 8,
                                                  "eval_splits": ["test"]}])
    run = open_run(config, tmp_path / "run")
    episodes = [EpisodeResult("gridworld", "untrained", 0, "test", f"t{i}", r, r > 0.5, 4) for i, r in
                enumerate([0.75, 0.25])]
    write_cell(run, "gridworld", "untrained", 0, episodes)
    board = board_of(run.root).boards[0]
    assert (board.scoring.title, [m.key for m in board.columns]) == ("gridworld", ["success", "score"])
    assert board.rows[0].values["success"].mean == 50.0 and board.rows[0].values["score"].mean == 50.0


def test_the_scoring_comes_from_run_json_and_an_older_run_is_scored_as_the_caller_knows(tmp_path: Path) -> None:
    from environments.core.registry import get_env_spec

    root = build_second_run(tmp_path / "run")
    manifest = json.loads((root / "run.json").read_text())
    assert manifest["scoring"]["webshop"] == get_env_spec("webshop").report_scoring.to_json()  # the spec's, recorded
    assert [m.key for m in board_of(root).boards[0].columns] == ["score", "success"]
    del manifest["scoring"]  # as a run written before run.json recorded it
    (root / "run.json").write_text(json.dumps(manifest))
    assert board_of(root).boards[0].scoring.primary.key == "success"  # nothing known: the generic scoring
    known = {"webshop": get_env_spec("webshop").report_scoring}
    board = build([load_run(root)], compare=False, known_scoring=known).boards[0]
    assert (board.scoring.title, board.scoring.primary.key) == ("WebShop", "score")


def test_an_untrained_policy_evaluated_once_pairs_with_every_seed(tmp_path: Path) -> None:
    from harness.runs import open_run
    from tests.helpers.runs import webshop_episodes, write_cell

    config = make_config("once", "tiny", [0, 1], [{"name": "webshop", "train_split": "train", "train_tasks": 8,
                                                    "eval_splits": ["test"], "eval_episodes": 3}])
    run = open_run(config, tmp_path / "run")
    write_cell(run, "webshop", "untrained", 0, webshop_episodes("untrained", 0, [0, 0.5, 0]))
    write_cell(run, "webshop", "rl-only", 0, webshop_episodes("rl-only", 0, [1, 0.5, 0.5]))
    write_cell(run, "webshop", "rl-only", 1, webshop_episodes("rl-only", 1, [0.5, 1, 0]))
    paired = rows(board_of(run.root), "webshop")["rl-only"].vs_baseline
    # seed 0 and seed 1 both against the one untrained evaluation, x100, in (seed, task) order
    assert paired.values == (100.0, 0.0, 50.0, 50.0, 50.0, 0.0)
