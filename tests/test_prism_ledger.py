"""Compute accounting: analytic FLOPs against torch's FLOP counter, the ledger file, strategy totals."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

# Stated tolerances of the analytic counts against FlopCounterMode (eager attention, so that the
# attention matmuls are counted too; norms, softmax and rotary are not matmuls and count for nothing).
FULL_TOLERANCE = 0.01  # forward, and forward+backward with every weight trained
LORA_TOLERANCE = 0.05  # layer 0's q/k/v need no input gradient under LoRA: the analytic count is ~2 % high
PROBE_TOLERANCE = 0.02


@pytest.fixture(scope="module")
def eager_model(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation="eager")


def _rows(vocab: int, count: int = 3, length: int = 96, seed: int = 0):
    from prism_train.modeling import TokenRow

    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        mask = [False] + [rng.random() < 0.3 for _ in range(length - 1)]
        mask[-1] = True  # equal trimmed lengths: no padding, so the analytic and measured work coincide
        rows.append(TokenRow([rng.randrange(vocab) for _ in range(length)], mask))
    return rows


def _measured(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def test_analytic_flops_match_the_flop_counter(eager_model, tiny_model_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from prism_train.flops import PROJECTIONS, ModelShape
    from prism_train.modeling import TokenizedTrajectory, pad_rows, target_logprobs
    from prism_train.probe import batched_norms, find_projections

    shape = ModelShape.from_config(eager_model.config)
    rows = _rows(eager_model.config.vocab_size)
    batch = pad_rows(rows, 0)
    lengths = [len(r.input_ids) for r in rows]
    targets = sum(r.n_targets for r in rows)

    with torch.no_grad():
        forward = _measured(lambda: target_logprobs(eager_model, batch))
    assert forward == pytest.approx(shape.forward_flops(lengths, targets), rel=FULL_TOLERANCE)

    train = _measured(lambda: target_logprobs(eager_model, batch).sum().backward())
    assert train == pytest.approx(shape.train_flops(lengths, targets), rel=FULL_TOLERANCE)
    eager_model.zero_grad(set_to_none=True)

    lora = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation="eager"),
                          LoraConfig(r=8, lora_dropout=0.0, target_modules=list(PROJECTIONS)))
    lora_flops = _measured(lambda: target_logprobs(lora, batch).sum().backward())
    assert lora_flops == pytest.approx(shape.train_flops(lengths, targets, lora_rank=8), rel=LORA_TOLERANCE)

    samples = [TokenizedTrajectory(f"s{i}", [row]) for i, row in enumerate(rows)]
    result = {}
    probe = _measured(lambda: result.update(out=batched_norms(eager_model, samples, find_projections(eager_model),
                                                              precision="float32")))
    assert probe == pytest.approx(shape.probe_flops(lengths, targets, result["out"][2]), rel=PROBE_TOLERANCE)
    # The textbook ratios hold for the layers: 2N per token forward, 6N forward+backward.
    assert shape.train_flops([1], 0) - 3 * shape.attention_flops(1) == 6 * shape.body_params


def test_generation_flops_count_prefill_and_decode():
    from prism_train.flops import ModelShape

    shape = ModelShape.from_config({"num_hidden_layers": 2, "hidden_size": 8, "num_attention_heads": 2,
                                    "intermediate_size": 16, "vocab_size": 10})
    per_pair = 4 * 2 * 2 * 4
    assert shape.generation_flops(3, 2) == (2 * shape.body_params * 5 + 2 * shape.head_params * 2
                                            + per_pair * (9 + 4 + 5))
    with pytest.raises(ValueError, match="lacks"):
        ModelShape.from_config({"hidden_size": 8})


def test_ledger_lines_are_versioned_atomic_and_survive_a_torn_tail(tmp_path, caplog):
    from prism_train.ledger import LEDGER_VERSION, Ledger, read_ledger

    path = tmp_path / "ledger.jsonl"
    ledger = Ledger(path, strategy="prism-gini", run="prism-gini-s0")
    with ledger.phase("sft") as meter:
        meter.add(tokens=100, flops=6e5)
        with meter.on_device():
            sum(range(1000))
    ledger.record("rollout", tokens=50, flops=1e5, wall_s=2.0, device_s=1.5, env_steps=7)
    with pytest.raises(RuntimeError), ledger.phase("rl_update") as meter:
        meter.add(tokens=3)
        raise RuntimeError("crash")
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["phase"] for line in lines] == ["sft", "rollout", "rl_update"]
    assert all(line["version"] == LEDGER_VERSION and line["strategy"] == "prism-gini" for line in lines)
    assert lines[0]["device_s"] > 0 and lines[0]["wall_s"] >= lines[0]["device_s"]
    assert lines[2]["meta"] == {"interrupted": True} and lines[2]["tokens"] == 3
    with open(path, "a") as fh:
        fh.write('{"version": 1, "phase": "sft", "tok')  # a crash in the middle of a line
    entries = read_ledger(path)
    assert len(entries) == 3 and "incomplete last line" in caplog.text
    with pytest.raises(ValueError, match="unknown ledger phase"):
        ledger.record("lunch")
    with pytest.raises(ValueError, match="non-negative"):
        ledger.record("sft", tokens=-1)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"version": 99, "phase": "sft"}) + "\n")
    with pytest.raises(ValueError, match="version 99"):
        read_ledger(bad)


def test_ledger_reads_without_torch_and_matches_the_run_records(tmp_path):
    """The leaderboard's side: no torch import, and foundation.records reads the same lines."""
    from foundation.records import LedgerEntry as RunLedgerEntry
    from prism_train.ledger import Ledger

    path = tmp_path / "ledger.jsonl"
    Ledger(path, strategy="rl-only").record("rl_update", tokens=10, flops=1.0, wall_s=1.0, device_s=0.5, env_steps=2)
    code = ("import sys; from prism_train.ledger import compare_strategies, read_ledger; "
            f"e = read_ledger({str(path)!r}); c = compare_strategies(e); "
            "assert c['rl-only'].ratio['flops'] == 1.0; assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
    record = json.loads(path.read_text())
    run_entry = RunLedgerEntry.from_json(record)
    assert (run_entry.phase, run_entry.tokens, run_entry.wall_s, run_entry.device_s, run_entry.env_steps) == (
        "rl_update", 10, 1.0, 0.5, 2)


def test_strategies_are_totalled_per_run_and_related_to_rl_only(tmp_path):
    from prism_train.ledger import Ledger, LedgerEntry, compare_strategies

    rl = Ledger(tmp_path / "rl.jsonl", strategy="rl-only", run="rl-s0")
    rl.record("rollout", tokens=1000, flops=8e9, wall_s=10, device_s=6, env_steps=400)
    rl.record("rl_update", tokens=1000, flops=2e9, wall_s=5, device_s=5)
    prism = []
    for seed in (0, 1):  # two runs of prism: totals are compared per run
        ledger = Ledger(None, strategy="prism-gini", run=f"prism-s{seed}")
        ledger.record("probe", tokens=100, flops=1e9, wall_s=1, device_s=1)
        ledger.record("sft", tokens=100, flops=1e9, wall_s=1, device_s=1)
        ledger.record("rollout", tokens=400, flops=2e9, wall_s=3, device_s=2, env_steps=100)
        prism += ledger.entries
    costs = compare_strategies([tmp_path / "rl.jsonl", *prism])
    assert costs["rl-only"].ratio == {"tokens": 1.0, "flops": 1.0, "wall_s": 1.0, "device_s": 1.0, "env_steps": 1.0}
    gini = costs["prism-gini"]
    assert gini.runs == 2 and gini.totals["flops"] == 8e9 and gini.per_run["flops"] == 4e9
    assert gini.ratio["flops"] == pytest.approx(0.4) and gini.ratio["env_steps"] == pytest.approx(0.25)
    assert gini.phases["probe"]["flops"] == 2e9
    # Cell ledgers of a run directory do not name their strategy: the mapping form names it.
    unnamed = LedgerEntry(phase="sft", tokens=1, flops=5e9)
    by_name = compare_strategies({"rl-only": [tmp_path / "rl.jsonl"], "sft-only": [unnamed]})
    assert by_name["sft-only"].ratio["flops"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="baseline"):
        compare_strategies(prism)
    with pytest.raises(ValueError, match="names no strategy"):
        compare_strategies([unnamed])


def test_cli_cost_table(tmp_path):
    from typer.testing import CliRunner

    from harness.cli import app
    from prism_train.ledger import Ledger

    Ledger(tmp_path / "a.jsonl", strategy="rl-only").record("rollout", flops=4e9, device_s=4.0)
    Ledger(tmp_path / "b.jsonl", strategy="random").record("sft", flops=1e9, device_s=2.0)
    result = CliRunner().invoke(app, ["train", "cost", str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl")],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    random_row = next(line for line in result.output.splitlines() if "random" in line)
    assert "0.250" in random_row and "0.500" in random_row
    missing = CliRunner().invoke(app, ["train", "cost", str(tmp_path / "b.jsonl")])
    assert missing.exit_code == 2 and "baseline" in missing.output
