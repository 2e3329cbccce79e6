"""Loading what the commands work on: the data a ``--data SOURCE`` names, and a checkpoint's
model with the test data it was trained against (the checkpoint records its data source)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from ..data.sources import DataSource, DataSourceError, load_source
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


def load_mnist(data_root: Path | None):
    """:func:`pyrovae.data.load_mnist`, its failures (offline, bad folder) as one-line usage errors."""
    from .. import data
    from .args import check_data_folder

    check_data_folder(data_root)
    with user_errors("cannot load MNIST (--data-root)", OSError, RuntimeError, ValueError):
        return data.load_mnist(data_root)


def load_data(source: str | None, data_root: Path | None, image_size: tuple[int, int] | None = None,
              spec: dict[str, Any] | None = None) -> DataSource:
    """The :class:`DataSource` of ``--data`` (or of a checkpoint's recorded ``spec``).

    A ``--data`` folder that holds ``MNIST/raw`` is MNIST with that folder as its root, as
    ``--data`` meant before other sources existed.

    :raises UsageError: for a source that cannot be read, naming why and the fix.
    """
    from .args import check_data_folder

    check_data_folder(data_root)
    keywords = dict(spec or {"source": source, "image_size": image_size})
    folder = Path(str(keywords["source"])).expanduser() if keywords["source"] else None
    if folder is not None and (folder / "MNIST" / "raw").is_dir():
        keywords["source"], data_root = "mnist", folder
    if keywords.get("image_size") is not None:
        keywords["image_size"] = tuple(keywords["image_size"])
    try:
        return load_source(**keywords, root=data_root)
    except (DataSourceError, OSError, RuntimeError) as e:
        hint = f" (to download MNIST into it: --data mnist --data-root {folder})" if folder and folder.is_dir() else ""
        raise UsageError(f"--data: {e}{hint}") from e


def test_data(vae: VAE, n: int | None, args: argparse.Namespace,
              seed: int = 0) -> tuple[torch.Tensor, torch.Tensor | None, DataSource]:
    """The first ``n`` test points of the model's data source (``--data`` if given, else the one
    the checkpoint records, else MNIST) and their labels (or ``None``), binarised once when the
    likelihood is binary; and the source.

    :raises UsageError: when the data cannot be loaded, or do not pass
        :func:`~pyrovae.models.validation.check_data` (another shape, values outside the
        likelihood's support, ...).
    """
    from .. import data
    from ..models.validation import check_data

    spec = None if args.data else (vae.config or {}).get("extra", {}).get("data")
    src = load_data(args.data, args.data_root, getattr(args, "image_size", None), spec)
    x, y = src.test[:n], None if src.test_labels is None else src.test_labels[:n]
    binary = getattr(vae.likelihood, "binary", False)
    try:
        x = check_data(vae, x, "the test data", binarize="static" if binary else None)  # once, before any work
    except (ValueError, TypeError) as e:
        other = vae.x_shape is not None and tuple(x.shape[1:]) != tuple(vae.x_shape)
        hint = "; pass the --data the checkpoint was trained on" if other else ""
        raise UsageError(f"--data {src.spec['source']}: {e}{hint}") from e
    if binary:
        x = data.binarize(x, "static", seed=seed)  # the fixed test binarisation fit uses
    return x, y, src
