"""Checks of the training data, made once per data set at the entry of training, never per step.

There is one check for data, :func:`pyrovae.models.validation.check_data`; this module only
says how training calls it.
"""

from __future__ import annotations

from typing import Any

import torch

from ..models.validation import check_data

__all__ = ["as_tensor", "check_training_data"]


def as_tensor(data: Any, name: str) -> Any:
    """``data``'s ``.images`` tensor if it has one (an :class:`~pyrovae.data.ImageSet`), else
    ``data`` itself, for :func:`check_training_data` to check (a numpy array or a list gets
    its conversion named there)."""
    images = getattr(data, "images", None)
    return images if isinstance(images, torch.Tensor) and not isinstance(data, torch.Tensor) else data


def check_training_data(vae: Any, x: Any, binarize: str | None, name: str) -> torch.Tensor:
    """Check a whole data set once, at the boundary (:func:`~pyrovae.models.validation.check_data`):
    type, shape, dtype, finiteness, and support (probabilities in [0, 1] when ``binarize`` is set,
    else the likelihood's support).

    :param vae: the model.
    :param x: ``(N, *x_shape)``.
    :param binarize: the training's binarisation (``"dynamic"``, ``"static"`` or ``None``).
    :param name: what to call the data in messages.
    :returns: the tensor to train on (cast to the model's dtype where needed).
    :raises TypeError: for data that are not a tensor, naming the conversion.
    :raises ValueError: naming the problem and what was expected.
    """
    return check_data(vae, x, name, binarize=binarize)
