"""The written report: Markdown content, compare mode, self-contained HTML, plot files and the CLI."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

from foundation.records import RoutingSummary, RunDir
from harness.cli import app
from leaderboard.report import ReportError, write_report
from leaderboard.stats import estimate
from leaderboard.tables import MAX_REASONS, _reasons, fmt_estimate, fmt_flops, fmt_ratio, fmt_sig
from tests.helpers.runs import build_main_run, build_second_run, make_config

REPO = Path(__file__).resolve().parents[1]
PLOTS = ("pareto_webshop_score", "pareto_webshop_success", "pareto_alfworld_success")


def section(markdown: str, heading: str) -> str:
    """The text from ``heading`` up to the next heading of any level."""
    start = markdown.index(heading + "\n")
    following = re.search(r"^#", markdown[start + len(heading):], flags=re.M)
    return markdown[start: start + len(heading) + (following.start() if following else len(markdown))]


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One single-run report and one compare report, written once for the module (the writing takes ~1 s)."""
    root = tmp_path_factory.mktemp("reports")
    main, second = build_main_run(root / "main"), build_second_run(root / "second")
    return {"main": main, "second": second, "single": write_report([main], root / "single"),
            "compare": write_report([main, second], root / "compare", compare=True)}


def test_number_formats() -> None:
    assert [fmt_flops(v) for v in (1.234e15, 6.52e14, 0, 2e3)] == ["1.2e15", "6.5e14", "0", "2.0e3"]
    assert [fmt_sig(v) for v in (0.0123456, 12.345, 1234.5, 9.996, 1.81111)] == ["0.0123", "12.3", "1230", "10.0",
                                                                                  "1.81"]
    assert [fmt_ratio(v) for v in (0.650699, 2e12 / 1.002e15, 1.0)] == ["0.65×", "0.0020×", "1.0×"]
    assert fmt_estimate(estimate([87.5, 75.0, 81.25])) == "81.2 ± 15.5"
    assert fmt_estimate(estimate([66.7])) == "66.7 (n=1)"
    assert fmt_estimate(None) == "–"


def test_routing_reasons_are_counted_and_a_router_wording_each_item_apart_is_cut_short() -> None:
    rule = RoutingSummary("prism-gini", 44, 43, {"prism-gini: gini > median 0.47": 43,
                                                 "prism-gini: gini <= median 0.47": 44}, ["expert", "probe"])
    assert _reasons(rule) == "prism-gini: gini <= median 0.47: 44, prism-gini: gini > median 0.47: 43"
    chatty = RoutingSummary("mine", 3, 3, {f"{n} steps": 1 for n in range(6)}, ["expert"])
    shown = _reasons(chatty)
    assert shown.count(" steps: 1") == MAX_REASONS
    assert shown.endswith(", and 2 more reasons for 2 items (routing.jsonl)")


def test_single_run_markdown(reports: dict[str, Path]) -> None:
    out = reports["single"].parent
    markdown = (out / "leaderboard.md").read_text()
    results = section(markdown, "### WebShop: held-out results")
    assert [line.split(" | ")[0].lstrip("| ") for line in results.splitlines() if line.startswith("| ")][1:] == [
        "prism-gini", "rl-only", "random", "sft-only", "untrained"]
    assert "| strategy | seeds | episodes | score | success % |" in results
    assert "| prism-gini | 3 | 12 | **81.2 ± 15.5** | **66.7 ± 35.9** |" in results
    assert "| random | 2 | 8 | 62.5 ± 0.0 | 37.5 ± 158.8 |" in results
    alfworld = section(markdown, "### ALFWorld: held-out results")
    assert ("| strategy | seeds | episodes | success % | seen success % | unseen success % | look_at_obj_in_light | "
            "pick_and_place_simple | pick_clean_then_place_in_recep |") in alfworld
    assert "| rl-only | 3 | 12 | 58.3 ± 35.9 | 83.3 ± 71.7 | 33.3 ± 71.7 | 66.7 ± 143.4 | **83.3 ± 71.7** |" in alfworld
    compute = section(markdown, "### WebShop: compute per strategy (per seed)")
    # rl-only ÷ this: 1 / 0.65; Δ score vs rl-only per seed: 87.5 − 75, 75 − 50, 81.25 − 75
    assert ("| prism-gini | 3 | 6.5e14 | 0.65× | 1.5× | **+14.6 ± 23.7** | 1.81 | 1.81 | 6.5e5 | 120 | expert 0, probe "
            "5.0e13, sft 1.0e14, "
            "rollout 2.0e14, rl_update 3.0e14, evaluation 2.0e12 | cpu |") in compute
    assert "| untrained | 3 | **2.0e12** | **0.0020×** |" in compute
    routing = section(markdown, "### WebShop: routing split sizes")
    assert ("| prism-gini | 3 | 4 | 4 | concentration <= median: 4, concentration > median: 4 | expert, probe |"
            in routing)
    assert "| sft-only | 3 | 8 | 0 | – | expert |" in routing
    assert ("Frontier (score against FLOPs per seed): untrained 6.2 ± 15.5 at 2.0e12 FLOPs, sft-only 54.2 ± 17.9 at "
            "2.0e14 FLOPs, random 62.5 ± 0.0 at 6.0e14 FLOPs, prism-gini 81.2 ± 15.5 at 6.5e14 FLOPs.") in markdown
    assert "± is the half-width of a 95% Student-t interval over per-seed values (t = 4.30 for 3 seeds)" in markdown
    assert ("webshop: held-out episodes per seed: test 4 (configured: 4 per split); one episode moves a split's "
            "success rate by 25 points.") in markdown
    not_counted = section(markdown, "### Cells not counted")
    assert ("| tiny | webshop | random | 2 | failed | failed in phase rl_update: RuntimeError: out of memory |"
            in not_counted)
    assert "| tiny | alfworld | prism-gini | 2 | running | running in phase rollout |" in not_counted
    assert "## ⚠ Warnings" not in markdown
    for name in PLOTS:
        assert (out / f"{name}.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
        assert ET.parse(out / f"{name}.svg").getroot().tag == "{http://www.w3.org/2000/svg}svg"


def test_published_rows_stay_apart(reports: dict[str, Path]) -> None:
    markdown = reports["single"].with_name("leaderboard.md").read_text()
    published = section(markdown, "### WebShop: published, different model/hardware")
    assert ("| GiGPO paper | Qwen2.5-7B-Instruct | GiGPO | 84.4 | 72.8 | 3 seeds, group size 8; no interval published |"
            in published)
    assert "| ETO paper | Llama-2-7B-Chat | ETO | 67.4 | – | average reward |" in published
    assert "**" not in published
    assert "GiGPO" not in section(markdown, "### WebShop: held-out results")
    assert "GiGPO" not in section(markdown, "### WebShop: compute per strategy (per seed)")
    alfworld = section(markdown, "### ALFWorld: published, different model/hardware")
    assert "| ETO paper | Llama-2-7B-Chat | SFT | – | 60.0 | 67.2 | seen / unseen splits |" in alfworld
    svg = (reports["single"].parent / "pareto_webshop_score.svg").read_text()
    assert "GiGPO" not in svg and "GiGPO" not in re.search(r'<svg class="pareto".*?</svg>',
                                                           reports["single"].read_text(), flags=re.S).group(0)


def test_single_seed_run_says_no_interval(tmp_path: Path) -> None:
    page = write_report([build_second_run(tmp_path / "run")], tmp_path / "out")
    markdown = page.with_name("leaderboard.md").read_text()
    assert "One seed: every number comes from a single training run per strategy, so no interval can be given" \
        in markdown
    results = section(markdown, "### WebShop: held-out results")
    # over seeds no interval; the paired difference to untrained has one over its 3 episodes (100, 50, 50)
    assert "| rl-only | 1 | 3 | **83.3 (n=1)** | **66.7 (n=1)** | **+66.7 ± 71.7** |" in results
    assert "| untrained | 1 | 3 | 16.7 (n=1) | 0.0 (n=1) | – |" in results
    assert "evaluation noise only, not variation between training runs" in results


def test_compare_report_shows_runs_and_warns(reports: dict[str, Path]) -> None:
    markdown = reports["compare"].with_name("leaderboard.md").read_text()
    main, second = (json.loads((reports[k] / "run.json").read_text()) for k in ("main", "second"))
    assert markdown.startswith("# Leaderboard: tiny vs smollm2\n")
    warnings = section(markdown, "## ⚠ Warnings")
    assert "- webshop: runs differ in eval_episodes (tiny: 4, smollm2: 3); their scores are not comparable" in warnings
    assert "- alfworld is only in runs tiny" in warnings
    assert "- webshop, split test: cells were evaluated on different numbers of episodes" in warnings
    results = section(markdown, "### WebShop: held-out results")
    assert "| run | strategy | seeds | episodes | score | success % |" in results
    assert "| smollm2 | rl-only | 1 | 3 | **83.3 (n=1)** | 66.7 (n=1) |" in results
    assert "| tiny | prism-gini | 3 | 12 | 81.2 ± 15.5 | **66.7 ± 35.9** |" in results
    runs = section(markdown, "### Runs")
    for manifest, label in ((main, "tiny"), (second, "smollm2")):
        machine = manifest["environment"]["hostname"]
        assert re.search(rf"^\| {label} \| {manifest['run_id']} \| {label} \| {re.escape(machine)} ", runs, re.M)
    assert f"Run {second['run_id']}: model smollm2" in markdown
    html = reports["compare"].read_text()
    assert 'id="warnings"' in html and "runs differ in eval_episodes" in html


def test_html_is_self_contained(reports: dict[str, Path]) -> None:
    html = reports["compare"].read_text()
    assert "<script src" not in html and "<link" not in html and "@import" not in html
    assert set(re.findall(r"https?://[^\"'\s)]+", html)) == {"http://www.w3.org/2000/svg"}
    links = set(re.findall(r'href="([^"]+)"', html))
    files = {f"{p}.{ext}" for p in PLOTS for ext in ("png", "svg")}
    assert all(link.startswith("#") or link in files for link in links)
    assert all((reports["compare"].parent / link).is_file() for link in links if not link.startswith("#"))
    assert html.count('<svg class="pareto"') == 3


def test_several_runs_need_compare(reports: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="pass --compare to merge them"):
        write_report([reports["main"], reports["second"]], tmp_path / "out")


def test_report_reads_runs_without_training_code(reports: dict[str, Path], tmp_path: Path) -> None:
    """The leaderboard must read runs on a machine without torch: no model, training or environment code is imported
    (only the torch-free ledger record of prism_train)."""
    code = (
        "import sys\n"
        "from leaderboard.report import write_report\n"
        f"write_report([{str(reports['main'])!r}], {str(tmp_path / 'out')!r})\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in {'torch', 'agents', 'environments',"
        " 'transformers'})\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=120)
    assert (tmp_path / "out" / "leaderboard.html").is_file()


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_cli_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    main = build_main_run(tmp_path / "main")
    result = runner.invoke(app, ["leaderboard", str(main)])
    assert result.exit_code == 0, result.output
    assert (main / "report" / "leaderboard.html").is_file() and (main / "report" / "leaderboard.md").is_file()
    second = build_second_run(tmp_path / "second")
    result = runner.invoke(app, ["leaderboard", str(main), str(second)])
    assert result.exit_code == 2 and "pass --compare to merge them into one report" in _flat(result.output)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["leaderboard", str(main), str(second), "--compare"])
    assert result.exit_code == 0, result.output
    assert "| smollm2 | rl-only |" in (tmp_path / "leaderboard-report" / "leaderboard.md").read_text()
    result = runner.invoke(app, ["leaderboard", str(main), str(second), "--compare", "-o", str(tmp_path / "x")])
    assert result.exit_code == 0 and sorted(p.name for p in (tmp_path / "x").iterdir()) == sorted(
        ["leaderboard.html", "leaderboard.md", *(f"{p}.{e}" for p in PLOTS for e in ("png", "svg"))])


def _empty_run(tmp_path: Path) -> Path:
    from harness.runs import open_run

    config = make_config("empty", "tiny", [0], [{"name": "webshop", "train_split": "train", "train_tasks": 8,
                                                  "eval_splits": ["test"]}])
    return open_run(config, tmp_path / "empty").root


def _newer_status(tmp_path: Path) -> Path:
    root = build_second_run(tmp_path / "newer")
    path = RunDir(root).cell_dir("webshop__rl-only__seed0") / "status.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | {"version": 3}))
    return root


@pytest.mark.parametrize(("make", "message"), [
    (lambda tmp: tmp, "is not a run directory: it has no run.json"),
    (_empty_run, "is an empty run: it has no cells yet"),
    (_newer_status, "CellStatus record has version 3; this code reads up to 1"),
])
def test_cli_bad_input_is_a_clear_error(tmp_path: Path, make, message: str) -> None:
    result = CliRunner().invoke(app, ["leaderboard", str(make(tmp_path)), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "cannot write the leaderboard:" in result.output and message in _flat(result.output)
    assert not (tmp_path / "out").exists()


def test_a_run_with_no_finished_cell_still_reports_what_failed(tmp_path: Path) -> None:
    from harness.runs import open_run
    from tests.helpers.runs import write_cell

    config = make_config("failing", "tiny", [0], [{"name": "webshop", "train_split": "train", "train_tasks": 8,
                                                   "eval_splits": ["test"]}])
    run = open_run(config, tmp_path / "run")
    write_cell(run, "webshop", "rl-only", 0, [], state="failed", phase="sft", error="ValueError: bad batch")
    markdown = write_report([run.root], tmp_path / "out").with_name("leaderboard.md").read_text()
    assert "- No finished cells: nothing can be told yet." in markdown
    assert "| tiny | webshop | rl-only | 0 | failed | failed in phase sft: ValueError: bad batch |" in markdown
    assert "## WebShop" not in markdown
