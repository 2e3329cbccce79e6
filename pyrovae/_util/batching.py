"""Batching helpers of the models: where a model lives, and how a tensor or a loader is walked
in batches (the entry points of evaluation and inspection walk data that
:func:`pyrovae.models.validation.checked_data` checked)."""

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
