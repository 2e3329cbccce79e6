"""Training the conditional VAE on ``(x, y)`` batches, with the :class:`~pyrovae.train.Trainer`."""

from __future__ import annotations

import torch
from pyro.infer import ELBO

from ..models.conditional import ConditionalVAE
from .config import TrainConfig
from .trainer import Trainer


def fit_conditional(
    cvae: ConditionalVAE,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    epochs: int,
    batch_size: int = 100,
    lr: float = 1e-3,
    loss: ELBO | None = None,
    binarize: str | None = "dynamic",
    seed: int = 0,
) -> list[float]:
    """Train a :class:`ConditionalVAE` on labelled data: any Pyro ELBO over ``model(x, y)`` and
    ``guide(x, y)``, one ``torch.optim.Adam`` (the fast route of :func:`pyrovae.train.fit`).

    The :class:`~pyrovae.train.Trainer` runs it, with each ``(x, y)`` batch passed to the
    model and guide as their arguments (and ``num_data = N``).

    :param images: ``(N, *x_shape)`` in [0, 1].
    :param labels: ``(N,)`` int64.
    :param loss: the ELBO (default :class:`~pyrovae.infer.ReparamTrace_ELBO`, i.e. ``Trace_ELBO``'s estimator).
    :param seed: seeds every epoch (see :class:`~pyrovae.train.TrainConfig`).
    :returns: the training ELBO per example, one value per epoch.
    :raises ValueError: for bad settings, or as many labels as images not given.
    """
    if epochs < 1 or len(images) != len(labels):
        raise ValueError(f"need epochs >= 1 and as many labels as images, got {epochs}, {len(images)} vs {len(labels)}")
    config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, binarize=binarize, seed=seed, progress=False)
    device = next(cvae.parameters()).device
    trainer = Trainer(cvae, config, loss=loss, device=device)
    return trainer.prepare(images, labels=labels).run().train_elbo
