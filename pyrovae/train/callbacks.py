"""Callbacks: code the :class:`~pyrovae.train.Trainer` runs at named points of training.

Subclass :class:`Callback` and override the hooks you need::

    class StopBelow(Callback):
        def on_epoch_end(self, trainer, epoch):
            if trainer.history.test_elbo[-1] > -100:
                trainer.should_stop = True       # training ends after this epoch

A plain function ``cb(epoch, vae, history)`` still works: it runs as ``on_epoch_end``.
``on_step_end`` costs nothing unless a callback overrides it: the trainer looks once, before
training, for callbacks that do, and calls only those.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .._util.files import atomic_write

if TYPE_CHECKING:  # pragma: no cover
    from .trainer import Trainer

__all__ = ["Callback", "EarlyStopping", "EpochFunction", "as_callbacks", "best_checkpoint_path", "step_hook"]


class Callback:
    """Base class with one no-op method per hook; override the ones you need.

    A hook may set ``trainer.should_stop = True``: training then ends after the current step
    (``on_step_end``) or epoch (``on_epoch_end``), with the history and checkpoint written as
    usual.
    """

    def on_train_begin(self, trainer: Trainer) -> None:
        """Before the first epoch (after :meth:`Trainer.resume`)."""

    def on_step_end(self, trainer: Trainer, step: int, loss: torch.Tensor | float) -> None:
        """After optimisation step ``step`` (counted over the whole run, from 1).

        :param loss: the step's loss, still on the device (``float(loss)`` synchronises).
        """

    def on_epoch_end(self, trainer: Trainer, epoch: int) -> None:
        """After epoch ``epoch``'s history entry, log line and checkpoint."""

    def on_train_end(self, trainer: Trainer) -> None:
        """After the last epoch (not when training stops with an error)."""


class EpochFunction(Callback):
    """A plain ``fn(epoch, vae, history)`` run after every epoch."""

    def __init__(self, fn: Callable[[int, Any, Any], Any]) -> None:
        self.fn = fn

    def on_epoch_end(self, trainer: Trainer, epoch: int) -> None:
        self.fn(epoch, trainer.vae, trainer.history)

    def __repr__(self) -> str:
        return f"EpochFunction({self.fn!r})"


def as_callbacks(callbacks: Iterable[Callback | Callable]) -> list[Callback]:
    """Callbacks as :class:`Callback` objects (plain callables wrapped in :class:`EpochFunction`).

    :raises TypeError: for something that is neither.
    """
    out = []
    for cb in callbacks:
        if isinstance(cb, Callback):
            out.append(cb)
        elif callable(cb):
            out.append(EpochFunction(cb))
        else:
            raise TypeError(
                f"a callback must be a Callback or a function cb(epoch, vae, history), got {type(cb).__name__}"
            )
    return out


def step_hook(callbacks: Iterable[Callback]) -> Callable[[Trainer, int, Any], None] | None:
    """One function calling every overridden ``on_step_end``, or ``None`` when none is."""
    hooks = [cb.on_step_end for cb in callbacks if type(cb).on_step_end is not Callback.on_step_end]
    if not hooks:
        return None
    if len(hooks) == 1:
        return hooks[0]

    def run_all(trainer: Trainer, step: int, loss: Any) -> None:
        for hook in hooks:
            hook(trainer, step, loss)

    return run_all


class EarlyStopping(Callback):
    """Stop when the held-out ELBO has not improved for ``patience`` epochs, and keep the best
    epoch's checkpoint as ``best_path`` (a copy of the checkpoint written that epoch).

    The best epoch is read from the history, so a resumed run counts on where it left off.

    :param patience: epochs without a better held-out ELBO before training stops.
    :param checkpoint: the run's checkpoint, copied when an epoch is the best so far (or ``None``).
    :param best_path: where the copy goes (default: ``best.pt`` beside ``checkpoint``).
    :param write: whether this process writes files (rank 0 only).
    """

    def __init__(self, patience: int, checkpoint: str | os.PathLike | None = None,
                 best_path: str | os.PathLike | None = None, write: bool = True) -> None:
        self.patience, self.write = patience, write
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.best_path = Path(best_path) if best_path is not None else best_checkpoint_path(self.checkpoint)

    def on_epoch_end(self, trainer: Trainer, epoch: int) -> None:
        best = trainer.history.best_epoch()
        if best == epoch and self.write and self.checkpoint is not None:
            source = self.checkpoint
            atomic_write(self.best_path, lambda tmp: shutil.copyfile(source, tmp))
        if best is not None and epoch - best >= self.patience:
            trainer.should_stop = True


def best_checkpoint_path(checkpoint: Path | None) -> Path | None:
    """``best.pt`` beside ``checkpoint`` (``None`` without one).

    :raises ValueError: when the checkpoint is itself named ``best.pt``.
    """
    if checkpoint is None:
        return None
    if checkpoint.name == "best.pt":
        raise ValueError(f"the checkpoint {checkpoint} is named best.pt, the name of the best epoch's copy; "
                         "give it another name")
    return checkpoint.with_name("best.pt")
