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


def first_tensor(module: nn.Module, floating: bool = False) -> torch.Tensor | None:
    """The module's first parameter (else its first buffer), floating-point only with
    ``floating``, in the order of ``module.parameters()`` and ``module.buffers()``; ``None``
    when there is none. A direct walk of the module tree: it runs on every training step, and
    ``parameters()``'s chain of generators costs several times more."""
    for slot in ("_parameters", "_buffers"):
        found = _first_in(module, slot, floating)
        if found is not None:
            return found
    return None


def _first_in(module: nn.Module, slot: str, floating: bool) -> torch.Tensor | None:
    # pre-order, registration order: the first tensor parameters() (or buffers()) would yield
    for t in getattr(module, slot).values():
        if t is not None and (not floating or t.is_floating_point()):
            return t
    for child in module._modules.values():
        if child is not None:
            found = _first_in(child, slot, floating)
            if found is not None:
                return found
    return None


def model_device(vae: nn.Module) -> torch.device:
    """The device of the model's parameters (or buffers); the CPU when it has neither."""
    t = first_tensor(vae)
    return t.device if t is not None else torch.device("cpu")
