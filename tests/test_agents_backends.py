"""The transformers backend against the model itself: log-probabilities, padding, samples, adapters."""

from __future__ import annotations

import pytest
import torch

from agents.backends.hf import TransformersBackend
from agents.policy import GenerationRequest, SamplingParams

SYSTEM = {"role": "system", "content": "You are web shopping. Search for products, then click the buttons. " * 4}


def conversations() -> list[list[dict[str, str]]]:
    """Prompts of different lengths sharing a system message (so padding and the prefix cache both act)."""
    return [
        [SYSTEM, {"role": "user", "content": "red running shoes"}],
        [SYSTEM, {"role": "user", "content": "a 3 ounce bottle of bright citrus deodorant for sensitive skin, "
                                             "and price lower than 50.00 dollars"}],
        [SYSTEM, {"role": "user", "content": "Observation: Back to Search [SEP] Next > [SEP] B078GWRC1J"},
         {"role": "assistant", "content": "Action: click[b078gwrc1j]"}, {"role": "user", "content": "Buy Now"}],
    ]


@pytest.fixture(scope="module")
def backend(varied_tiny_model_dir) -> TransformersBackend:
    return TransformersBackend(varied_tiny_model_dir)


def reference_logprobs(model, prompt: list[int], generated: list[int]) -> list[float]:
    """Log-probabilities of ``generated`` after ``prompt`` from one plain forward pass, no cache, no padding."""
    with torch.no_grad():
        logits = model(torch.tensor([prompt + generated])).logits[0].float()
    logprobs = torch.log_softmax(logits, dim=-1)
    return [logprobs[len(prompt) - 1 + i, token].item() for i, token in enumerate(generated)]


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_logprobs_match_a_direct_forward_pass(backend, temperature):
    requests = [GenerationRequest(messages, seed=i) for i, messages in enumerate(conversations())]
    results = backend.generate(requests, SamplingParams(max_new_tokens=12, temperature=temperature, n=2))
    for request, samples in zip(requests, results, strict=True):
        prompt = backend.encode(request.messages)
        for sample in samples:
            assert sample.prompt_tokens == len(prompt)
            assert len(sample.token_ids) == len(sample.logprobs) > 0
            expected = reference_logprobs(backend.model, prompt, sample.token_ids)
            assert sample.logprobs == pytest.approx(expected, abs=1e-4)


def test_batched_greedy_equals_one_by_one_with_and_without_prefix_cache(backend, varied_tiny_model_dir):
    params = SamplingParams(max_new_tokens=16)
    requests = [GenerationRequest(messages) for messages in conversations()]
    batched = backend.generate(requests, params)
    alone = [backend.generate([request], params)[0] for request in requests]
    plain = TransformersBackend(varied_tiny_model_dir, prefix_cache=False)
    uncached = plain.generate(requests, params)
    assert backend.shared_prefix_length(requests[0].messages, backend.encode(requests[0].messages)) > 0
    assert len({tuple(samples[0].token_ids) for samples in batched}) == 3  # the prompts really differ
    for b, a, u in zip(batched, alone, uncached, strict=True):
        assert b[0].token_ids == a[0].token_ids == u[0].token_ids
        assert b[0].logprobs == pytest.approx(a[0].logprobs, abs=1e-4)
        assert b[0].logprobs == pytest.approx(u[0].logprobs, abs=1e-4)


def test_n_samples_are_distinct_and_reproducible_from_the_seed(backend):
    request = GenerationRequest(conversations()[0], seed=7)
    params = SamplingParams(max_new_tokens=10, temperature=1.0, n=4)
    first = backend.generate([request], params)[0]
    again = backend.generate([request], params)[0]
    other = backend.generate([GenerationRequest(request.messages, seed=8)], params)[0]
    assert len(first) == 4
    assert len({tuple(s.token_ids) for s in first}) == 4
    assert [s.token_ids for s in first] == [s.token_ids for s in again]
    assert [s.token_ids for s in first] != [s.token_ids for s in other]
    # a sample does not depend on what else shares its batch
    mixed = backend.generate([GenerationRequest(conversations()[1], seed=3), request], params)[1]
    assert [s.token_ids for s in mixed] == [s.token_ids for s in first]


def test_stop_strings_end_a_row_and_are_cut_from_the_text(backend):
    import re

    request = GenerationRequest(conversations()[0])
    free = backend.generate([request], SamplingParams(max_new_tokens=24))[0][0]
    word = re.search(r"[A-Za-z]{3,}", free.text[1:])
    assert word, f"the free-running text should have a word to stop on: {free.text!r}"
    stop = word.group(0)[:3]
    stopped = backend.generate([request], SamplingParams(max_new_tokens=24, stop=(stop,)))[0][0]
    assert stopped.finish_reason == "stop" and stop not in stopped.text
    assert stopped.token_ids == free.token_ids[: len(stopped.token_ids)] and len(stopped.token_ids) < 24
    decoded = backend.tokenizer.decode(stopped.token_ids, skip_special_tokens=True)
    assert stop in decoded and stopped.text == decoded[: decoded.index(stop)]
    assert free.finish_reason == "length" and len(free.token_ids) == 24


def test_lora_adapter_loads_and_matches_peft(backend, varied_tiny_model_dir, tmp_path):
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(varied_tiny_model_dir)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(base, config).save_pretrained(tmp_path / "adapter")

    adapted = TransformersBackend(varied_tiny_model_dir, adapter=tmp_path / "adapter")
    request = GenerationRequest(conversations()[1])
    params = SamplingParams(max_new_tokens=12)
    with_adapter = adapted.generate([request], params)[0][0]
    without = backend.generate([request], params)[0][0]
    assert with_adapter.logprobs != pytest.approx(without.logprobs, abs=1e-3)
    reference = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(varied_tiny_model_dir),
                                          tmp_path / "adapter").eval()
    expected = reference_logprobs(reference, adapted.encode(request.messages), with_adapter.token_ids)
    assert with_adapter.logprobs == pytest.approx(expected, abs=1e-4)
    assert adapted.describe()["adapters"] == {"default": str(tmp_path / "adapter")}


def test_bfloat16_generates(varied_tiny_model_dir):
    bf16 = TransformersBackend(varied_tiny_model_dir, dtype="bfloat16")
    sample = bf16.generate([GenerationRequest(conversations()[0])], SamplingParams(max_new_tokens=4))[0][0]
    assert len(sample.token_ids) == 4 and all(lp <= 0 for lp in sample.logprobs)


def test_bad_input_gets_clear_errors(backend, varied_tiny_model_dir, tmp_path):
    with pytest.raises(ValueError, match="dtype"):
        TransformersBackend(varied_tiny_model_dir, dtype="int3")
    with pytest.raises(FileNotFoundError, match="adapter"):
        backend.load_adapter(tmp_path)
    with pytest.raises(ValueError, match="tokens"):
        backend.encode([{"role": "user", "content": "word " * 5000}])
    with pytest.raises(ValueError, match="temperature"):
        SamplingParams(temperature=-1)
    with pytest.raises(ValueError, match="n must"):
        SamplingParams(n=0)


def test_new_weights_replace_the_model_and_its_cached_prefix(varied_tiny_model_dir):
    """An RL update must not be served with keys/values cached from the old weights."""
    backend = TransformersBackend(varied_tiny_model_dir)
    request = GenerationRequest(conversations()[0])
    params = SamplingParams(max_new_tokens=6)
    before = backend.generate([request], params)[0][0]  # fills the prefix cache
    state = {name: tensor * 1.5 for name, tensor in backend.model.state_dict().items()}
    backend.load_weights(state)
    after = backend.generate([request], params)[0][0]
    fresh = TransformersBackend(varied_tiny_model_dir, prefix_cache=False)
    fresh.model.load_state_dict(state)
    expected = fresh.generate([request], params)[0][0]
    assert after.logprobs != pytest.approx(before.logprobs, abs=1e-3)
    assert after.token_ids == expected.token_ids
    assert after.logprobs == pytest.approx(expected.logprobs, abs=1e-4)
