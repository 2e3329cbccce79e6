"""Batching helpers shared by evaluation and inspection: where the model lives, and how a
tensor or a loader is walked in batches."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


def _batches(x: torch.Tensor | Iterable, batch_size: int) -> Iterable[torch.Tensor]:
    """Yield batches of ``x`` (a tensor split along dim 0, or the first item of each loader batch)."""
    if isinstance(x, torch.Tensor):
        if x.dim() == 0 or len(x) == 0:
            raise ValueError(f"expected a non-empty batch (N, *x_shape), got shape {tuple(x.shape)}")
        yield from x.split(batch_size)
    else:
        for b in x:
            yield b[0] if isinstance(b, (tuple, list)) else b


def model_device(vae: nn.Module) -> torch.device:
    """The device of the model's parameters (or buffers)."""
    for t in list(vae.parameters()) + list(vae.buffers()):
        return t.device
    return torch.device("cpu")


def as_batch(vae: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """One data point ``x_shape`` or a batch ``(b, *x_shape)`` as a batch on the model's device."""
    x_shape = getattr(vae, "x_shape", None)
    if x_shape is not None and tuple(x.shape) == tuple(x_shape):
        x = x.unsqueeze(0)
    return x.to(model_device(vae))
