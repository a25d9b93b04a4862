"""Analytic floating-point operation counts for decoder-only transformers, from the model's shape.

Conventions (those of Kaplan et al. and PaLM's MFU formula, checked against
``torch.utils.flop_counter.FlopCounterMode`` in ``tests/test_prism_ledger.py``):

* ``N`` counts the non-embedding parameters: every projection of every layer. The input-embedding
  table is a lookup and costs nothing. The output head (``d × V``, tied or not) is a matmul too, but
  only where logits are computed: our trainers and the probe compute them at target positions only,
  generation at sampled positions only, so it is counted per such position (``head_tokens``).
  Norms, rotary and softmax are ignored (< 1 %).
* A forward pass over ``T`` tokens costs ``2·N·T`` (+ ``2·d·V`` per logit position) plus the
  attention term ``4·L·(h·d_head)`` per (query, key) pair (``Q·Kᵀ`` and ``A·V``), over the full
  ``T×T`` score matrix as standard kernels compute it.
* Backward costs twice the forward when weight gradients are needed (``6·N·T`` in all). Frozen
  weights (LoRA, the probe) still need activation gradients (``2·N·T``) but not weight gradients.

No torch here: the leaderboard and the ledger use it on plain numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class ModelShape:
    """The numbers that set a decoder's cost; build it with :meth:`from_config`."""

    num_layers: int
    hidden_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int

    @classmethod
    def from_config(cls, config: Any) -> ModelShape:
        """Read a transformers ``PretrainedConfig`` (or a plain mapping of the same fields)."""
        get = config.get if isinstance(config, Mapping) else lambda key, default=None: getattr(config, key, default)
        missing = [k for k in ("num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size",
                               "vocab_size") if get(k) is None]
        if missing:
            raise ValueError(f"model config lacks {', '.join(missing)}: not a decoder this FLOP model knows")
        heads = int(get("num_attention_heads"))
        hidden = int(get("hidden_size"))
        return cls(
            num_layers=int(get("num_hidden_layers")),
            hidden_size=hidden,
            num_heads=heads,
            num_kv_heads=int(get("num_key_value_heads") or heads),
            head_dim=int(get("head_dim") or hidden // heads),
            intermediate_size=int(get("intermediate_size")),
            vocab_size=int(get("vocab_size")),
        )

    def projection_shapes(self) -> dict[str, tuple[int, int]]:
        """``(d_out, d_in)`` of each of the seven projections of one layer."""
        q = self.num_heads * self.head_dim
        kv = self.num_kv_heads * self.head_dim
        d, ff = self.hidden_size, self.intermediate_size
        return {"q_proj": (q, d), "k_proj": (kv, d), "v_proj": (kv, d), "o_proj": (d, q),
                "gate_proj": (ff, d), "up_proj": (ff, d), "down_proj": (d, ff)}

    @property
    def layer_params(self) -> int:
        return sum(a * b for a, b in self.projection_shapes().values())

    @property
    def body_params(self) -> int:
        """``N`` of the scaling-law convention: every projection of every layer (no embeddings)."""
        return self.num_layers * self.layer_params

    @property
    def head_params(self) -> int:
        """The output head, a ``d × V`` matmul wherever logits are computed."""
        return self.vocab_size * self.hidden_size

    def attention_flops(self, seq_len: int) -> int:
        """Forward attention cost of one sequence (``Q·Kᵀ`` and ``A·V`` over the full ``T×T``)."""
        return 4 * self.num_layers * self.num_heads * self.head_dim * seq_len * seq_len

    def _head(self, seq_lens: list[int], head_tokens: int | None) -> int:
        return sum(seq_lens) if head_tokens is None else head_tokens

    def forward_flops(self, seq_lens: Iterable[int], head_tokens: int | None = None) -> int:
        """One forward pass; ``head_tokens``: positions where logits are computed (default: all)."""
        lens = list(seq_lens)
        return (2 * self.body_params * sum(lens) + 2 * self.head_params * self._head(lens, head_tokens)
                + sum(self.attention_flops(t) for t in lens))

    def train_flops(self, seq_lens: Iterable[int], head_tokens: int | None = None, lora_rank: int = 0,
                    lora_targets: Iterable[str] = PROJECTIONS) -> int:
        """Forward and backward. ``lora_rank=0``: full fine-tuning, ``6·N·T`` (+ the head's share) and
        3× attention.

        With LoRA the base weights and the head are frozen (forward + activation gradients, ``4·N·T``)
        and each adapted projection in ``lora_targets`` adds its two rank-``r`` matmuls, times three.
        """
        lens = list(seq_lens)
        tokens, head = sum(lens), self._head(lens, head_tokens)
        attention = 3 * sum(self.attention_flops(t) for t in lens)
        if not lora_rank:
            return 6 * self.body_params * tokens + 6 * self.head_params * head + attention
        shapes = self.projection_shapes()
        unknown = set(lora_targets) - set(shapes)
        if unknown:
            raise ValueError(f"unknown LoRA targets {sorted(unknown)}; projections are {list(shapes)}")
        adapter = self.num_layers * sum(lora_rank * (shapes[name][0] + shapes[name][1]) for name in lora_targets)
        return 4 * self.body_params * tokens + 6 * adapter * tokens + 4 * self.head_params * head + attention

    def probe_flops(self, seq_lens: Iterable[int], head_tokens: int | None = None, norm_flops: int = 0) -> int:
        """The batched probe: forward + activation gradients (no weight gradients) + the norm products."""
        lens = list(seq_lens)
        return (4 * self.body_params * sum(lens) + 4 * self.head_params * self._head(lens, head_tokens)
                + 3 * sum(self.attention_flops(t) for t in lens) + norm_flops)

    def generation_flops(self, prompt_len: int, new_tokens: int) -> int:
        """Prefill ``prompt_len`` tokens, then decode ``new_tokens`` one at a time with a KV cache
        (logits only where a token is sampled)."""
        per_pair = 4 * self.num_layers * self.num_heads * self.head_dim
        decode_pairs = sum(prompt_len + j + 1 for j in range(new_tokens))
        return (2 * self.body_params * (prompt_len + new_tokens) + 2 * self.head_params * new_tokens
                + per_pair * (prompt_len * prompt_len + decode_pairs))
