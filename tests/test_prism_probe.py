"""The PRISM probe: batched Gram-trick norms equal the naive per-trajectory gradients; statistics; scores."""

from __future__ import annotations

import json
import math
import random

import pytest
import torch

from tests.helpers.trajectories import short_prompt, short_trajectories


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    from prism_train.modeling import load_causal_lm

    return load_causal_lm(tiny_model_dir)


@pytest.fixture(scope="module")
def tokenized(tiny_model_dir):
    from prism_train.formatting import TrajectoryTokenizer
    from prism_train.modeling import load_tokenizer

    formatter = TrajectoryTokenizer(load_tokenizer(tiny_model_dir), short_prompt())
    return formatter.tokenize_all(short_trajectories())


def _random_samples(vocab: int, lengths: list[list[int]], seed: int = 0):
    """Token rows of given lengths (one inner list per sample: several rows = a multi-row sample)."""
    from prism_train.modeling import TokenizedTrajectory, TokenRow

    rng = random.Random(seed)
    samples = []
    for i, row_lengths in enumerate(lengths):
        rows = []
        for n in row_lengths:
            mask = [False] + [rng.random() < 0.3 for _ in range(n - 1)]
            mask[-1] = True
            rows.append(TokenRow([rng.randrange(vocab) for _ in range(n)], mask))
        samples.append(TokenizedTrajectory(f"s{i}", rows))
    return samples


def _naive(model, samples, projections):
    from prism_train.probe import naive_norms

    results = [naive_norms(model, s, projections) for s in samples]
    return torch.stack([r[0] for r in results]), torch.tensor([r[1] for r in results])


def test_batched_norms_equal_per_trajectory_gradients(model, tokenized):
    """Real prompts (multi-row trajectories), one forward + one backward vs one backward each: 1e-4 relative."""
    from prism_train.probe import batched_norms, find_projections

    projections = find_projections(model)
    assert len(projections) == 7 * model.config.num_hidden_layers
    norms, losses, flops = batched_norms(model, tokenized, projections, precision="float32")
    reference, reference_losses = _naive(model, tokenized, projections)
    assert torch.all(reference > 0)
    assert torch.max((norms - reference).abs() / reference) < 1e-4
    assert torch.allclose(losses, reference_losses, rtol=1e-5)
    assert flops > 0
    # The model is left as it was found.
    assert all(p.requires_grad for p in model.parameters()) and all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize(("lengths", "forms"), [
    ([[12], [20], [7], [25]], {"gram"}),  # short samples: the Gram form for every projection
    ([[150], [90], [120]], {"outer"}),  # long samples: the outer-product form
    ([[10, 14], [30], [8, 9, 20]], {"gram", "outer"}),  # several rows per sample; the batch mixes both forms
    ([[5, 6], [4], [6, 5, 3]], {"gram"}),  # several short rows: one Gram matrix over all of a sample's tokens
    ([[40, 50], [60]], {"outer"}),  # several long rows: row gradients summed per sample
], ids=["gram", "outer", "multi-row-mixed", "multi-row-gram", "multi-row-outer"])
def test_both_product_forms_and_multi_row_samples_agree_with_naive(model, lengths, forms):
    from prism_train.probe import batched_norms, find_projections, gram_is_cheaper

    projections = find_projections(model)
    samples = _random_samples(model.config.vocab_size, lengths)
    hidden, ff = model.config.hidden_size, model.config.intermediate_size
    used = {"gram" if gram_is_cheaper(sum(x), hidden, d_out) else "outer" for x in lengths for d_out in (hidden, ff)}
    assert used == forms
    norms, losses, _ = batched_norms(model, samples, projections, precision="float32", chunk_elements=5000)
    reference, reference_losses = _naive(model, samples, projections)
    assert torch.max((norms - reference).abs() / reference) < 1e-4
    assert torch.allclose(losses, reference_losses, rtol=1e-5)


def test_a_trajectorys_score_does_not_depend_on_its_batch(model, tokenized):
    """Padding to a longer neighbour changes nothing: padded positions are masked out."""
    from prism_train.probe import batched_norms, find_projections

    projections = find_projections(model)
    alone, _, _ = batched_norms(model, tokenized[:1], projections, precision="float32")
    together, _, _ = batched_norms(model, tokenized[:6], projections, precision="float32")
    assert torch.max((alone[0] - together[0]).abs() / alone[0]) < 1e-5


def test_batches_are_longest_first_and_bounded_by_size_and_tokens():
    from prism_train.probe import ProbeConfig, default_batch_tokens, probe_batches

    samples = _random_samples(50, [[10], [40, 30], [20], [35], [15], [60]])
    assert list(probe_batches(samples, batch_size=2, max_tokens=1000)) == [[5, 1], [3, 2], [4, 0]]
    # Rows × the batch's widest row: [60] alone would fit 100 but not with [40, 30] (3 rows × 60).
    assert list(probe_batches(samples, batch_size=8, max_tokens=100)) == [[5], [1], [3, 2], [4, 0]]
    assert list(probe_batches(samples, batch_size=8, max_tokens=10)) == [[i] for i in (5, 1, 3, 2, 4, 0)]
    assert default_batch_tokens(torch.device("cpu")) < default_batch_tokens(torch.device("cuda"))
    with pytest.raises(ValueError, match="max_batch_tokens"):
        ProbeConfig(max_batch_tokens=0)


def test_probe_writes_versioned_scores_and_its_ledger(model, tokenized, tmp_path):
    from prism_train.ledger import Ledger, read_ledger
    from prism_train.probe import ProbeConfig, probe
    from prism_train.scores import SCORES_VERSION, read_scores, write_scores

    trajectories = short_trajectories()
    ledger = Ledger(tmp_path / "ledger.jsonl", strategy="prism-gini", run="r0")
    scores = probe(model, trajectories, tokenized, ProbeConfig(batch_size=4, precision="float32"), ledger=ledger,
                   model_name="tiny")
    naive = probe(model, trajectories[:3], tokenized[:3], ProbeConfig(precision="float32"), method="naive")
    for a, b in zip(scores[:3], naive, strict=True):
        assert a.id == b.id
        assert max(abs(x - y) / y for x, y in zip(a.norms, b.norms, strict=True)) < 1e-4
    path = tmp_path / "scores.jsonl"
    write_scores(path, scores)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["id"] for line in lines] == [t.id for t in trajectories]
    assert all(line["version"] == SCORES_VERSION for line in lines)
    assert not list(tmp_path.glob(".scores.jsonl.*"))  # the temporary file was renamed into place
    back = read_scores(path)
    assert back[trajectories[0].id] == scores[0]
    score = scores[0]
    assert score.normalization == "none" and len(score.norms) == 7 * model.config.num_hidden_layers
    assert set(score.statistics) == {"gini", "cv", "kurtosis", "grad_norm"}
    assert score.action_tokens == tokenized[0].n_targets
    (entry,) = read_ledger(tmp_path / "ledger.jsonl")
    assert entry.phase == "probe" and entry.strategy == "prism-gini"
    assert entry.tokens == sum(len(r.trimmed().input_ids) for t in tokenized for r in t.rows)
    assert entry.flops > 4 * entry.tokens and entry.wall_s > 0 and entry.device_s > 0


def test_size_normalisation_is_optional_and_recorded(model, tokenized):
    from prism_train.concentration import gini
    from prism_train.probe import ProbeConfig, probe

    trajectories = short_trajectories()[:2]
    raw = probe(model, trajectories, tokenized[:2], ProbeConfig(precision="float32"))
    scaled = probe(model, trajectories, tokenized[:2], ProbeConfig(normalization="sqrt-numel", precision="float32"))
    assert raw[0].norms == pytest.approx(scaled[0].norms, rel=1e-5)  # raw norms are kept either way
    rms = [n / math.sqrt(k) for n, k in zip(scaled[0].norms, scaled[0].numels, strict=True)]
    assert scaled[0].statistics["gini"] == pytest.approx(gini(rms))
    assert raw[0].statistics["gini"] != pytest.approx(scaled[0].statistics["gini"])
    with pytest.raises(ValueError, match="unknown normalization"):
        probe(model, trajectories, tokenized[:2], ProbeConfig(normalization="per-row"))


def test_concentration_statistics():
    from prism_train.concentration import coefficient_of_variation, gini, kurtosis, total_norm

    assert gini([1, 1, 1, 1]) == 0
    assert gini([0, 0, 0, 1]) == pytest.approx(0.75)
    assert gini([1, 2, 3, 4]) == pytest.approx(0.25)  # sum |xi-xj| / (2 n^2 mean) = 20 / 80
    assert gini([3, 1, 2]) == gini([1, 2, 3]) == gini([10, 20, 30])
    assert coefficient_of_variation([2, 4, 4, 4, 5, 5, 7, 9]) == pytest.approx(2 / 5)
    xs = [1.0, 2.0, 3.0, 4.0, 10.0]
    mean = sum(xs) / 5
    m2 = sum((x - mean) ** 2 for x in xs) / 5
    m4 = sum((x - mean) ** 4 for x in xs) / 5
    assert kurtosis(xs) == pytest.approx(m4 / m2**2 - 3)
    assert total_norm([3, 4]) == 5
    for bad in ([1.0], [0.0, 0.0], [1.0, -1.0], [1.0, math.nan]):
        with pytest.raises(ValueError):
            gini(bad)


def test_bad_inputs_are_refused(model):
    from prism_train.modeling import TokenizedTrajectory, TokenRow
    from prism_train.probe import batched_norms, find_projections

    with pytest.raises(ValueError, match="no linear modules"):
        find_projections(torch.nn.Sequential(torch.nn.Linear(4, 4)))
    with pytest.raises(ValueError, match="no action tokens"):
        batched_norms(model, [TokenizedTrajectory("x", [TokenRow([1, 2, 3], [False, False, False])])],
                      find_projections(model))
    with pytest.raises(ValueError, match="first token"):
        TokenRow([1, 2], [True, False])


def test_cli_probe_writes_scores_for_every_trajectory(tiny_model_dir, tmp_path):
    from typer.testing import CliRunner

    from environments.core.trajectory import TrajectoryWriter
    from harness.cli import app
    from prism_train.ledger import read_ledger
    from prism_train.scores import read_scores

    trajectories = short_trajectories()
    with TrajectoryWriter(tmp_path / "expert.jsonl") as writer:
        writer.write_all(trajectories)
    (tmp_path / "probe.yaml").write_text("batch_size: 5\nprompt: {few_shot: false, history: 1}\n")
    args = ["probe", str(tmp_path / "expert.jsonl"), "--model", str(tiny_model_dir), "--out",
            str(tmp_path / "scores.jsonl"), "-c", str(tmp_path / "probe.yaml"), "-s", "prompt.max_length=1024"]
    result = CliRunner().invoke(app, [*args, "--ledger", str(tmp_path / "ledger.jsonl"), "--strategy", "prism-gini"])
    assert result.exit_code == 0, result.output
    scores = read_scores(tmp_path / "scores.jsonl")
    assert list(scores) == [t.id for t in trajectories] and all(s.model == str(tiny_model_dir)
                                                                  for s in scores.values())
    assert [e.phase for e in read_ledger(tmp_path / "ledger.jsonl")] == ["probe"]
    too_short = CliRunner().invoke(app, [*args, "-s", "prompt.max_length=20"])
    assert too_short.exit_code == 2 and "no step within max_length=20" in too_short.output
    typo = CliRunner().invoke(app, [*args, "-s", "batch_sise=4"])
    assert typo.exit_code == 2 and "batch_sise: unknown field" in typo.output
