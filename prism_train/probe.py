"""The PRISM probe: per-trajectory gradient norms of every projection matrix of the frozen initial model.

For trajectory ``i`` the loss is the mean next-token cross-entropy over its action tokens, in its
context. For each of the ``7·L`` projections ``y = x Wᵀ`` (attention q, k, v, o and MLP gate, up,
down) the gradient of that loss is ``G_i = Σ_t g_{i,t} x_{i,t}ᵀ`` (``g`` the gradient at the layer's
output, ``x`` its input), and the probe reports ``‖G_i‖_F``.

:func:`batched_norms` gets these for a whole batch in one forward and one backward pass without
forming any per-sample gradient: forward hooks keep each layer's input (the tensor itself, shared by
the projections that read it), tensor hooks on the layer outputs receive ``g``, and per sample, over
its real tokens only (``T`` of them, all its rows; padding is never copied or multiplied)

* Gram form: ``‖G‖² = Σ_{t,s} (g_t·g_s)(x_t·x_s)`` = ``sum((X Xᵀ) ⊙ (Γ Γᵀ))``, cost ``T²(d_in+d_out)``;
* outer form: ``‖Σ_rows Γᵀ X‖²``, cost ``T·d_in·d_out`` (what the weight gradient itself costs);

whichever is cheaper for that sample and layer. The batch loss is the *sum* over samples of each
sample's mean, so each sample's output-gradients are exactly those of its own loss. No weight
gradient is computed at all (every parameter is frozen; the embedding output is the only leaf that
requires grad). :func:`probe_batches` sizes the batches: large on a GPU, small on a CPU
(:func:`default_batch_tokens`).

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
from prism_train.config import ProbeConfig
from prism_train.device import autocast, synchronizer
from prism_train.flops import PROJECTIONS, ModelShape
from prism_train.ledger import Ledger
from prism_train.modeling import Batch, TokenizedTrajectory, pad_rows, target_logprobs, target_row_index
from prism_train.scores import ProbeScore

log = logging.getLogger(__name__)

_LAYER = re.compile(r"(?:^|\.)layers\.(\d+)\.")


def default_batch_tokens(device: torch.device) -> int:
    """Rows × padded length per pass: large on a GPU, which needs big kernels to be busy; small on a CPU.

    A CPU is as busy with one trajectory as with sixteen, and a pass over sixteen long rows is slower
    per token (measured ~1.5× on 1 thread, see docs/prism_train.md): its activations, tens of MB
    each, are mapped fresh by the allocator on every operation (page faults) and no longer fit in cache.
    """
    return 65536 if device.type == "cuda" else 4096


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


def gram_is_cheaper(tokens: int, d_in: int, d_out: int) -> bool:
    """For one sample of ``tokens`` real tokens (all its rows): the Gram form, ``T²·(d_in + d_out)``,
    against the outer product, ``T·d_in·d_out``."""
    return tokens * (d_in + d_out) < d_in * d_out


class _Layout:
    """Where each sample's real tokens are in the padded batch: its rows and their lengths.

    Rows are right-padded, so a row's real tokens are a prefix of it: a one-row sample is a view of
    the batch, a sample of several rows a concatenation of such views (no padding is ever copied).
    """

    def __init__(self, attention_mask: torch.Tensor, row_sample: torch.Tensor, samples: int) -> None:
        self.rows: list[list[tuple[int, int]]] = [[] for _ in range(samples)]
        for row, (sample, length) in enumerate(zip(row_sample.tolist(), attention_mask.sum(dim=1).tolist(),
                                                   strict=True)):
            self.rows[sample].append((row, length))
        self.tokens = [sum(length for _, length in rows) for rows in self.rows]

    def views(self, t: torch.Tensor, sample: int) -> list[torch.Tensor]:
        """``sample``'s real tokens in ``t`` ``[rows, width, d]``: one ``[length, d]`` view per row, in float32."""
        return [t[row, :length].float() for row, length in self.rows[sample]]


class _Input:
    """One layer input, shared by the projections that read it (q/k/v, gate/up), with the Gram
    matrices made from it. Let go once its last reader's gradient has arrived, so the backward pass
    releases memory as it goes."""

    def __init__(self, x: torch.Tensor) -> None:
        self.x: torch.Tensor | None = x  # the very tensor the hooks saw: holding it keeps its id unique
        self.readers = 0
        self.grams: dict[int, torch.Tensor] = {}

    def read(self) -> None:
        self.readers -= 1
        if self.readers == 0:
            self.x, self.grams = None, {}


class _NormHooks:
    """Forward/backward hooks that turn one batch's activations into per-sample squared norms.

    Per sample (its rows' real tokens concatenated: ``X`` ``[T, d_in]``, ``Γ`` ``[T, d_out]``) the
    gradient is ``Γᵀ X``; its squared norm is taken in whichever form is cheaper for that sample and
    layer: the outer product itself, or ``Σ ((X Xᵀ) Γ) ⊙ Γ`` with ``X Xᵀ`` made once per input.
    """

    def __init__(self, projections: Sequence[Projection], layout: _Layout, chunk_elements: int,
                 device: torch.device) -> None:
        self.projections = projections
        self.layout = layout
        self.chunk = chunk_elements
        self.sq_norms = torch.zeros(len(layout.tokens), len(projections), device=device)
        self.flops = 0
        self._inputs: dict[int, _Input] = {}  # by id: every x is kept alive until the backward, so ids are unique
        self._handles: list[Any] = []

    def _forward_hook(self, slot: int):
        def hook(module: torch.nn.Linear, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            if not output.requires_grad:
                return
            held = self._inputs.setdefault(id(inputs[0]), _Input(inputs[0]))
            held.readers += 1
            output.register_hook(lambda g: self._backward(slot, held, g))
        return hook

    def _backward(self, slot: int, held: _Input, g: torch.Tensor) -> None:
        g, x = g.detach(), held.x.detach()
        d_in, d_out = x.shape[-1], g.shape[-1]
        squares = []
        for sample, tokens in enumerate(self.layout.tokens):
            gs = self.layout.views(g, sample)
            if gram_is_cheaper(tokens, d_in, d_out):
                squares.append(self._gram_square(held, sample, torch.cat(gs)))
            else:
                squares.append(self._outer_square(self.layout.views(x, sample), gs))
        self.sq_norms[:, slot] = torch.stack(squares)
        held.read()

    def _outer_square(self, xs: list[torch.Tensor], gs: list[torch.Tensor]) -> torch.Tensor:
        """``‖Σ_rows Γᵀ X‖²``, summed row by row (no copies), a block of output columns at a time."""
        d_in, d_out = xs[0].shape[1], gs[0].shape[1]
        self.flops += 2 * sum(len(x) for x in xs) * d_in * d_out + 2 * d_in * d_out
        total = torch.zeros((), device=xs[0].device)
        for c in self._chunks(d_out, d_in):
            block = gs[0][:, c].T @ xs[0]
            for x, g in zip(xs[1:], gs[1:], strict=True):
                block.addmm_(g[:, c].T, x)
            total += _dot(block, block)
        return total

    def _gram_square(self, held: _Input, sample: int, g: torch.Tensor) -> torch.Tensor:
        """``Σ_{t,s} (x_t·x_s)(g_t·g_s)`` as ``Σ_t g_t · ((X Xᵀ) Γ)_t``: no second Gram matrix."""
        if sample not in held.grams:
            x = torch.cat(self.layout.views(held.x.detach(), sample))
            held.grams[sample] = x @ x.T
            self.flops += 2 * x.shape[0] ** 2 * x.shape[1]
        gram = held.grams[sample]
        tokens, d_out = g.shape
        self.flops += 2 * tokens * tokens * d_out + 2 * tokens * d_out
        return sum(_dot(gram[c] @ g, g[c]) for c in self._chunks(tokens, max(tokens, d_out)))

    def _chunks(self, count: int, per_item: int) -> Iterator[slice]:
        step = max(1, self.chunk // max(per_item, 1))
        for start in range(0, count, step):
            yield slice(start, start + step)

    def __enter__(self) -> _NormHooks:
        for slot, projection in enumerate(self.projections):
            self._handles.append(projection.module.register_forward_hook(self._forward_hook(slot)))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._inputs.clear()


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``Σ a ⊙ b`` without materialising the product."""
    return torch.dot(a.flatten(), b.flatten())


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
            layout = _Layout(batch.attention_mask, row_sample, len(samples))
            with _NormHooks(projections, layout, chunk_elements, batch.input_ids.device) as hooks:
                losses = _sample_losses(model, batch, row_sample, len(samples), precision)
                losses.sum().backward()
        finally:
            handle.remove()
    return hooks.sq_norms.sqrt().cpu(), losses.detach().cpu(), hooks.flops


def probe_batches(samples: Sequence[TokenizedTrajectory], batch_size: int, max_tokens: int) -> Iterator[list[int]]:
    """Indices grouped longest-first so that trajectories of similar length share a batch: at most
    ``batch_size`` trajectories and ``max_tokens`` rows × padded length (a longer trajectory goes alone)."""
    order = sorted(range(len(samples)), key=lambda i: -max(len(r.input_ids) for r in samples[i].rows))
    batch: list[int] = []
    rows = 0
    for i in order:
        width = max(len(r.input_ids) for r in samples[batch[0]].rows) if batch else 0
        new_rows = rows + len(samples[i].rows)
        if batch and (len(batch) >= batch_size or new_rows * width > max_tokens):
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
    max_tokens = config.max_batch_tokens or default_batch_tokens(device)
    with ledger.phase("probe", sync=synchronizer(device), device=str(device)) as meter:
        start = time.perf_counter()
        batches = probe_batches(tokenized, config.batch_size, max_tokens) if method == "batched" else (
            [i] for i in range(len(tokenized)))
        for batch in batches:
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
