"""Checks of the training data, made once per data set at the entry of training, never per step."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["as_tensor", "check_training_data"]


def as_tensor(data: Any, name: str) -> torch.Tensor:
    """``data`` itself if it is a tensor, else its ``.images`` tensor (an :class:`~pyrovae.data.ImageSet`).

    :raises ValueError: for anything else.
    """
    if isinstance(data, torch.Tensor):
        return data
    images = getattr(data, "images", None)
    if isinstance(images, torch.Tensor):
        return images
    raise ValueError(f"{name} must be a tensor (N, *x_shape) or have an .images tensor, got {type(data).__name__}")


def check_training_data(vae: Any, x: torch.Tensor, binarize: str | None, name: str) -> None:
    """Check a whole data set once, at the boundary: shape, finiteness, support.

    :param vae: the model; its ``check_data`` (shape) and ``likelihood.check`` (support) are used
        where it has them.
    :raises ValueError: naming the problem and what was expected.
    """
    if x.dim() < 2 or len(x) == 0:
        raise ValueError(f"{name} must be a non-empty batch (N, *x_shape), got shape {tuple(x.shape)}")
    check_shape = getattr(vae, "check_data", None)
    if check_shape is not None:
        check_shape(x[:1], support=False)
    if binarize is not None:
        lo, hi = torch.aminmax(x.detach())  # one pass over the data; NaN propagates and fails below
        if bool(lo >= 0) and bool(hi <= 1):
            return
    bad = ~torch.isfinite(x)
    if bad.any():
        raise ValueError(f"{name} contains NaN or inf at {int(bad.sum())} positions; expected finite values")
    if binarize is None:
        check_support = getattr(getattr(vae, "likelihood", None), "check", None)
        if check_support is not None:
            check_support(x)
    elif (x < 0).any() or (x > 1).any():
        raise ValueError(
            f"{name} has values in [{float(x.min()):.4g}, {float(x.max()):.4g}] but binarize={binarize!r} "
            "needs probabilities in [0, 1]"
        )
