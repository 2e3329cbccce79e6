r"""Training the semi-supervised M2 model (:class:`pyrovae.models.SemiSupervisedVAE`) on the
objective :math:`\mathcal{J}^\alpha` of Kingma et al. (2014), "Semi-supervised learning with deep
generative models", eq. (9): the labelled ELBO plus the unlabelled ELBO (y summed out) plus
:math:`\alpha` times the classifier's log-likelihood on the labelled data.

As in :class:`~pyrovae.train.Trainer`, every epoch draws from the global RNG seeded by
``(seed, epoch)`` (:func:`~pyrovae.train.rng.seed_epoch`): the shuffles, the binarisation and the
ELBOs' noise. A run given ``checkpoint=`` writes one after every epoch (atomically), and with
``resume=True`` continues from it, repeating the uninterrupted run bit for bit."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyro
import torch
from pyro.infer import ELBO, Trace_ELBO, TraceEnum_ELBO
from tqdm.auto import tqdm

from .._util.batching import model_device
from .._util.checks import positive_int
from ..data import InMemoryLoader
from ..data import binarize as binarize_images
from ..models.semisupervised import ALPHA_PER_DATUM, SemiSupervisedVAE
from . import checkpoint as ckpt
from .checks import check_training_data
from .rng import neutral_plate_guess, seed_epoch
from .schedules import exponential_lr

__all__ = ["M2History", "fit_m2"]


@dataclass
class M2History:
    """Per-epoch numbers of :func:`fit_m2`."""

    epoch: list[int] = field(default_factory=list)
    labelled_loss: list[float] = field(default_factory=list)  # mean -L(x, y) + alpha term per labelled point
    unlabelled_loss: list[float] = field(default_factory=list)  # mean -U(x) per unlabelled point
    test_accuracy: list[float | None] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, list]:
        """The lists, for a checkpoint or JSON."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict, path: Any = "checkpoint") -> M2History:
        """The inverse of :meth:`to_dict`.

        :raises CheckpointError: when a field is missing or not a list.
        """
        names = [f.name for f in dataclasses.fields(cls)]
        if not all(isinstance(d.get(n), list) for n in names):
            raise ckpt.CheckpointError(f"checkpoint {path} is malformed: its history needs the lists {names}")
        return cls(**{n: list(d[n]) for n in names})


def _forever(loader: InMemoryLoader) -> Iterator:
    while True:  # a fresh shuffle (and binarisation) every pass
        yield from loader


def _descend(opt: torch.optim.Optimizer, value: torch.Tensor) -> torch.Tensor:
    opt.zero_grad()
    value.backward()
    opt.step()
    return value.detach()


def fit_m2(m2: SemiSupervisedVAE, x_labelled: torch.Tensor, y_labelled: torch.Tensor, x_unlabelled: torch.Tensor,
           x_test: torch.Tensor | None = None, y_test: torch.Tensor | None = None, *, epochs: int,
           batch_size: int = 100, lr: float = 1e-3, final_lr: float | None = None, alpha: float | None = None,
           binarize: str | None = "dynamic",
           loss: ELBO | None = None, labelled_loss: ELBO | None = None, seed: int = 0, progress: bool = True,
           validate: bool = False, checkpoint: str | os.PathLike | None = None, resume: bool = False) -> M2History:
    r"""Train M2 on :math:`\mathcal{J}^\alpha` (module docstring), alternating one labelled and one
    unlabelled batch, each step with its own ``num_data`` so that each estimates its part of the
    objective; an epoch is one pass over the unlabelled data (the labelled set is cycled).
    Alternating 1:1 keeps the expected step the gradient of :math:`\mathcal{J}^\alpha` (halved)
    however few the labels.

    :param m2: the model (on the device to train on; the data are moved there).
    :param x_labelled: ``(N_l, *x_shape)`` in [0, 1]; ``y_labelled`` ``(N_l,)``.
    :param x_unlabelled: ``(N_u, *x_shape)``.
    :param x_test: held-out images for the per-epoch accuracy (binarised once, seed 0); ``y_test`` their labels.
    :param epochs: passes over the unlabelled data.
    :param batch_size: examples per batch, labelled and unlabelled.
    :param lr: Adam's learning rate.
    :param final_lr: decay the learning rate geometrically from ``lr`` (epoch 1) to this at the last
        epoch (:func:`~pyrovae.train.exponential_lr`); ``None`` keeps ``lr``. With a decay,
        ``epochs`` is part of the schedule, so a resume must ask for the same ``epochs``.
    :param alpha: the weight of the classification loss; default :math:`0.1 (N_l + N_u)` (Kingma et al.).
    :param binarize: ``"dynamic"`` (a fresh draw per batch) or ``None``.
    :param loss: the ELBO of the unlabelled batches, default ``TraceEnum_ELBO(max_plate_nesting=1)``
        (which sums y out).
    :param labelled_loss: the ELBO of the labelled batches (y observed: nothing to enumerate),
        default ``Trace_ELBO(max_plate_nesting=1)``.
    :param seed: seeds Pyro/torch at the start of every epoch.
    :param progress: a tqdm bar per epoch.
    :param validate: keep Pyro's per-site validation on (slower).
    :param checkpoint: a file to write after every epoch (model, Adam state, history, settings).
    :param resume: continue from ``checkpoint`` when it exists (a longer ``epochs`` trains on).
        Without it, an existing ``checkpoint`` is refused rather than overwritten.
    :returns: the :class:`M2History` (of all epochs, the resumed ones included).
    :raises TypeError: for data that are not tensors.
    :raises ValueError: for bad data (checked once per data set) or settings.
    :raises FileExistsError: when ``checkpoint`` exists and ``resume`` is false.
    :raises CheckpointError: when the checkpoint is unreadable, of another network, or was
        written with other settings (the message names them).
    """
    positive_int("batch_size", batch_size)
    x_labelled = check_training_data(m2, x_labelled, binarize, "x_labelled")
    x_unlabelled = check_training_data(m2, x_unlabelled, binarize, "x_unlabelled")
    if x_test is not None:
        x_test = check_training_data(m2, x_test, binarize, "x_test")
    if epochs < 1 or len(x_labelled) != len(y_labelled) or len(x_labelled) == 0 or len(x_unlabelled) == 0:
        raise ValueError("need epochs >= 1, labels for every labelled image and both sets non-empty; got "
                         f"epochs={epochs}, {len(x_labelled)} labelled images, {len(y_labelled)} labels, "
                         f"{len(x_unlabelled)} unlabelled")
    if resume and checkpoint is None:
        raise ValueError("resume=True needs checkpoint=PATH")
    if checkpoint is not None and not resume and Path(checkpoint).exists():
        raise FileExistsError(f"checkpoint {checkpoint} exists; pass resume=True to continue from it, or another path")
    device = model_device(m2)
    loss = loss if loss is not None else TraceEnum_ELBO(max_plate_nesting=1)
    labelled_loss = labelled_loss if labelled_loss is not None else Trace_ELBO(max_plate_nesting=1)
    for elbo in (loss, labelled_loss):
        neutral_plate_guess(elbo, m2, device)  # a guess on the first call would shift the first epoch's draws
    alpha = ALPHA_PER_DATUM * (len(x_labelled) + len(x_unlabelled)) if alpha is None else float(alpha)
    # no loader seeds: the global RNG, seeded per epoch, drives the shuffles and the binarisation
    labelled = InMemoryLoader(x_labelled.to(device), batch_size, labels=y_labelled.to(device), binarize=binarize)
    unlabelled = InMemoryLoader(x_unlabelled.to(device), batch_size, binarize=binarize)
    if x_test is not None:
        x_test = x_test.to(device)
        x_test = binarize_images(x_test, "static", seed=0) if binarize is not None else x_test
    opt = torch.optim.Adam(m2.parameters(), lr=lr)
    schedule = exponential_lr(lr, final_lr, epochs) if final_lr is not None else (lambda epoch: lr)
    settings = {"labelled": len(x_labelled), "unlabelled": len(x_unlabelled), "batch_size": batch_size, "lr": lr,
                "final_lr": final_lr, "schedule_epochs": epochs if final_lr is not None else None,
                "alpha": alpha, "binarize": binarize, "seed": seed, "loss": type(loss).__name__,
                "labelled_loss": type(labelled_loss).__name__}
    history, start = M2History(), 0
    if resume and Path(checkpoint).exists():
        history, start = _resume(m2, opt, checkpoint, settings)
    for epoch in range(start + 1, epochs + 1):
        seed_epoch(seed, epoch)
        for group in opt.param_groups:
            group["lr"] = schedule(epoch)
        t0, sums = time.perf_counter(), torch.zeros(2, device=device)  # (labelled, unlabelled) summed losses
        labelled_batches = _forever(labelled)  # cycled within the epoch, afresh each epoch
        m2.train()
        bar = tqdm(unlabelled, desc=f"M2 epoch {epoch}/{epochs}", disable=not progress, leave=False)
        with pyro.validation_enabled(validate):
            for xu in bar:
                xl, yl = next(labelled_batches)
                sums[0] += _descend(opt, labelled_loss.differentiable_loss(m2.model, m2.guide, xl, yl,
                                                                           num_data=labelled.num_data)
                                    + m2.classification_loss(xl, yl, alpha))
                sums[1] += _descend(opt, loss.differentiable_loss(m2.model, m2.guide, xu, num_data=unlabelled.num_data))
        m2.eval()
        steps = len(unlabelled)
        history.epoch.append(epoch)
        history.labelled_loss.append(float(sums[0]) / steps / labelled.num_data)
        history.unlabelled_loss.append(float(sums[1]) / steps / unlabelled.num_data)
        history.test_accuracy.append(m2.accuracy(x_test, y_test) if x_test is not None else None)
        history.seconds.append(time.perf_counter() - t0)
        if checkpoint is not None:
            ckpt.save_checkpoint(checkpoint, m2, optimizer=opt, epoch=epoch, history=history.to_dict(),
                                 fit_config=settings)
        if progress:
            acc = f", test accuracy {history.test_accuracy[-1]:.4f}" if x_test is not None else ""
            tqdm.write(f"M2 epoch {epoch}: -U(x) {history.unlabelled_loss[-1]:.2f}{acc} ({history.seconds[-1]:.1f}s)")
    return history


def _resume(m2: SemiSupervisedVAE, opt: torch.optim.Optimizer, path: str | os.PathLike,
            settings: dict) -> tuple[M2History, int]:
    """Load ``path`` into ``m2`` and ``opt``; the history and the epochs done."""
    payload = ckpt.read_checkpoint(path)
    stored = payload["fit_config"]
    if not set(settings) <= set(stored):
        raise ckpt.CheckpointError(f"checkpoint {path} was not written by fit_m2 (it lacks the M2 settings "
                                   f"{sorted(set(settings) - set(stored))}); pass another checkpoint path")
    differ = sorted(k for k in settings if stored.get(k) != settings[k])
    if differ:
        raise ckpt.CheckpointError(
            f"checkpoint {path} was written with other settings: {', '.join(f'{k}={stored.get(k)!r}' for k in differ)} "
            f"(this run: {', '.join(f'{k}={settings[k]!r}' for k in differ)}); resuming would not repeat that run, so "
            "use the same settings or another checkpoint path")
    ckpt.load_into(m2, payload, path=path)
    ckpt.load_optimizer_state(opt, payload["optimizer"], path=path)
    history = M2History.from_dict(payload["history"], path)
    if len(history.epoch) != payload["epoch"]:
        raise ckpt.CheckpointError(f"checkpoint {path} is malformed: {len(history.epoch)} epochs of history for "
                                   f"epoch {payload['epoch']}")
    return history, payload["epoch"]
