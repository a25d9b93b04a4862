"""The built-in policies, as :class:`~agents.policy_spec.PolicySpec` objects (entry points point here).

Every factory imports its engine inside, so listing policies never loads torch or vLLM.
"""

from __future__ import annotations

from typing import Any

from agents.lm_policy import LMPolicy
from agents.policy import Policy, SamplingParams
from agents.policy_spec import PolicySpec

LM_OPTIONS = {
    "max_new_tokens": "tokens per reply (default 128)",
    "temperature": "0 = greedy (default); above 0 samples",
    "top_p": "nucleus sampling mass (default 1.0)",
    "prompt_style": "react (default: ReAct/AgentGym chat) or verl (verl-agent single turn)",
    "few_shot": "show the worked example episode (default true)",
    "history": "past steps shown in the prompt (default: the environment's; 'all' for every step)",
    "grounding": "none (default: inadmissible actions are sent as written) or nearest (send the nearest admissible)",
}


def _lm_policy(backend: Any, name: str, max_new_tokens: int = 128, temperature: float = 0.0, top_p: float = 1.0,
               prompt_style: str = "react", few_shot: bool = True, history: Any = "default",
               grounding: str = "none") -> LMPolicy:
    sampling = SamplingParams(max_new_tokens=int(max_new_tokens), temperature=float(temperature), top_p=float(top_p))
    if history in ("all", "none", None):
        history = None
    return LMPolicy(backend, sampling, prompt_style=prompt_style, few_shot=bool(few_shot), history=history, name=name,
                    grounding=grounding)


def _transformers(*, model: str, dtype: str = "float32", adapter: str | None = None, max_batch_size: int = 32,
                  prefix_cache: bool = True, threads: int | None = None, seed: int = 0, device: str = "cpu",
                  **lm: Any) -> Policy:
    from agents.backends.hf import TransformersBackend
    from agents.models import resolve_model

    backend = TransformersBackend(resolve_model(model), dtype=dtype, adapter=adapter, max_batch_size=max_batch_size,
                                  prefix_cache=prefix_cache, threads=threads, seed=seed, device=device)
    return _lm_policy(backend, "transformers", **lm)


def _vllm(*, model: str, dtype: str = "auto", adapter: str | None = None, gpu_memory_utilization: float = 0.85,
          max_model_len: int | None = None, **lm: Any) -> Policy:
    from agents.backends.vllm_local import VLLMBackend
    from agents.models import resolve_model

    backend = VLLMBackend(resolve_model(model), dtype=dtype, adapter=adapter,
                          gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len)
    return _lm_policy(backend, "vllm", **lm)


def _openai(*, base_url: str, model: str | None = None, api: str = "chat", tokenizer: str | None = None,
            api_key: str | None = None, max_concurrency: int = 32, timeout_s: float = 300.0,
            token_ids: bool = False, **lm: Any) -> Policy:
    from agents.backends.openai_client import OpenAIBackend

    backend = OpenAIBackend(base_url, model=model, api=api, tokenizer=tokenizer, api_key=api_key,
                            max_concurrency=max_concurrency, timeout_s=timeout_s, token_ids=token_ids)
    return _lm_policy(backend, "openai", **lm)


def _vllm_server(*, base_url: str, model: str | None = None, api: str = "chat", tokenizer: str | None = None,
                 max_concurrency: int = 64, timeout_s: float = 300.0, **lm: Any) -> Policy:
    from agents.backends.openai_client import OpenAIBackend

    backend = OpenAIBackend(base_url, model=model, api=api, tokenizer=tokenizer, max_concurrency=max_concurrency,
                            timeout_s=timeout_s, token_ids=True, kind="vllm-server")
    return _lm_policy(backend, "vllm-server", **lm)


def _expert(**expert_options: Any) -> Policy:
    from agents.scripted import ExpertPolicy

    return ExpertPolicy(**expert_options)


def _random(*, seed: int = 0) -> Policy:
    from agents.scripted import RandomPolicy

    return RandomPolicy(seed=int(seed))


_OPENAI_OPTIONS = {
    "base_url": "server root, e.g. http://127.0.0.1:8000 (required)",
    "model": "model name on the server (default: the first one /v1/models lists)",
    "api": "chat (default: /v1/chat/completions) or completions (/v1/completions, needs a tokenizer)",
    "tokenizer": "tokenizer directory or hub id for the completions API's chat template",
    "max_concurrency": "requests in flight at once",
    "timeout_s": "seconds per request",
}

TRANSFORMERS = PolicySpec(
    "transformers",
    "a causal LM in-process with transformers: batched, KV cache, prefix cache, LoRA adapters",
    _transformers,
    {
        "model": "model directory, hub id, or a prepared name (smollm2, tiny-llama) (required)",
        "dtype": "float32 (default), bfloat16 or float16",
        "adapter": "PEFT LoRA adapter directory",
        "max_batch_size": "rows per forward pass (default 32)",
        "prefix_cache": "reuse the shared system prompt's keys/values (default true)",
        "threads": "torch CPU threads",
        "seed": "seed for prompts that come without one",
        "device": "cpu (default) or cuda",
        **LM_OPTIONS,
    },
)
VLLM = PolicySpec(
    "vllm",
    "vLLM in-process (vllm.LLM), for GPU machines",
    _vllm,
    {
        "model": "model directory or hub id (required)",
        "dtype": "auto (default), float32, bfloat16, float16",
        "adapter": "LoRA adapter directory",
        "gpu_memory_utilization": "fraction of GPU memory vLLM may take (default 0.85)",
        "max_model_len": "context length cap",
        **LM_OPTIONS,
    },
)
OPENAI = PolicySpec(
    "openai",
    "any OpenAI-compatible endpoint (/v1/chat/completions or /v1/completions)",
    _openai,
    {**_OPENAI_OPTIONS, "api_key": "bearer token (default: $OPENAI_API_KEY)",
     "token_ids": "ask for token ids (vLLM's return_tokens_as_token_ids; ours supports it too)", **LM_OPTIONS},
)
VLLM_SERVER = PolicySpec(
    "vllm-server",
    "a vLLM OpenAI-compatible server (token ids and log-probabilities for RL)",
    _vllm_server,
    {**_OPENAI_OPTIONS, **LM_OPTIONS},
)
EXPERT = PolicySpec(
    "expert",
    "the environment's scripted expert (demonstrations)",
    _expert,
    {"max_pages_per_query": "WebShop expert: results pages per query",
     "kind": "ALFWorld expert: walkthrough (the stored oracle plan, default) or search (looks for the object)"},
)
RANDOM = PolicySpec("random", "uniformly random among the available actions", _random,
                    {"seed": "seed of the draws (default 0)"})
