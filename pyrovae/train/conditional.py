"""Training the conditional VAE on ``(x, y)`` batches."""

from __future__ import annotations

import pyro
import torch
from pyro.infer import ELBO, Trace_ELBO

from ..data import InMemoryLoader
from ..models.conditional import ConditionalVAE


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

    :param images: ``(N, *x_shape)`` in [0, 1].
    :param labels: ``(N,)`` int64.
    :returns: the training ELBO per example, one value per epoch.
    """
    if epochs < 1 or len(images) != len(labels):
        raise ValueError(f"need epochs >= 1 and as many labels as images, got {epochs}, {len(images)} vs {len(labels)}")
    pyro.set_rng_seed(seed)
    loss = loss if loss is not None else Trace_ELBO()
    loader = InMemoryLoader(images, batch_size, labels=labels, binarize=binarize, seed=seed)
    opt = torch.optim.Adam(cvae.parameters(), lr=lr)
    history = []
    for _ in range(epochs):
        total = 0.0
        for x, y in loader:
            value = loss.differentiable_loss(cvae.model, cvae.guide, x, y, num_data=loader.num_data)
            opt.zero_grad()
            value.backward()
            opt.step()
            total += float(value.detach()) * len(x) / loader.num_data
        history.append(-total / loader.num_data)
    return history
