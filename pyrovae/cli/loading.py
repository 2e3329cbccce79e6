"""Loading what ``pyrovae evaluate`` and ``pyrovae inspect`` work on: a checkpoint's model and
the test data as that model sees them."""

from __future__ import annotations

from pathlib import Path

import torch

from ..models import VAE
from .errors import UsageError, user_errors


def checkpoint_path(path: Path) -> Path:
    """A checkpoint file, or the run folder that holds ``checkpoint.pt``."""
    path = Path(path)
    return path / "checkpoint.pt" if path.is_dir() else path


def load_model(checkpoint: Path, device: str, seed: int) -> VAE:
    """The model of a checkpoint written by ``pyrovae train`` (or ``fit``), in eval mode.

    :raises UsageError: when the file is missing, unreadable or not a checkpoint.
    """
    from .._util.device import resolve_device
    from ..train.checkpoint import CheckpointError, load_checkpoint

    with user_errors("", CheckpointError, OSError):
        vae, _ = load_checkpoint(checkpoint_path(checkpoint), map_location=resolve_device(device))
    torch.manual_seed(seed)
    return vae.eval()


def load_mnist(data_dir: Path | None):
    """:func:`pyrovae.data.load_mnist`, its failures (offline, bad folder) as one-line usage errors."""
    from .. import data

    with user_errors("cannot load MNIST (--data)", OSError, RuntimeError, ValueError):
        return data.load_mnist(data_dir)


def test_data(vae: VAE, n: int | None, data_dir: Path | None, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` MNIST test images and labels, binarised once when the likelihood is binary.

    :raises UsageError: when the data cannot be loaded or the model expects another shape.
    """
    from .. import data

    _, test = load_mnist(data_dir)
    x, y = test.images[:n], test.labels[:n]
    if vae.x_shape is not None and tuple(x.shape[1:]) != vae.x_shape:
        raise UsageError(f"the checkpoint's model expects x_shape {vae.x_shape}; MNIST is {tuple(x.shape[1:])}")
    if getattr(vae.likelihood, "binary", False):
        x = data.binarize(x, "static", seed=seed)  # the fixed test binarisation fit uses
    return x, y
