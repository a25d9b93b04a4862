"""Shared fixtures: torch thread count, a tiny real Llama with a tokenizer trained on WebShop text."""

from __future__ import annotations

import json
import os

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session", autouse=True)
def _torch_threads():
    """Tests share 2 cores: pin torch to one thread so timings and parallel suites stay sane."""
    try:
        import torch
    except ImportError:
        yield
        return
    torch.set_num_threads(1)
    yield


@pytest.fixture(scope="session")
def tokenizer_corpus() -> list[str]:
    """Real text for tokenizer training: WebShop product titles and goal instructions."""
    from environments.webshop.data_files import CATALOGUE_FILE
    from foundation.data import data_file

    items = json.loads(data_file(CATALOGUE_FILE).read_text())
    texts = [item["name"] for item in items] + [
        "search[", "click[", "buy now", "next >", "< prev", "back to search", "Thought:", "Action:",
        "You are in the middle of a room. Your task is to: put a clean apple in fridge.",
        "go to countertop 1", "take apple 1 from countertop 1", "move apple 1 to fridge 1",
    ]
    return texts


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tokenizer_corpus):
    """A saved tiny Llama model directory (tokenizer + weights), built once per test session."""
    from agents.tiny_models import save_tiny_model

    return save_tiny_model(tokenizer_corpus, tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def varied_tiny_model_dir(tmp_path_factory, tokenizer_corpus):
    """A tiny Llama whose random weights give varied, confident predictions (greedy does not repeat one
    token), with head_dim 64 so that vLLM's CPU attention accepts it too. Agent-layer tests use it."""
    from agents.tiny_models import TinyModelConfig, save_tiny_model

    config = TinyModelConfig(hidden_size=128, intermediate_size=256, num_attention_heads=2, num_key_value_heads=1,
                             initializer_range=0.2)
    return save_tiny_model(tokenizer_corpus, tmp_path_factory.mktemp("tiny-llama-varied"), config)
