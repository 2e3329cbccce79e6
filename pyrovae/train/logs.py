"""Per-epoch logs of a run, as callbacks: a CSV file beside the checkpoint and TensorBoard scalars.

Both are written by the :class:`~pyrovae.train.Trainer` itself when asked (a checkpoint path
gives the CSV, ``tensorboard=DIR`` the scalars), on rank 0 only. The CSV is rewritten whole,
atomically, every epoch from the history, so after a resume it continues where the checkpoint's
history left off.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from .._util.files import atomic_write_bytes
from .callbacks import Callback
from .history import History

if TYPE_CHECKING:  # pragma: no cover
    from .trainer import Trainer

__all__ = ["CSVLog", "TensorBoardLog", "csv_path", "current_lr"]

TENSORBOARD_HINT = "TensorBoard logging needs the tensorboard package: pip install pyrovae[tensorboard]"


def current_lr(optimizer: Any) -> float | None:
    """The learning rate of a torch optimiser's first group, or of a ``pyro.optim`` optimiser's
    first per-parameter optimiser (``None`` before it has made one)."""
    groups = getattr(optimizer, "param_groups", None)
    if groups is None:
        objs = list(getattr(optimizer, "optim_objs", {}).values())
        if not objs:
            return None
        inner = getattr(objs[0], "optimizer", objs[0])  # a scheduler wraps its optimiser
        groups = inner.param_groups
    return float(groups[0]["lr"])


def csv_path(checkpoint: str | os.PathLike) -> Path:
    """Where the CSV log of a run with this checkpoint goes: the same name, suffix ``.csv``."""
    path = Path(checkpoint)
    if path.suffix == ".csv":
        raise ValueError(f"the checkpoint {path} ends in .csv, the name of its own log; give it another suffix")
    return path.with_suffix(".csv")


class CSVLog(Callback):
    """Rewrites ``path`` with one row per epoch of the history (columns: the history's fields)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def on_epoch_end(self, trainer: Trainer, epoch: int) -> None:
        write_csv(self.path, trainer.history)


def write_csv(path: str | os.PathLike, history: History) -> None:
    """Write ``history`` as CSV, atomically; ``None`` is an empty cell."""
    names = [f.name for f in dataclasses.fields(History)]
    text = io.StringIO()
    out = csv.writer(text, lineterminator="\n")
    out.writerow(names)
    columns = [getattr(history, n) for n in names]
    for row in zip(*columns):
        out.writerow("" if v is None else v for v in row)
    atomic_write_bytes(path, text.getvalue().encode())


def _summary_writer() -> Callable[[str], Any]:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:  # torch imports it lazily and needs the tensorboard package
        raise ImportError(f"{TENSORBOARD_HINT} ({e})") from e
    return SummaryWriter


class TensorBoardLog(Callback):
    """Scalars per epoch under ``log_dir``: ``elbo/train``, ``elbo/test``, ``test/recon``,
    ``test/kl``, ``beta`` and ``lr`` (those that have a value).

    :param log_dir: the event files' folder.
    :param writer: a ``log_dir -> SummaryWriter`` factory (default: ``torch.utils.tensorboard``'s).
    :raises ImportError: naming the ``tensorboard`` extra, when the package is missing.
    """

    SCALARS: ClassVar[dict[str, str]] = {
        "elbo/train": "train_elbo",
        "elbo/test": "test_elbo",
        "test/recon": "test_recon",
        "test/kl": "test_kl",
        "beta": "beta",
        "lr": "lr",
    }

    def __init__(self, log_dir: str | os.PathLike, writer: Callable[[str], Any] | None = None) -> None:
        self.writer = (writer or _summary_writer())(os.fspath(log_dir))

    def on_epoch_end(self, trainer: Trainer, epoch: int) -> None:
        h = trainer.history
        for tag, field in self.SCALARS.items():
            value = getattr(h, field)[-1]
            if value is not None:
                self.writer.add_scalar(tag, value, epoch)
        self.writer.flush()

    def on_train_end(self, trainer: Trainer) -> None:
        self.writer.close()
