"""Token rows, padding, and log-probabilities of target tokens, shared by the probe, SFT and RL.

A trajectory becomes one or more *rows* of token ids with a mask marking the tokens the policy
produced (the targets). Losses and log-probabilities are computed only where the mask is set: the
output head runs on the target positions alone, so a 150k-token vocabulary never materialises a
``batch × length × vocab`` tensor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch


@dataclass(frozen=True)
class TokenRow:
    """One model input: token ids and, per token, whether it is a target (an action token)."""

    input_ids: list[int]
    target_mask: list[bool]

    def __post_init__(self) -> None:
        if len(self.input_ids) != len(self.target_mask):
            raise ValueError(f"{len(self.input_ids)} token ids but {len(self.target_mask)} mask entries")
        if self.target_mask and self.target_mask[0]:
            raise ValueError("the first token cannot be a target: nothing precedes it to predict it")

    @property
    def n_targets(self) -> int:
        return sum(self.target_mask)

    def trimmed(self) -> TokenRow:
        """Without the tokens after the last target: they influence no target's loss."""
        last = max((i for i, m in enumerate(self.target_mask) if m), default=-1)
        return TokenRow(self.input_ids[: last + 1], self.target_mask[: last + 1])


@dataclass(frozen=True)
class TokenizedTrajectory:
    """A trajectory as the model sees it: usually one row, several when its prompts do not chain."""

    id: str
    rows: list[TokenRow]

    @property
    def n_tokens(self) -> int:
        return sum(len(r.input_ids) for r in self.rows)

    @property
    def n_targets(self) -> int:
        return sum(r.n_targets for r in self.rows)


@dataclass
class Batch:
    """Right-padded rows on a device; ``target_mask[r, t]`` marks ``input_ids[r, t]`` as a target."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    target_mask: torch.Tensor

    @property
    def lengths(self) -> list[int]:
        return self.attention_mask.sum(dim=1).tolist()


def pad_rows(rows: Sequence[TokenRow], pad_id: int, device: torch.device | str = "cpu") -> Batch:
    if not rows:
        raise ValueError("cannot pad an empty batch")
    width = max(len(r.input_ids) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    targets = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, row in enumerate(rows):
        n = len(row.input_ids)
        ids[i, :n] = torch.tensor(row.input_ids, dtype=torch.long)
        attention[i, :n] = 1
        targets[i, :n] = torch.tensor(row.target_mask, dtype=torch.bool)
    return Batch(ids.to(device), attention.to(device), targets.to(device))


def target_logprobs(model: Any, batch: Batch) -> torch.Tensor:
    """``log p(target token | everything before it)`` for every target of ``batch``, in row-major order.

    Runs the decoder once, then the output head on the positions that predict a target only.
    Works for transformers causal LMs and PEFT wrappers of them (Llama, Qwen, Mistral, Gemma...).
    Rows are right-padded, so under causal attention no real token can see a pad: the decoder runs
    without an attention mask, which lets SDPA / flash attention take their causal fast path (what
    pads compute is never used, and no gradient reaches them).
    """
    hidden = model.get_decoder()(input_ids=batch.input_ids).last_hidden_state
    predicts = batch.target_mask[:, 1:]  # hidden state at t predicts token t+1
    logits = model.get_output_embeddings()(hidden[:, :-1][predicts]).float()
    softcap = getattr(model.config, "final_logit_softcapping", None)
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    targets = batch.input_ids[:, 1:][predicts]
    return torch.log_softmax(logits, dim=-1).gather(1, targets[:, None])[:, 0]


def target_row_index(batch: Batch) -> torch.Tensor:
    """Row index of each value :func:`target_logprobs` returns."""
    predicts = batch.target_mask[:, 1:]
    rows = torch.arange(predicts.shape[0], device=predicts.device)[:, None]
    return rows.expand_as(predicts)[predicts]


def load_causal_lm(path: str | Path, dtype: str = "float32", device: torch.device | str = "cpu") -> Any:
    """A transformers causal LM from a model directory, in ``dtype`` on ``device``."""
    from transformers import AutoModelForCausalLM

    if not hasattr(torch, dtype) or not isinstance(getattr(torch, dtype), torch.dtype):
        raise ValueError(f"unknown dtype {dtype!r}; use float32, bfloat16 or float16")
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=getattr(torch, dtype))
    return model.to(device)


def load_tokenizer(path: str | Path) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
