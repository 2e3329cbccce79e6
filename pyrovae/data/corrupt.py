"""Corruptions of an input: bit flips, Gaussian noise, masked pixels (Vincent et al. 2008)."""

from __future__ import annotations

import torch

from .._util.checks import one_of

__all__ = ["NOISE", "corrupt"]

NOISE = ("flip", "gaussian", "mask")


def corrupt(x: torch.Tensor, noise: str = "flip", amount: float = 0.1, seed: int | None = 0) -> torch.Tensor:
    """Corrupt inputs in [0, 1] for a denoising demonstration.

    :param x: ``(N, *x_shape)``.
    :param noise: ``"flip"`` (flip each pixel with probability ``amount``: salt and pepper for
        binary data), ``"gaussian"`` (add N(0, amount²), clamp to [0, 1], then round if x is
        binary) or ``"mask"`` (zero the bottom ``amount`` share of rows: an occlusion).
    :param amount: strength.
    :param seed: seed of the noise (``None``: the global RNG).
    """
    one_of("noise", noise, NOISE)
    gen = torch.Generator(device=x.device).manual_seed(seed) if seed is not None else None
    if noise == "flip":
        flip = torch.rand(x.shape, generator=gen, device=x.device) < amount
        return torch.where(flip, 1 - x, x)
    if noise == "gaussian":
        y = (x + amount * torch.randn(x.shape, generator=gen, device=x.device)).clamp(0, 1)
        binary = bool(((x == 0) | (x == 1)).all())
        return y.round() if binary else y
    rows = x.shape[-2]
    y = x.clone()
    y[..., rows - round(amount * rows):, :] = 0
    return y
