"""Device, precision and randomness: the only place that knows whether we are on a CPU or a GPU.

Trainers ask for ``device="auto"`` and ``precision="auto"``: CUDA with bf16 autocast where the
card supports it, otherwise the CPU in float32. Nothing else in the package names a device.
"""

from __future__ import annotations

import contextlib
import random
import typing
from collections.abc import Callable
from typing import Any

import torch

from prism_train.config import Precision

PRECISIONS = typing.get_args(Precision)


def resolve_device(spec: str = "auto") -> torch.device:
    """``auto`` → the first CUDA device if there is one, else the CPU; anything else is parsed by torch."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {spec!r} asked for, but torch sees no CUDA device")
    return device


def autocast_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device``; ``None`` means plain float32.

    ``auto`` picks bf16 on CUDA cards that support it and float32 elsewhere (CPU bf16 is opt-in:
    faster on some CPUs, but less precise than the tests' tolerances).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else None
    if precision == "float32":
        return None
    return torch.bfloat16 if precision == "bfloat16" else torch.float16


def autocast(device: torch.device, precision: str = "auto") -> contextlib.AbstractContextManager[Any]:
    """An autocast context for the model's forward passes (a no-op in float32)."""
    dtype = autocast_dtype(device, precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def synchronizer(device: torch.device) -> Callable[[], None]:
    """A function that waits for queued kernels, so timers measure the device's work."""
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def seed_everything(seed: int) -> None:
    """Seed Python's and torch's generators (all devices)."""
    random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """Every generator a trainer draws from, in a form ``torch.load(weights_only=True)`` accepts."""
    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {"python": [version, list(internal), gauss], "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
