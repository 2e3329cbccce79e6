"""Loading what ``pyrovae evaluate`` and ``pyrovae inspect`` work on: a checkpoint's model and
the test data as that model sees them."""

from __future__ import annotations

from pathlib import Path

import torch

from ..models import VAE


def load_model(checkpoint: Path, device: str, seed: int) -> VAE:
    """The model of a checkpoint written by ``pyrovae train`` (or ``fit``), in eval mode."""
    from .._util.device import resolve_device
    from ..train.checkpoint import load_checkpoint

    vae, _ = load_checkpoint(checkpoint, map_location=resolve_device(device))
    torch.manual_seed(seed)
    return vae.eval()


def test_data(vae: VAE, n: int | None, data_dir: Path | None, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` MNIST test images and labels, binarised once when the likelihood is binary.

    :raises ValueError: when the model expects another data shape.
    """
    from .. import data

    _, test = data.load_mnist(data_dir)
    x, y = test.images[:n], test.labels[:n]
    if vae.x_shape is not None and tuple(x.shape[1:]) != vae.x_shape:
        raise ValueError(f"the checkpoint's model expects x_shape {vae.x_shape}; MNIST is {tuple(x.shape[1:])}")
    if getattr(vae.likelihood, "binary", False):
        x = data.binarize(x, "static", seed=seed)  # the fixed test binarisation fit uses
    return x, y
