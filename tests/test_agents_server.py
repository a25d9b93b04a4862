"""Our OpenAI-compatible server on a real socket, spoken to by the OpenAI client backend."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from agents.backends.hf import TransformersBackend
from agents.backends.openai_client import OpenAIBackend, OpenAIServerError
from agents.policy import GenerationRequest, SamplingParams
from agents.server import OpenAIServer, ServerLimits

MESSAGES = [
    {"role": "system", "content": "You are web shopping. Search for products, then click the buttons. " * 4},
    {"role": "user", "content": "Observation: WebShop [SEP] Instruction: [SEP] red running shoes [SEP] Search"},
]


@pytest.fixture(scope="module")
def backend(varied_tiny_model_dir) -> TransformersBackend:
    return TransformersBackend(varied_tiny_model_dir)


@pytest.fixture(scope="module")
def server(backend):
    with OpenAIServer(backend, "tiny", ServerLimits(max_n=8, max_tokens=64, max_request_bytes=64 * 1024)) as running:
        yield running


@pytest.mark.parametrize("api", ["chat", "completions"])
def test_client_gets_the_same_tokens_and_logprobs_as_in_process(server, backend, varied_tiny_model_dir, api):
    client = OpenAIBackend(server.url, api=api, tokenizer=str(varied_tiny_model_dir), token_ids=True)
    try:
        assert client.model == "tiny"
        params = SamplingParams(max_new_tokens=10, temperature=1.0, n=3)
        remote = client.generate([GenerationRequest(MESSAGES, seed=11)], params)[0]
        local = backend.generate([GenerationRequest(MESSAGES, seed=11)], params)[0]
    finally:
        client.close()
    assert len(remote) == 3 and len({tuple(g.token_ids) for g in remote}) == 3
    for r, loc in zip(remote, local, strict=True):
        assert r.token_ids == loc.token_ids
        assert r.logprobs == pytest.approx(loc.logprobs, abs=1e-4)
        assert r.text == loc.text and r.finish_reason == loc.finish_reason == "length"
        assert r.prompt_tokens == len(backend.encode(MESSAGES))


def test_without_token_ids_a_client_still_gets_logprobs(server):
    client = OpenAIBackend(server.url)
    try:
        [generation] = client.generate([GenerationRequest(MESSAGES)], SamplingParams(max_new_tokens=5))[0]
    finally:
        client.close()
    assert generation.token_ids is None and len(generation.logprobs) == 5


def test_concurrent_requests_are_answered_in_one_batch(server):
    client = OpenAIBackend(server.url, token_ids=True, max_concurrency=8)
    before = server.batcher.batches
    try:
        results = client.generate([GenerationRequest(MESSAGES, seed=s) for s in range(8)],
                                  SamplingParams(max_new_tokens=8, temperature=1.0))
    finally:
        client.close()
    assert len(results) == 8 and all(len(r) == 1 for r in results)
    assert server.batcher.batches - before < 8  # merged by the micro-batcher


def test_completions_response_has_the_openai_shape(server):
    payload = {"prompt": ["hello", "red shoes"], "max_tokens": 4, "n": 2, "logprobs": 0, "temperature": 0}
    body = requests.post(server.url + "/v1/completions", json=payload, timeout=60).json()
    assert body["object"] == "text_completion" and body["model"] == "tiny"
    assert [c["index"] for c in body["choices"]] == [0, 1, 2, 3]
    assert all(len(c["logprobs"]["token_logprobs"]) == 4 for c in body["choices"])
    assert body["usage"]["completion_tokens"] == 16
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + 16
    assert requests.get(server.url + "/health", timeout=5).json()["status"] == "ok"


@pytest.mark.parametrize(("path", "payload", "status", "needle"), [
    ("/v1/chat/completions", {"messages": MESSAGES, "n": 100}, 400, "'n' must be in [1, 8]"),
    ("/v1/chat/completions", {"messages": "hi"}, 400, "'messages' must be a non-empty list"),
    ("/v1/chat/completions", {"messages": [{"role": "robot", "content": "x"}]}, 400, "role"),
    ("/v1/chat/completions", {"messages": MESSAGES, "model": "gpt-9"}, 404, "not served here"),
    ("/v1/chat/completions", {"messages": MESSAGES, "max_tokens": 10_000}, 400, "max_tokens"),
    ("/v1/chat/completions", {"messages": MESSAGES, "stream": True}, 400, "'stream' is not supported"),
    ("/v1/chat/completions", {"messages": MESSAGES, "top_logprobs": 5}, 400, "top_logprobs=0"),
    ("/v1/chat/completions", {"messages": MESSAGES, "temperature": "hot"}, 400, "temperature"),
    ("/v1/completions", {"prompt": [99_999_999]}, 400, "valid token ids"),
    ("/v1/completions", {"prompt": "x", "logprobs": 3}, 400, "logprobs=0"),
    ("/v1/completions", {"prompt": ["x"] * 40}, 400, "at most 32 prompts"),
    ("/v1/completions", {"prompt": "word " * 3000, "max_tokens": 8}, 400, "context"),
])
def test_bad_requests_get_json_errors(server, path, payload, status, needle):
    response = requests.post(server.url + path, json=payload, timeout=60)
    assert response.status_code == status
    assert needle in response.json()["error"]["message"]


def test_malformed_and_oversized_bodies_get_json_errors(server):
    malformed = requests.post(server.url + "/v1/completions", data=b"{not json",
                              headers={"Content-Type": "application/json"}, timeout=10)
    assert malformed.status_code == 400 and "JSON object" in malformed.json()["error"]["message"]
    huge = requests.post(server.url + "/v1/chat/completions", data=b"x" * (128 * 1024), timeout=10)
    assert huge.status_code == 413 and huge.json()["error"]["type"] == "payload_too_large"
    assert requests.get(server.url + "/health", timeout=5).status_code == 200  # still serving


def test_client_errors_carry_the_server_message(server):
    client = OpenAIBackend(server.url, model="nope")
    try:
        with pytest.raises(OpenAIServerError, match="not served here"):
            client.generate([GenerationRequest(MESSAGES)], SamplingParams(max_new_tokens=2))
    finally:
        client.close()
    with pytest.raises(OpenAIServerError, match="cannot reach"):
        OpenAIBackend("http://127.0.0.1:9", timeout_s=2)
    with pytest.raises(ValueError, match="api must be"):
        OpenAIBackend(server.url, api="embeddings")


def test_parallel_chat_clients_each_get_their_own_answer(server, backend):
    params = SamplingParams(max_new_tokens=6)
    variants = [[MESSAGES[0], {"role": "user", "content": f"item number {i}"}] for i in range(4)]
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda m: requests.post(server.url + "/v1/chat/completions", json={
            "messages": m, "max_tokens": 6, "temperature": 0, "logprobs": True,
            "return_tokens_as_token_ids": True}, timeout=60).json(), variants))
    for messages, answer in zip(variants, answers, strict=True):
        expected = backend.generate([GenerationRequest(messages)], params)[0][0]
        tokens = [int(e["token"].removeprefix("token_id:")) for e in answer["choices"][0]["logprobs"]["content"]]
        assert tokens == expected.token_ids


def test_the_ledger_charges_a_phase_to_the_device_its_generation_ran_on(server, varied_tiny_model_dir):
    """Difficulty rollouts through this server are recorded as 'remote' (the client cannot see its hardware),
    the same rollouts in process as this process's CPU: a phase's device is where its generation ran."""
    from agents.registry import make_policy
    from agents.tasks import split_tasks
    from prism_train.ledger import Ledger
    from prism_train.rl import rollout_callback
    from prism_train.routers import Task

    tasks = [Task("webshop", t.task_id, split="test") for t in split_tasks("webshop", "test", 1)]
    ledger = Ledger(None, strategy="difficulty")
    lm = {"max_new_tokens": 4, "few_shot": False, "history": 0}
    policies = {"remote": make_policy("openai", base_url=server.url, **lm),
                "cpu": make_policy("transformers", model=str(varied_tiny_model_dir), **lm)}
    for policy in policies.values():
        try:
            rollout_callback(policy, "webshop", ledger=ledger, max_steps=1)(tasks, 1, 0)
        finally:
            policy.close()
    assert [(e.phase, e.device, e.env_steps) for e in ledger.entries] == [("routing", "remote", 1),
                                                                          ("routing", "cpu", 1)]
