"""A small OpenAI-compatible server for a transformers model, with log-probabilities and ``n``.

``transformers serve`` drops both, and RL needs both, so this serves
:class:`~agents.backends.hf.TransformersBackend` behind ``POST /v1/completions``,
``POST /v1/chat/completions``, ``GET /v1/models`` and ``GET /health`` (Flask on waitress, 127.0.0.1 by
default). It speaks the subset agents use, including vLLM's ``return_tokens_as_token_ids``, and
refuses the rest with a JSON error (``{"error": {"type", "message"}}``, 4xx). Request bodies, prompt
counts, ``n``, ``max_tokens`` and prompt lengths are bounded.

Concurrent requests are merged by a micro-batcher: one worker thread takes every request waiting
(up to ``max_batch_rows`` rows) and answers them with one batched generation, so many clients with
one prompt each get the speed of batching, as with vLLM's continuous batching.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, jsonify, request
from waitress.server import create_server
from werkzeug.exceptions import HTTPException

from agents.policy import Generation, SamplingParams, derive_seed

log = logging.getLogger(__name__)

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class ServerLimits:
    """What one request may ask for; the defaults are safe on a shared 2-core machine."""

    host: str = "127.0.0.1"
    port: int = 0
    max_request_bytes: int = 1 << 20
    max_prompts: int = 32
    max_messages: int = 256
    max_n: int = 16
    max_tokens: int = 1024
    max_stop: int = 8
    max_batch_rows: int = 64
    batch_window_s: float = 0.005
    threads: int = 32


class BadRequest(Exception):
    def __init__(self, message: str, kind: str = "invalid_request_error", status: int = 400) -> None:
        super().__init__(message)
        self.message, self.kind, self.status = message, kind, status


@dataclass
class _Job:
    prompts: list[list[int]]
    prefixes: list[int]
    seeds: list[int | None]
    params: SamplingParams
    future: Future = field(default_factory=Future)


class MicroBatcher:
    """Merges concurrent generation jobs with equal sampling parameters into one backend call."""

    def __init__(self, backend: Any, max_rows: int, window_s: float) -> None:
        self.backend = backend
        self.max_rows = max_rows
        self.window_s = window_s
        self.batches = 0  # backend calls made, for tests and logs
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="openai-batcher", daemon=True)
        self._thread.start()

    def submit(self, prompts: list[list[int]], prefixes: list[int], seeds: list[int | None],
               params: SamplingParams) -> list[list[Generation]]:
        job = _Job(prompts, prefixes, seeds, params)
        self._queue.put(job)
        return job.future.result()

    def _collect(self, first: _Job) -> list[_Job]:
        jobs, rows = [first], len(first.prompts) * first.params.n
        deadline = time.monotonic() + self.window_s
        while rows < self.max_rows:
            try:
                job = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if job is None:
                self._queue.put(None)  # stop after this round
                break
            jobs.append(job)
            rows += len(job.prompts) * job.params.n
        return jobs

    def _loop(self) -> None:
        while (first := self._queue.get()) is not None:
            groups: dict[SamplingParams, list[_Job]] = {}
            for job in self._collect(first):
                groups.setdefault(job.params, []).append(job)
            for params, jobs in groups.items():
                self._run(params, jobs)

    def _run(self, params: SamplingParams, jobs: list[_Job]) -> None:
        try:
            results = self.backend.generate_ids(
                [p for job in jobs for p in job.prompts], params,
                [s for job in jobs for s in job.seeds], [x for job in jobs for x in job.prefixes],
            )
            self.batches += 1
        except Exception as exc:  # noqa: BLE001 - the error goes back to every waiting request
            for job in jobs:
                job.future.set_exception(exc)
            return
        start = 0
        for job in jobs:
            job.future.set_result(results[start:start + len(job.prompts)])
            start += len(job.prompts)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=60)


# -- request validation -------------------------------------------------------------------------------
def _field(payload: dict[str, Any], name: str, kinds: type | tuple[type, ...], default: Any) -> Any:
    value = payload.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) and bool not in (kinds if isinstance(kinds, tuple) else (kinds,)):
        raise BadRequest(f"'{name}' must be {getattr(kinds, '__name__', kinds)}, got a boolean")
    if not isinstance(value, kinds):
        raise BadRequest(f"'{name}' has the wrong type ({type(value).__name__})")
    return value


def _sampling(payload: dict[str, Any], limits: ServerLimits, default_max_tokens: int) -> SamplingParams:
    for unsupported in ("stream", "echo"):
        if payload.get(unsupported):
            raise BadRequest(f"'{unsupported}' is not supported by this server")
    if payload.get("best_of") not in (None, 1):
        raise BadRequest("'best_of' is not supported by this server")
    max_tokens = _field(payload, "max_tokens", int, default_max_tokens)
    if payload.get("max_completion_tokens") is not None:
        max_tokens = _field(payload, "max_completion_tokens", int, max_tokens)
    n = _field(payload, "n", int, 1)
    temperature = float(_field(payload, "temperature", (int, float), 1.0))
    top_p = float(_field(payload, "top_p", (int, float), 1.0))
    stop = _field(payload, "stop", (str, list), [])
    stop = [stop] if isinstance(stop, str) else stop
    if not 1 <= max_tokens <= limits.max_tokens:
        raise BadRequest(f"'max_tokens' must be in [1, {limits.max_tokens}], got {max_tokens}")
    if not 1 <= n <= limits.max_n:
        raise BadRequest(f"'n' must be in [1, {limits.max_n}], got {n}")
    if not 0 <= temperature <= 2:
        raise BadRequest(f"'temperature' must be in [0, 2], got {temperature}")
    if not 0 < top_p <= 1:
        raise BadRequest(f"'top_p' must be in (0, 1], got {top_p}")
    if len(stop) > limits.max_stop or not all(isinstance(s, str) and 0 < len(s) <= 200 for s in stop):
        raise BadRequest(f"'stop' must be at most {limits.max_stop} non-empty strings of at most 200 characters")
    return SamplingParams(max_new_tokens=max_tokens, temperature=temperature, top_p=top_p, n=n, stop=tuple(stop))


def _seed(payload: dict[str, Any]) -> int | None:
    return _field(payload, "seed", int, None)


def _prompts(payload: dict[str, Any], tokenizer: Any, limits: ServerLimits) -> list[list[int]]:
    """``prompt`` as a string, a list of strings, a list of token ids, or a list of token-id lists."""
    prompt = payload.get("prompt")
    if isinstance(prompt, str):
        items: list[Any] = [prompt]
    elif isinstance(prompt, list) and prompt and all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
        items = [prompt]
    elif isinstance(prompt, list) and prompt:
        items = prompt
    else:
        raise BadRequest("'prompt' must be a non-empty string, list of strings or list of token ids")
    if len(items) > limits.max_prompts:
        raise BadRequest(f"at most {limits.max_prompts} prompts per request, got {len(items)}")
    ids: list[list[int]] = []
    for item in items:
        if isinstance(item, str) and item:
            ids.append(tokenizer(item, add_special_tokens=False)["input_ids"])
        elif isinstance(item, list) and item and all(
                isinstance(t, int) and not isinstance(t, bool) and 0 <= t < len(tokenizer) for t in item):
            ids.append(list(item))
        else:
            raise BadRequest("each prompt must be a non-empty string or a list of valid token ids")
    return ids


def _messages(payload: dict[str, Any], limits: ServerLimits) -> list[dict[str, str]]:
    messages = payload.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty list")
    if len(messages) > limits.max_messages:
        raise BadRequest(f"at most {limits.max_messages} messages per request, got {len(messages)}")
    clean = []
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in ROLES or not isinstance(
                message.get("content"), str):
            raise BadRequest(f"each message needs a role in {ROLES} and a string 'content'")
        clean.append({"role": message["role"], "content": message["content"]})
    return clean


# -- the app --------------------------------------------------------------------------------------------
def create_app(backend: Any, model_name: str, limits: ServerLimits | None = None) -> Flask:
    """Flask app serving ``backend`` (a :class:`~agents.backends.hf.TransformersBackend`) as ``model_name``."""
    limits = limits or ServerLimits()
    app = Flask("harness-openai")
    app.config["MAX_CONTENT_LENGTH"] = limits.max_request_bytes
    batcher = MicroBatcher(backend, limits.max_batch_rows, limits.batch_window_s)
    app.extensions["harness_batcher"] = batcher
    tokenizer = backend.tokenizer
    context = backend.max_prompt_tokens or 0

    def body() -> dict[str, Any]:
        request.get_data(cache=True)  # an oversized body raises 413 here, before JSON parsing
        payload = request.get_json(silent=True)
        if not isinstance(payload, dict):
            raise BadRequest("the request body must be a JSON object")
        requested = payload.get("model")
        if requested is not None and requested != model_name:
            raise BadRequest(f"model {requested!r} is not served here; this server serves {model_name!r}",
                             kind="model_not_found", status=404)
        return payload

    def check_length(prompts: Sequence[Sequence[int]], params: SamplingParams) -> None:
        longest = max(len(p) for p in prompts)
        if context and longest + params.max_new_tokens > context:
            raise BadRequest(f"prompt ({longest} tokens) + max_tokens ({params.max_new_tokens}) exceeds the "
                             f"model's context of {context} tokens")

    def token_text(token: int, as_ids: bool) -> str:
        return f"token_id:{token}" if as_ids else tokenizer.decode([token])

    def usage(prompts: Sequence[Sequence[int]], generations: Sequence[Generation]) -> dict[str, int]:
        prompt_tokens = sum(len(p) for p in prompts)
        completion = sum(len(g.token_ids or ()) for g in generations)
        return {"prompt_tokens": prompt_tokens, "completion_tokens": completion,
                "total_tokens": prompt_tokens + completion}

    @app.get("/health")
    def health():
        return jsonify(status="ok", model=model_name)

    @app.get("/v1/models")
    def models():
        return jsonify(object="list", data=[{"id": model_name, "object": "model", "owned_by": "harness"}])

    @app.post("/v1/completions")
    def completions():
        payload = body()
        params = _sampling(payload, limits, default_max_tokens=16)
        logprobs = _field(payload, "logprobs", int, None)
        if logprobs not in (None, 0):
            raise BadRequest("only the sampled tokens' log-probabilities are served: use logprobs=0")
        as_ids = bool(_field(payload, "return_tokens_as_token_ids", bool, False))
        prompts = _prompts(payload, tokenizer, limits)
        check_length(prompts, params)
        seed = _seed(payload)
        seeds = [None if seed is None else (seed if len(prompts) == 1 else derive_seed(seed, i))
                 for i in range(len(prompts))]
        results = batcher.submit(prompts, [0] * len(prompts), seeds, params)
        choices = []
        for i, samples in enumerate(results):
            for k, gen in enumerate(samples):
                choice: dict[str, Any] = {"index": i * params.n + k, "text": gen.text,
                                          "finish_reason": gen.finish_reason, "logprobs": None}
                if logprobs is not None:
                    tokens = [token_text(t, as_ids) for t in gen.token_ids]
                    choice["logprobs"] = {"tokens": tokens, "token_logprobs": gen.logprobs,
                                          "top_logprobs": None, "text_offset": None}
                choices.append(choice)
        return jsonify(id=f"cmpl-{uuid.uuid4().hex}", object="text_completion", created=int(time.time()),
                       model=model_name, choices=choices,
                       usage=usage(prompts, [g for samples in results for g in samples]))

    @app.post("/v1/chat/completions")
    def chat_completions():
        payload = body()
        params = _sampling(payload, limits, default_max_tokens=min(256, limits.max_tokens))
        want_logprobs = bool(_field(payload, "logprobs", bool, False))
        if _field(payload, "top_logprobs", int, 0) != 0:
            raise BadRequest("only the sampled tokens' log-probabilities are served: use top_logprobs=0")
        as_ids = bool(_field(payload, "return_tokens_as_token_ids", bool, False))
        messages = _messages(payload, limits)
        try:
            ids = backend.encode(messages)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        check_length([ids], params)
        samples = batcher.submit([ids], [backend.shared_prefix_length(messages, ids)], [_seed(payload)], params)[0]
        choices = []
        for k, gen in enumerate(samples):
            choice: dict[str, Any] = {"index": k, "message": {"role": "assistant", "content": gen.text},
                                      "finish_reason": gen.finish_reason, "logprobs": None}
            if want_logprobs:
                choice["logprobs"] = {"content": [
                    {"token": token_text(t, as_ids), "logprob": lp, "bytes": list(tokenizer.decode([t]).encode()),
                     "top_logprobs": []}
                    for t, lp in zip(gen.token_ids, gen.logprobs, strict=True)]}
            choices.append(choice)
        return jsonify(id=f"chatcmpl-{uuid.uuid4().hex}", object="chat.completion", created=int(time.time()),
                       model=model_name, choices=choices, usage=usage([ids], samples))

    @app.errorhandler(BadRequest)
    def bad_request(exc: BadRequest):
        return jsonify(error={"type": exc.kind, "message": exc.message}), exc.status

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        kind = "payload_too_large" if exc.code == 413 else (exc.name or "http_error").lower().replace(" ", "_")
        return jsonify(error={"type": kind, "message": exc.description or exc.name}), exc.code or 500

    @app.errorhandler(Exception)
    def internal(exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        return jsonify(error={"type": "internal_error", "message": f"{type(exc).__name__}: {exc}"}), 500

    return app


class OpenAIServer:
    """The app on a waitress socket, served from a background thread; ``url`` is known at once.

    Use as a context manager (tests, rollouts) or :meth:`serve_forever` (the CLI).
    """

    def __init__(self, backend: Any, model_name: str, limits: ServerLimits | None = None) -> None:
        self.limits = limits or ServerLimits()
        self.app = create_app(backend, model_name, self.limits)
        self._server = create_server(self.app, host=self.limits.host, port=self.limits.port,
                                     threads=self.limits.threads,
                                     # Flask answers oversize bodies with a JSON 413; waitress is the backstop
                                     max_request_body_size=4 * self.limits.max_request_bytes,
                                     channel_timeout=600)
        self.port = int(self._server.effective_port)
        self.url = f"http://{self.limits.host}:{self.port}"
        self._thread = threading.Thread(target=self._server.run, name="openai-wsgi", daemon=True)
        self._stopped = False

    @property
    def batcher(self) -> MicroBatcher:
        return self.app.extensions["harness_batcher"]

    def start(self) -> OpenAIServer:
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        try:
            self._server.run()
        finally:
            self.stop()

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._server.close()
        self.batcher.close()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
