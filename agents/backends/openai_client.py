"""Any OpenAI-compatible server: ``/v1/chat/completions`` or ``/v1/completions``.

One HTTP request per prompt, many in flight at once: the server batches them (vLLM's continuous
batching, or our server's micro-batcher), and each request keeps its own seed, so the ``n`` samples
of a group and identical prompts still differ. Log-probabilities are always requested; token ids come
back where the server supports vLLM's ``return_tokens_as_token_ids`` extension (``token_ids=True``:
vLLM and :mod:`agents.server`), otherwise they are ``None``.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from agents.policy import Generation, GenerationRequest, LMBackend, SamplingParams

log = logging.getLogger(__name__)

APIS = ("chat", "completions")
TOKEN_ID_PREFIX = "token_id:"


class OpenAIServerError(RuntimeError):
    """The server refused or failed a request; ``status`` is the HTTP code (0: unreachable)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"OpenAI-compatible server error {status}: {message}")
        self.status = status


class OpenAIBackend(LMBackend):
    """Client of an OpenAI-compatible server; ``base_url`` is the server root (``/v1`` is added)."""

    def __init__(self, base_url: str, model: str | None = None, api: str = "chat", tokenizer: str | None = None,
                 api_key: str | None = None, max_concurrency: int = 32, timeout_s: float = 300.0,
                 token_ids: bool = False, kind: str = "openai") -> None:
        if api not in APIS:
            raise ValueError(f"api must be one of {APIS}, got {api!r}")
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self.kind = kind
        self.base_url = base_url.rstrip("/").removesuffix("/v1")
        self.api = api
        self.timeout_s = timeout_s
        self.token_ids = token_ids
        self.max_concurrency = max_concurrency
        self._local = threading.local()
        self._headers = {"Content-Type": "application/json"}
        key = api_key or os.environ.get("OPENAI_API_KEY")
        if key:
            self._headers["Authorization"] = f"Bearer {key}"
        self.model = model or self._first_model()
        self.tokenizer = None
        if api == "completions":
            self.tokenizer = self._load_tokenizer(tokenizer or self.model)
        self._pool = ThreadPoolExecutor(max_concurrency, thread_name_prefix="openai")

    @staticmethod
    def _load_tokenizer(name: str):
        from transformers import AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(name)
        except OSError as exc:
            raise ValueError(f"the completions API needs the model's chat template: cannot load a tokenizer "
                             f"from {name!r} (give tokenizer=DIR): {exc}") from exc
        if not tokenizer.chat_template:
            raise ValueError(f"tokenizer {name!r} has no chat template")
        return tokenizer

    def _http(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        return self._local.session

    def request(self, method: str, path: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        """One call to the server; errors become :class:`OpenAIServerError` with the server's message."""
        try:
            response = self._http().request(method, self.base_url + path, json=payload, headers=self._headers,
                                            timeout=self.timeout_s)
        except requests.RequestException as exc:
            raise OpenAIServerError(0, f"cannot reach {self.base_url}: {exc}") from exc
        if response.status_code >= 400:
            try:
                error = response.json().get("error", {})
                message = error.get("message", response.text) if isinstance(error, dict) else str(error)
            except ValueError:
                message = response.text[:500]
            raise OpenAIServerError(response.status_code, message)
        return response.json()

    def _first_model(self) -> str:
        models = self.request("GET", "/v1/models").get("data") or []
        if not models:
            raise OpenAIServerError(404, f"{self.base_url} serves no models")
        return str(models[0]["id"])

    def generate(self, requests: Sequence[GenerationRequest], params: SamplingParams) -> list[list[Generation]]:
        return list(self._pool.map(lambda request: self._one(request, params), requests))

    def _payload(self, request: GenerationRequest, params: SamplingParams) -> tuple[str, dict[str, Any]]:
        payload: dict[str, Any] = {
            "model": self.model,
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "n": params.n,
        }
        if params.stop:
            payload["stop"] = list(params.stop)
        if request.seed is not None:
            payload["seed"] = request.seed
        if self.token_ids:
            payload["return_tokens_as_token_ids"] = True
        if self.api == "chat":
            payload.update(messages=request.messages, logprobs=True, top_logprobs=0)
            return "/v1/chat/completions", payload
        prompt = self.tokenizer.apply_chat_template(request.messages, tokenize=False, add_generation_prompt=True)
        payload.update(prompt=prompt, logprobs=0)
        return "/v1/completions", payload

    def _one(self, request: GenerationRequest, params: SamplingParams) -> list[Generation]:
        path, payload = self._payload(request, params)
        body = self.request("POST", path, payload)
        choices = sorted(body.get("choices") or [], key=lambda c: c.get("index", 0))
        if len(choices) != params.n:
            raise OpenAIServerError(502, f"asked for n={params.n} choices, got {len(choices)}")
        prompt_tokens = (body.get("usage") or {}).get("prompt_tokens")
        return [self._generation(choice, prompt_tokens) for choice in choices]

    def _generation(self, choice: dict[str, Any], prompt_tokens: int | None) -> Generation:
        logprobs = choice.get("logprobs") or {}
        if self.api == "chat":
            text = (choice.get("message") or {}).get("content") or ""
            entries = logprobs.get("content") or []
            tokens = [entry.get("token", "") for entry in entries]
            values = [entry.get("logprob") for entry in entries]
        else:
            text = choice.get("text") or ""
            tokens = logprobs.get("tokens") or []
            values = logprobs.get("token_logprobs") or []
        ids = None
        if tokens and all(str(t).startswith(TOKEN_ID_PREFIX) for t in tokens):
            ids = [int(str(t)[len(TOKEN_ID_PREFIX):]) for t in tokens]
        return Generation(
            text=text,
            token_ids=ids,
            logprobs=[float(v) for v in values] if values else None,
            prompt_tokens=prompt_tokens,
            finish_reason=str(choice.get("finish_reason") or ""),
        )

    def load_lora_adapter(self, name: str, path: str) -> None:
        """Load a LoRA adapter into the running server (vLLM with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True)."""
        try:
            response = self._http().post(self.base_url + "/v1/load_lora_adapter",
                                         json={"lora_name": name, "lora_path": str(path)},
                                         headers=self._headers, timeout=self.timeout_s)
        except requests.RequestException as exc:
            raise OpenAIServerError(0, f"cannot reach {self.base_url}: {exc}") from exc
        if response.status_code >= 400:
            raise OpenAIServerError(response.status_code, response.text[:500])

    def describe(self) -> dict[str, Any]:
        return {"backend": self.kind, "model": self.model, "base_url": self.base_url, "api": self.api}

    def close(self) -> None:
        self._pool.shutdown(wait=True)
