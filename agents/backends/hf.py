"""transformers, in-process: batched generation with left padding and a KV cache.

The decoding loop is ours rather than ``model.generate`` because RL and CPU throughput need things
generate does not give together: per-prompt seeds that make a sample independent of what else shares
its batch, the log-probability of every generated token, stop strings that end one row while the
others go on, and a split of the work that suits a CPU. Prefill is compute-bound there, so batching
it gains nothing and padding it wastes work: each distinct prompt is prefilled alone (the ``n``
samples of a prompt share one prefill), and the rows are then decoded together from one left-padded
KV cache, which is where batching pays (a decode step reads the weights once for the whole batch).
A prefix cache keeps the keys and values of the system message (instructions and worked example,
identical for every episode of a rollout) and starts every prefill from them, as vLLM's prefix
caching does.
"""

from __future__ import annotations

import inspect
import logging
import random
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from transformers.cache_utils import DynamicLayer

from agents.policy import Generation, GenerationRequest, LMBackend, Message, SamplingParams, derive_seed

log = logging.getLogger(__name__)

DTYPES = ("float32", "bfloat16", "float16")
MIN_PREFIX_TOKENS = 32  # shorter shared prefixes are not worth a separate forward pass
PREFIX_CACHE_ENTRIES = 4


class PreallocatedLayer(DynamicLayer):
    """A transformers ``DynamicLayer`` that writes into preallocated buffers.

    ``DynamicLayer`` grows by concatenation, which copies a row's whole cache at every decoding step;
    with 16 rows of 1,700 tokens that copy (1.2 GB per step for SmolLM2) cost more than the model.
    Here a step writes one token per row; past the capacity it falls back to concatenation.
    """

    def __init__(self, keys: Any, values: Any, length: int) -> None:
        super().__init__()
        self._keys, self._values = keys, values
        self.keys, self.values = keys[:, :, :length], values[:, :, :length]
        self.device = keys.device
        self.is_initialized = True

    def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        start = self.keys.shape[-2]
        end = start + key_states.shape[-2]
        if end > self._keys.shape[-2]:
            return super().update(key_states, value_states, *args, **kwargs)
        self._keys[:, :, start:end] = key_states
        self._values[:, :, start:end] = value_states
        self.keys, self.values = self._keys[:, :, :end], self._values[:, :, :end]
        return self.keys, self.values


class TransformersBackend(LMBackend):
    """Any causal LM directory (or hub id, where the network allows) with an optional LoRA adapter.

    ``max_batch_size`` rows and ``max_batch_tokens`` (rows x padded length) bound one forward pass;
    larger batches are split into length-sorted micro-batches. ``prefix_cache`` keeps the keys/values
    of the last few system messages.
    """

    kind = "transformers"

    def __init__(
        self,
        model: str | Path,
        dtype: str = "float32",
        adapter: str | Path | None = None,
        device: str = "cpu",
        max_batch_size: int = 32,
        max_batch_tokens: int = 65536,
        max_prompt_tokens: int | None = None,
        seed: int = 0,
        threads: int | None = None,
        prefix_cache: bool = True,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
        if max_batch_size < 1 or max_batch_tokens < 1:
            raise ValueError("max_batch_size and max_batch_tokens must be positive")
        if threads is not None:
            torch.set_num_threads(threads)
        self.model_name = str(model)
        self.dtype = dtype
        self.device = torch.device(device)
        self.max_batch_size = max_batch_size
        self.max_batch_tokens = max_batch_tokens
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_name)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if not self.tokenizer.chat_template:
            raise ValueError(f"{self.model_name} has no chat template; agents need a chat (instruct) model")
        self.model = AutoModelForCausalLM.from_pretrained(self.model_name, dtype=getattr(torch, dtype))
        self.model.to(self.device).eval()
        # transformers 5 renamed past_key_values to cache; a PEFT wrapper passes either through
        self._cache_arg = "cache" if "cache" in inspect.signature(self.model.forward).parameters else "past_key_values"
        self.adapters: dict[str, str] = {}
        self.prefix_cache = prefix_cache
        self._prefixes: OrderedDict[tuple[int, ...], list[tuple[Any, Any]]] = OrderedDict()
        if adapter is not None:
            self.load_adapter(adapter)
        limit = getattr(self.model.config, "max_position_embeddings", None)
        self.max_prompt_tokens = max_prompt_tokens or limit
        self._rng = random.Random(seed)
        self._eos_ids = self._stop_token_ids()

    def _stop_token_ids(self) -> set[int]:
        ids = {self.tokenizer.eos_token_id}
        configured = getattr(self.model.generation_config, "eos_token_id", None)
        if configured is not None:
            ids |= set(configured) if isinstance(configured, list | tuple) else {configured}
        return {i for i in ids if i is not None}

    def load_adapter(self, path: str | Path, name: str = "default") -> None:
        """Load a PEFT LoRA adapter (directory written by ``save_pretrained``) and make it active."""
        from peft import PeftModel

        path = Path(path)
        if not (path / "adapter_config.json").is_file():
            raise FileNotFoundError(f"{path} is not a PEFT adapter directory (no adapter_config.json)")
        if isinstance(self.model, PeftModel):
            if name in self.adapters:
                self.model.delete_adapter(name)
            self.model.load_adapter(str(path), adapter_name=name)
        else:
            self.model = PeftModel.from_pretrained(self.model, str(path), adapter_name=name)
        self.model.set_adapter(name)
        self.model.eval()
        self._prefixes.clear()  # cached keys/values belong to the previous weights
        self.adapters[name] = str(path)
        log.info("loaded LoRA adapter %r from %s", name, path)

    def load_weights(self, state_dict: dict[str, Any]) -> None:
        """Replace the model's weights (an RL learner's update); cached prefix keys/values are dropped."""
        self.model.load_state_dict(state_dict)
        self._prefixes.clear()

    def _template(self, messages: Sequence[Message], add_generation_prompt: bool) -> list[int]:
        text = self.tokenizer.apply_chat_template(list(messages), tokenize=False,
                                                  add_generation_prompt=add_generation_prompt)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def encode(self, messages: Sequence[Message]) -> list[int]:
        """Token ids of the chat-templated prompt, ending with the assistant header."""
        ids = self._template(messages, add_generation_prompt=True)
        if self.max_prompt_tokens and len(ids) > self.max_prompt_tokens:
            raise ValueError(
                f"prompt has {len(ids)} tokens; {self.model_name} takes at most {self.max_prompt_tokens} "
                "(shorten the history window of the prompt format)"
            )
        return ids

    def shared_prefix_length(self, messages: Sequence[Message], ids: Sequence[int]) -> int:
        """How many leading tokens of ``ids`` are the system message, which other prompts share."""
        if not self.prefix_cache or len(messages) < 2 or messages[0].get("role") != "system":
            return 0
        head = self._template(messages[:1], add_generation_prompt=False)
        common = 0
        for a, b in zip(head, ids, strict=False):
            if a != b:
                break
            common += 1
        return common if MIN_PREFIX_TOKENS <= common < len(ids) else 0

    def generate(self, requests: Sequence[GenerationRequest], params: SamplingParams) -> list[list[Generation]]:
        prompts = [self.encode(request.messages) for request in requests]
        prefixes = [self.shared_prefix_length(request.messages, ids)
                    for request, ids in zip(requests, prompts, strict=True)]
        return self.generate_ids(prompts, params, [request.seed for request in requests], prefixes)

    def generate_ids(self, prompts: Sequence[Sequence[int]], params: SamplingParams,
                     seeds: Sequence[int | None] | None = None,
                     prefix_lengths: Sequence[int] | None = None) -> list[list[Generation]]:
        """Like :meth:`generate` for already tokenised prompts (the OpenAI-compatible server uses it).

        ``prefix_lengths[i]`` leading tokens of prompt ``i`` may be served from the prefix cache.
        """
        seeds = list(seeds) if seeds is not None else [None] * len(prompts)
        prefix_lengths = list(prefix_lengths) if prefix_lengths is not None else [0] * len(prompts)
        rows: list[tuple[int, int, int]] = []  # (prompt index, sample index, row seed)
        for i, seed in enumerate(seeds):
            base = seed if seed is not None else self._rng.randrange(2**31 - 1)
            rows.extend((i, k, derive_seed(base, k)) for k in range(params.n))
        results: list[list[Generation | None]] = [[None] * params.n for _ in prompts]
        for chunk in self._micro_batches(rows, prompts, params.max_new_tokens):
            outputs = self._decode([prompts[i] for i, _, _ in chunk], [prefix_lengths[i] for i, _, _ in chunk],
                                   [s for _, _, s in chunk], params)
            for (i, k, _), generation in zip(chunk, outputs, strict=True):
                results[i][k] = generation
        return results  # type: ignore[return-value]

    def _micro_batches(self, rows, prompts, max_new_tokens: int):
        """Rows sorted by prompt length, cut so that rows x padded length stays within the budget."""
        order = sorted(rows, key=lambda row: len(prompts[row[0]]), reverse=True)
        chunk: list[tuple[int, int, int]] = []
        for row in order:
            width = len(prompts[chunk[0][0]]) + max_new_tokens if chunk else 0
            if chunk and (len(chunk) >= self.max_batch_size or (len(chunk) + 1) * width > self.max_batch_tokens):
                yield chunk
                chunk = []
            chunk.append(row)
        if chunk:
            yield chunk

    def _prefill(self, prompt: Sequence[int], prefix_length: int) -> tuple[list[tuple[Any, Any]], Any]:
        """Keys/values of one prompt (batch of one, no padding) and the logits of its next token."""
        import torch

        prefix = tuple(prompt[:prefix_length])
        cache = self._new_cache(prefix)
        mask = torch.ones((1, len(prompt)), dtype=torch.long, device=self.device)
        out = self.model(input_ids=torch.tensor([list(prompt[prefix_length:])], device=self.device),
                         attention_mask=mask,
                         position_ids=torch.arange(prefix_length, len(prompt), device=self.device)[None],
                         use_cache=True, logits_to_keep=1, **{self._cache_arg: cache})
        return [(layer.keys, layer.values) for layer in cache.layers], out.logits[0, -1, :].float()

    def _decode(self, prompts: list[Sequence[int]], prefix_lengths: list[int], seeds: list[int],
                params: SamplingParams) -> list[Generation]:
        """Decode one micro-batch: prefill each distinct prompt alone, then decode all rows together.

        On a CPU, prefill is compute-bound: batching it gains nothing and padding it wastes work, so
        each distinct prompt is prefilled on its own (the ``n`` samples of a prompt share one prefill)
        and its keys/values are left-padded into one batched cache. Decoding, which is bound by
        reading the weights once per step, is where the batch pays. Each row keeps the positions it
        would have alone; padded cache slots are masked out.
        """
        import torch
        from transformers import DynamicCache

        batch, width = len(prompts), max(len(p) for p in prompts)
        with torch.inference_mode():
            unique: dict[tuple[int, ...], int] = {}
            prefilled = []
            for prompt, prefix_length in zip(prompts, prefix_lengths, strict=True):
                if tuple(prompt) not in unique:
                    unique[tuple(prompt)] = len(prefilled)
                    prefilled.append(self._prefill(prompt, prefix_length))
            rows = [unique[tuple(prompt)] for prompt in prompts]
            cache = DynamicCache(config=self.model.config)
            capacity = width + params.max_new_tokens
            layers = []
            for layer in range(len(prefilled[0][0])):
                keys0, values0 = prefilled[0][0][layer]
                keys = keys0.new_zeros((batch, keys0.shape[1], capacity, keys0.shape[3]))
                values = values0.new_zeros((batch, values0.shape[1], capacity, values0.shape[3]))
                for row, source in enumerate(rows):
                    row_keys, row_values = prefilled[source][0][layer]
                    keys[row, :, width - row_keys.shape[2]:width] = row_keys[0]
                    values[row, :, width - row_values.shape[2]:width] = row_values[0]
                layers.append(PreallocatedLayer(keys, values, width))
            cache.layers = layers
            logits = torch.stack([prefilled[source][1] for source in rows])
            del prefilled
        mask = torch.zeros((batch, width), dtype=torch.long, device=self.device)
        for row, prompt in enumerate(prompts):
            mask[row, width - len(prompt):] = 1
        positions = torch.tensor([[len(prompt)] for prompt in prompts], device=self.device)
        generators = [torch.Generator(device=self.device).manual_seed(seed) for seed in seeds]
        tokens: list[list[int]] = [[] for _ in prompts]
        logprobs: list[list[float]] = [[] for _ in prompts]
        texts = [""] * batch
        finish = [""] * batch
        with torch.inference_mode():
            for step in range(params.max_new_tokens):
                chosen = self._choose(logits, params, generators)
                chosen_logp = torch.log_softmax(logits, dim=-1).gather(1, chosen[:, None])[:, 0]
                for row in range(batch):
                    if finish[row]:
                        continue
                    token = int(chosen[row])
                    tokens[row].append(token)
                    logprobs[row].append(float(chosen_logp[row]))
                    finish[row], texts[row] = self._check_stop(tokens[row], token, params)
                if all(finish) or step == params.max_new_tokens - 1:
                    break
                mask = torch.cat([mask, mask.new_ones((batch, 1))], dim=1)
                out = self.model(input_ids=chosen[:, None].to(self.device), attention_mask=mask,
                                 position_ids=positions, use_cache=True, logits_to_keep=1,
                                 **{self._cache_arg: cache})
                logits = out.logits[:, -1, :].float()
                positions = positions + 1
        generations = []
        for row, prompt in enumerate(prompts):
            if not finish[row]:
                finish[row], texts[row] = "length", self._text(tokens[row])
            generations.append(Generation(texts[row], tokens[row], logprobs[row], len(prompt), finish[row]))
        return generations

    def _new_cache(self, prefix: tuple[int, ...]) -> Any:
        """A KV cache for one row, already holding ``prefix`` (computed once, then reused)."""
        from transformers import DynamicCache

        if not prefix:
            return DynamicCache(config=self.model.config)
        if prefix in self._prefixes:
            self._prefixes.move_to_end(prefix)
        else:
            import torch

            cache = DynamicCache(config=self.model.config)
            with torch.inference_mode():
                self.model(input_ids=torch.tensor([prefix], device=self.device), use_cache=True, logits_to_keep=1,
                           **{self._cache_arg: cache})
            self._prefixes[prefix] = [(layer.keys, layer.values) for layer in cache.layers]
            while len(self._prefixes) > PREFIX_CACHE_ENTRIES:
                self._prefixes.popitem(last=False)
        return DynamicCache(ddp_cache_data=self._prefixes[prefix], config=self.model.config)

    @staticmethod
    def _choose(logits, params: SamplingParams, generators) -> Any:
        """Greedy argmax, or a sample from the temperature/top-p distribution with each row's own generator."""
        import torch

        if params.greedy:
            return logits.argmax(dim=-1)
        probs = torch.softmax(logits / params.temperature, dim=-1)
        if params.top_p < 1.0:
            sorted_probs, order = probs.sort(dim=-1, descending=True)
            outside = sorted_probs.cumsum(dim=-1) - sorted_probs > params.top_p
            sorted_probs = sorted_probs.masked_fill(outside, 0.0)
            probs = torch.zeros_like(probs).scatter(1, order, sorted_probs)
        return torch.stack([torch.multinomial(probs[row], 1, generator=gen)[0]
                            for row, gen in enumerate(generators)])

    def _text(self, tokens: list[int]) -> str:
        return self.tokenizer.decode(tokens, skip_special_tokens=True)

    def _check_stop(self, tokens: list[int], last: int, params: SamplingParams) -> tuple[str, str]:
        """(finish reason or "", text): an end-of-sequence token or a stop string ends the row."""
        if last in self._eos_ids:
            return "stop", self._text(tokens)
        if not params.stop:
            return "", ""
        text = self._text(tokens)
        cuts = [text.find(stop) for stop in params.stop if stop in text]
        if cuts:
            return "stop", text[: min(cuts)]
        return "", ""

    def describe(self) -> dict[str, Any]:
        return {"backend": self.kind, "model": self.model_name, "dtype": self.dtype,
                "adapters": dict(self.adapters)}

    def compute_device(self) -> str:
        return str(self.device)

    def close(self) -> None:
        self.model = None
