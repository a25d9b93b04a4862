"""The PRISM probe: per-trajectory gradient norms of every projection matrix of the frozen initial model.

For trajectory ``i`` the loss is the mean next-token cross-entropy over its action tokens, in its
context. For each of the ``7·L`` projections ``y = x Wᵀ`` (attention q, k, v, o and MLP gate, up,
down) the gradient of that loss is ``G_i = Σ_t g_{i,t} x_{i,t}ᵀ`` (``g`` the gradient at the layer's
output, ``x`` its input), and the probe reports ``‖G_i‖_F``.

:func:`batched_norms` gets these for a whole batch in one forward and one backward pass without
forming any per-sample gradient: forward hooks keep each layer's inputs, tensor hooks on the layer
outputs receive ``g``, and per sample

* Gram form: ``‖G‖² = Σ_{t,s} (g_t·g_s)(x_t·x_s)`` = ``sum((X Xᵀ) ⊙ (Γ Γᵀ))``, cost ``T²(d_in+d_out)``;
* outer form: ``‖Γᵀ X‖²``, cost ``T·d_in·d_out``;

whichever is cheaper for that layer and batch. The batch loss is the *sum* over samples of each
sample's mean, so each sample's output-gradients are exactly those of its own loss. Padding is
removed by gathering each sample's real tokens (from all its rows) before the products. No weight
gradient is computed at all (every parameter is frozen; the embedding output is the only leaf that
requires grad).

:func:`naive_norms` is the reference: one backward per trajectory, reading ``.grad``.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from environments.core.trajectory import Trajectory
from prism_train.device import autocast, synchronizer
from prism_train.flops import PROJECTIONS, ModelShape
from prism_train.ledger import Ledger
from prism_train.modeling import Batch, TokenizedTrajectory, pad_rows, target_logprobs, target_row_index
from prism_train.scores import ProbeScore

log = logging.getLogger(__name__)

_LAYER = re.compile(r"(?:^|\.)layers\.(\d+)\.")


@dataclass
class ProbeConfig:
    """How the probe batches and what it measures.

    ``batch_size`` trajectories per forward/backward, fewer when ``max_batch_tokens`` (rows × padded
    length) would be exceeded; ``projections`` the module names probed in every layer;
    ``normalization`` of norms by matrix size before the statistics (``none``, ``numel``,
    ``sqrt-numel``; the paper does not say, so off by default); ``precision`` of the forward pass
    (``auto``: bf16 autocast on GPUs that have it; products are always accumulated in float32);
    ``chunk_elements`` bounds the size of one Gram / outer-product tensor (memory, not results).
    """

    batch_size: int = 16
    max_batch_tokens: int = 65536
    projections: tuple[str, ...] = PROJECTIONS
    normalization: str = "none"
    precision: str = "auto"
    chunk_elements: int = 1 << 27

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.max_batch_tokens < 1 or self.chunk_elements < 1:
            raise ValueError("batch_size, max_batch_tokens and chunk_elements must be positive")
        if not self.projections:
            raise ValueError("projections must name at least one module")


@dataclass(frozen=True)
class Projection:
    label: str  # "<layer>.<name>", e.g. "3.gate_proj"
    module: torch.nn.Linear

    @property
    def numel(self) -> int:
        return self.module.weight.numel()


def find_projections(model: torch.nn.Module, names: Sequence[str] = PROJECTIONS) -> list[Projection]:
    """The probed matrices in (layer, ``names`` order) order; every layer must have every name."""
    found: dict[tuple[int, str], torch.nn.Linear] = {}
    for path, module in model.named_modules():
        leaf = path.rsplit(".", 1)[-1]
        match = _LAYER.search(path)
        if leaf in names and match and isinstance(module, torch.nn.Linear):
            key = (int(match.group(1)), leaf)
            if key in found:
                raise ValueError(f"two modules named {leaf!r} in layer {key[0]}: {path} (a wrapped model? "
                                 "probe the plain base model)")
            found[key] = module
    layers = sorted({layer for layer, _ in found})
    if not layers:
        raise ValueError(f"no linear modules named {list(names)} inside numbered 'layers.<i>.' blocks; "
                         "is this a decoder-only transformer with Llama-style projection names?")
    missing = [f"{layer}.{name}" for layer in layers for name in names if (layer, name) not in found]
    if missing:
        raise ValueError(f"layers lack some projections: {missing[:5]}")
    return [Projection(f"{layer}.{name}", found[(layer, name)]) for layer in layers for name in names]


@contextmanager
def _frozen(model: torch.nn.Module, trainable: Sequence[torch.nn.Parameter] = ()) -> Iterator[None]:
    """Eval mode with only ``trainable`` requiring grad; restores flags and mode afterwards."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    was_training = model.training
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    for p in trainable:
        p.requires_grad_(True)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(was_training)


def _prepare(samples: Sequence[TokenizedTrajectory], device: torch.device) -> tuple[Batch, torch.Tensor]:
    """All rows of ``samples`` (trimmed after their last target), padded; plus each row's sample index."""
    rows = [row.trimmed() for sample in samples for row in sample.rows]
    owner = [i for i, sample in enumerate(samples) for _ in sample.rows]
    return pad_rows(rows, pad_id=0, device=device), torch.tensor(owner, device=device)


def _sample_losses(model: Any, batch: Batch, row_sample: torch.Tensor, samples: int, precision: str) -> torch.Tensor:
    """Each sample's mean cross-entropy over its targets (over all its rows)."""
    with autocast(batch.input_ids.device, precision):
        logprobs = target_logprobs(model, batch)
    sample_of_target = row_sample[target_row_index(batch)]
    counts = torch.bincount(sample_of_target, minlength=samples).clamp(min=1)
    losses = torch.zeros(samples, device=logprobs.device).index_add(0, sample_of_target, -logprobs)
    return losses / counts


def naive_norms(model: Any, sample: TokenizedTrajectory, projections: Sequence[Projection],
                precision: str = "float32") -> tuple[torch.Tensor, float]:
    """Reference: one backward for one trajectory, norms read from ``.grad``. Returns (norms, loss)."""
    weights = [p.module.weight for p in projections]
    with _frozen(model, weights):
        for w in weights:
            w.grad = None
        batch, row_sample = _prepare([sample], next(model.parameters()).device)
        losses = _sample_losses(model, batch, row_sample, 1, precision)
        losses.sum().backward()
        norms = torch.stack([w.grad.float().norm() for w in weights])
        for w in weights:
            w.grad = None
    return norms.detach().cpu(), float(losses.detach())


def gram_is_cheaper(pairs: int, rows: int, width: int, d_in: int, d_out: int) -> bool:
    """Gram form over ``pairs`` row pairs, ``pairs·T²(d_in+d_out)``, vs outer products of ``rows`` rows,
    ``rows·T·d_in·d_out`` (``T`` the padded width)."""
    return pairs * width * (d_in + d_out) < rows * d_in * d_out


class _NormHooks:
    """Forward/backward hooks that turn one batch's activations into per-sample squared norms.

    A sample may span several rows; its gradient is the sum of its rows' ``Γ_rᵀ X_r``. The outer form
    sums those per sample; the Gram form adds ``⟨Γ_aᵀX_a, Γ_bᵀX_b⟩ = Σ (X_a X_bᵀ) ⊙ (Γ_a Γ_bᵀ)`` over
    every pair ``(a, b)`` of rows of the same sample (``a = b`` alone when a sample is one row).
    """

    def __init__(self, projections: Sequence[Projection], attention_mask: torch.Tensor, row_sample: torch.Tensor,
                 samples: int, chunk_elements: int) -> None:
        self.projections = projections
        self.mask = attention_mask[..., None].float()  # [R, T, 1]: real tokens
        self.row_sample = row_sample
        self.samples = samples
        self.rows, self.width = attention_mask.shape
        self.single_rows = self.rows == samples
        rows_of: dict[int, list[int]] = {}
        for row, sample in enumerate(row_sample.tolist()):
            rows_of.setdefault(sample, []).append(row)
        pairs = [(a, b) for rows in rows_of.values() for a in rows for b in rows]
        device = attention_mask.device
        self.pair_a = torch.tensor([a for a, _ in pairs], device=device)
        self.pair_b = torch.tensor([b for _, b in pairs], device=device)
        self.pair_sample = row_sample[self.pair_a]
        self.chunk = chunk_elements
        self.sq_norms = torch.zeros(samples, len(projections), device=device)
        self.flops = 0
        self._inputs: dict[tuple[int, bool], tuple[torch.Tensor, torch.Tensor]] = {}
        self._handles: list[Any] = []

    def _chunks(self, count: int, per_item: int) -> Iterator[slice]:
        step = max(1, self.chunk // max(per_item, 1))
        for start in range(0, count, step):
            yield slice(start, start + step)

    def _input_repr(self, x: torch.Tensor, gram: bool) -> torch.Tensor:
        """Masked input rows, or the Gram blocks of every row pair; shared by projections reading one x."""
        key = (id(x), gram)
        if key not in self._inputs:
            xs = x.detach().float() * self.mask  # padding drops out of every product
            if gram:
                t, d_in = self.width, xs.shape[-1]
                rep = torch.cat([xs[self.pair_a[c]] @ xs[self.pair_b[c]].transpose(1, 2)
                                 for c in self._chunks(len(self.pair_a), t * t)])
                self.flops += 2 * len(self.pair_a) * t * t * d_in
            else:
                rep = xs
            self._inputs[key] = (x, rep)  # keep x alive so its id is not reused within the batch
        return self._inputs[key][1]

    def _forward_hook(self, slot: int):
        def hook(module: torch.nn.Linear, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            if not output.requires_grad:
                return
            gram = gram_is_cheaper(len(self.pair_a), self.rows, self.width, module.in_features, module.out_features)
            rep = self._input_repr(inputs[0], gram)
            output.register_hook(lambda g: self._backward(slot, rep, g, gram))
        return hook

    def _backward(self, slot: int, rep: torch.Tensor, g: torch.Tensor, gram: bool) -> None:
        gs = g.detach().float()
        t, d_out = self.width, gs.shape[-1]
        if gram:
            # Σ_{t,s} (x_t·x_s)(g_t·g_s) = Σ_t g_a,t · Σ_s (X_a X_bᵀ)[t,s] g_b,s: no second Gram matrix.
            parts = [((rep[c] @ gs[self.pair_b[c]]) * gs[self.pair_a[c]]).sum(dim=(1, 2))
                     for c in self._chunks(len(self.pair_a), t * max(t, d_out))]
            self.sq_norms[:, slot].index_add_(0, self.pair_sample, torch.cat(parts))
            self.flops += len(self.pair_a) * (2 * t * t * d_out + 2 * t * d_out)
            return
        d_in = rep.shape[-1]
        sums = None if self.single_rows else torch.zeros(self.samples, d_out, d_in, device=gs.device)
        for c in self._chunks(self.rows, d_in * d_out):
            products = gs[c].transpose(1, 2) @ rep[c]  # each row's gradient [rows, d_out, d_in]
            if sums is None:
                self.sq_norms[c, slot] += products.square().sum(dim=(1, 2))
            else:
                sums.index_add_(0, self.row_sample[c], products)
        if sums is not None:
            self.sq_norms[:, slot] += sums.square().sum(dim=(1, 2))
        self.flops += self.rows * 2 * t * d_in * d_out + self.samples * 2 * d_in * d_out

    def __enter__(self) -> _NormHooks:
        for slot, projection in enumerate(self.projections):
            self._handles.append(projection.module.register_forward_hook(self._forward_hook(slot)))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._inputs.clear()


def _embedding_requires_grad(module: torch.nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor:
    # Parameters are frozen; making the embedding output a grad-requiring leaf gives the backward pass
    # the activation gradients the hooks need and nothing else.
    return output.detach().requires_grad_(True)


def batched_norms(model: Any, samples: Sequence[TokenizedTrajectory], projections: Sequence[Projection],
                  precision: str = "float32", chunk_elements: int = 1 << 27) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Per-sample projection-gradient norms for a batch in one forward and one backward.

    Returns ``(norms [S, M], losses [S], flops spent on the norm products)``.
    """
    if not samples:
        raise ValueError("batched_norms needs at least one trajectory")
    for sample in samples:
        if sample.n_targets == 0:
            raise ValueError(f"trajectory {sample.id!r} has no action tokens to probe")
    with _frozen(model):
        handle = model.get_input_embeddings().register_forward_hook(_embedding_requires_grad)
        try:
            batch, row_sample = _prepare(samples, next(model.parameters()).device)
            with _NormHooks(projections, batch.attention_mask, row_sample, len(samples), chunk_elements) as hooks:
                losses = _sample_losses(model, batch, row_sample, len(samples), precision)
                losses.sum().backward()
        finally:
            handle.remove()
    return hooks.sq_norms.sqrt().cpu(), losses.detach().cpu(), hooks.flops


def _batches(samples: Sequence[TokenizedTrajectory], config: ProbeConfig) -> Iterator[list[int]]:
    """Indices grouped longest-first so that trajectories of similar length share a batch."""
    order = sorted(range(len(samples)), key=lambda i: -max(len(r.input_ids) for r in samples[i].rows))
    batch: list[int] = []
    rows = 0
    for i in order:
        width = max(len(r.input_ids) for r in samples[batch[0]].rows) if batch else 0
        new_rows = rows + len(samples[i].rows)
        if batch and (len(batch) >= config.batch_size or new_rows * width > config.max_batch_tokens):
            yield batch
            batch, new_rows = [], len(samples[i].rows)
        batch.append(i)
        rows = new_rows
    if batch:
        yield batch


def probe(model: Any, trajectories: Sequence[Trajectory], tokenized: Sequence[TokenizedTrajectory],
          config: ProbeConfig | None = None, ledger: Ledger | None = None, method: str = "batched",
          model_name: str = "") -> list[ProbeScore]:
    """Score every trajectory (``tokenized[i]`` is ``trajectories[i]`` as the model sees it).

    ``method="naive"`` runs the per-trajectory reference instead (for checks and benchmarks).
    The work is written to ``ledger`` as phase ``probe``.
    """
    config = config or ProbeConfig()
    if len(trajectories) != len(tokenized):
        raise ValueError(f"{len(trajectories)} trajectories but {len(tokenized)} tokenized trajectories")
    if method not in ("batched", "naive"):
        raise ValueError(f"method must be 'batched' or 'naive', got {method!r}")
    projections = find_projections(model, config.projections)
    shape = ModelShape.from_config(model.config)
    device = next(model.parameters()).device
    ledger = ledger or Ledger(None, strategy="probe")
    norms = torch.zeros(len(tokenized), len(projections))
    losses = torch.zeros(len(tokenized))
    with ledger.phase("probe", sync=synchronizer(device), device=str(device)) as meter:
        start = time.perf_counter()
        for batch in _batches(tokenized, config) if method == "batched" else ([i] for i in range(len(tokenized))):
            samples = [tokenized[i] for i in batch]
            with meter.on_device():
                if method == "batched":
                    n, loss, norm_flops = batched_norms(model, samples, projections, config.precision,
                                                        config.chunk_elements)
                else:
                    n, loss = naive_norms(model, samples[0], projections, config.precision)
                    n, loss, norm_flops = n[None], torch.tensor([loss]), 0
            norms[batch] = n
            losses[batch] = loss
            lengths = [len(r.trimmed().input_ids) for s in samples for r in s.rows]
            targets = sum(s.n_targets for s in samples)
            flops = shape.probe_flops(lengths, targets, norm_flops)
            if method == "naive":  # the reference also forms every projection's weight gradient
                flops += 2 * shape.body_params * sum(lengths)
            meter.add(tokens=sum(lengths), flops=flops)
        meter.meta.update(trajectories=len(tokenized), method=method, matrices=len(projections))
        log.info("probed %d trajectories in %.1fs (%s)", len(tokenized), time.perf_counter() - start, method)
    labels = [p.label for p in projections]
    numels = [p.numel for p in projections]
    return [
        ProbeScore.build(id=t.id, env=t.env, task_id=t.task_id, loss=float(losses[i]),
                         action_tokens=tokenized[i].n_targets, matrices=labels, numels=numels,
                         norms=norms[i].tolist(), normalization=config.normalization, model=model_name)
        for i, t in enumerate(trajectories)
    ]
