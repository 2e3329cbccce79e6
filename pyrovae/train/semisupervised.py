"""Training the semi-supervised M2 model (:class:`pyrovae.models.SemiSupervisedVAE`) on the
objective :math:`\mathcal{J}^\alpha` of Kingma et al. (2014), "Semi-supervised learning with deep
generative models", eq. (9): the labelled ELBO plus the unlabelled ELBO (y summed out) plus
:math:`\alpha` times the classifier's log-likelihood on the labelled data."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pyro
import torch
from pyro.infer import ELBO, Trace_ELBO, TraceEnum_ELBO
from tqdm.auto import tqdm

from .._util.batching import model_device
from ..data import InMemoryLoader
from ..data import binarize as binarize_images
from ..models.semisupervised import ALPHA_PER_DATUM, SemiSupervisedVAE

__all__ = ["M2History", "fit_m2"]


@dataclass
class M2History:
    """Per-epoch numbers of :func:`fit_m2`."""

    epoch: list[int] = field(default_factory=list)
    labelled_loss: list[float] = field(default_factory=list)  # mean -L(x, y) + alpha term per labelled point
    unlabelled_loss: list[float] = field(default_factory=list)  # mean -U(x) per unlabelled point
    test_accuracy: list[float | None] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)


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
           batch_size: int = 100, lr: float = 1e-3, alpha: float | None = None, binarize: str | None = "dynamic",
           loss: ELBO | None = None, labelled_loss: ELBO | None = None, seed: int = 0, progress: bool = True,
           validate: bool = False) -> M2History:
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
    :param alpha: the weight of the classification loss; default :math:`0.1 (N_l + N_u)` (Kingma et al.).
    :param binarize: ``"dynamic"`` (a fresh draw per batch) or ``None``.
    :param loss: the ELBO of the unlabelled batches, default ``TraceEnum_ELBO(max_plate_nesting=1)``
        (which sums y out).
    :param labelled_loss: the ELBO of the labelled batches (y observed: nothing to enumerate),
        default ``Trace_ELBO()``.
    :param seed: seeds Pyro and the loaders.
    :param progress: a tqdm bar per epoch.
    :param validate: keep Pyro's per-site validation on (slower).
    :returns: the :class:`M2History`.
    """
    if epochs < 1 or len(x_labelled) != len(y_labelled) or len(x_labelled) == 0 or len(x_unlabelled) == 0:
        raise ValueError("need epochs >= 1, labels for every labelled image and both sets non-empty; got "
                         f"epochs={epochs}, {len(x_labelled)} labelled images, {len(y_labelled)} labels, "
                         f"{len(x_unlabelled)} unlabelled")
    pyro.set_rng_seed(seed)
    device = model_device(m2)
    loss = loss if loss is not None else TraceEnum_ELBO(max_plate_nesting=1)
    labelled_loss = labelled_loss if labelled_loss is not None else Trace_ELBO()
    alpha = ALPHA_PER_DATUM * (len(x_labelled) + len(x_unlabelled)) if alpha is None else float(alpha)
    labelled = InMemoryLoader(x_labelled.to(device), batch_size, labels=y_labelled.to(device), binarize=binarize,
                              seed=seed)
    unlabelled = InMemoryLoader(x_unlabelled.to(device), batch_size, binarize=binarize, seed=seed + 1)
    if x_test is not None:
        x_test = x_test.to(device)
        x_test = binarize_images(x_test, "static", seed=0) if binarize is not None else x_test
    opt = torch.optim.Adam(m2.parameters(), lr=lr)
    history, labelled_batches = M2History(), _forever(labelled)
    for epoch in range(1, epochs + 1):
        t0, sums = time.perf_counter(), torch.zeros(2, device=device)  # (labelled, unlabelled) summed losses
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
        if progress:
            acc = f", test accuracy {history.test_accuracy[-1]:.4f}" if x_test is not None else ""
            tqdm.write(f"M2 epoch {epoch}: -U(x) {history.unlabelled_loss[-1]:.2f}{acc} ({history.seconds[-1]:.1f}s)")
    return history
