r"""Anomaly scores, ranking and denoising with a trained VAE.

An input the model explains badly has a low ELBO: the negative ELBO (an upper bound on
:math:`-\log p(x)`) is the score, with the squared reconstruction error as a simpler
alternative. Denoising encodes a corrupted input and decodes the posterior mean: the
decoder can only produce images that look like the training data.

References:

1. An, J. and Cho, S. (2015). Variational Autoencoder based Anomaly Detection using
   Reconstruction Probability. SNU Data Mining Center, Special Lecture on IE 2(1).
2. Vincent, P. et al. (2008). Extracting and Composing Robust Features with Denoising
   Autoencoders. ICML.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import torch

from .._util.batching import model_device
from ..models import VAE
from ..models.validation import checked_data
from .bounds import elbo_terms


class AnomalyScores(NamedTuple):
    """Per-example scores; larger means more anomalous."""

    neg_elbo: torch.Tensor  # (N,) -ELBO, nats
    recon_error: torch.Tensor  # (N,) squared error between x and the decoded posterior mean


@torch.no_grad()
def anomaly_scores(vae: VAE, x: torch.Tensor | Iterable, num_samples: int = 1, batch_size: int = 1000) -> AnomalyScores:
    """Negative ELBO and reconstruction error per example.

    :param vae: the model.
    :param x: ``(N, *x_shape)`` or an iterable of batches, as the model sees data.
    :param num_samples: z draws per example for the ELBO.
    :param batch_size: examples per batch.
    :raises TypeError: for data that are not a tensor or an iterable of batches.
    :raises ValueError: for data the model cannot score (checked once), or bad settings.
    """
    data = checked_data(vae, x)
    terms = elbo_terms(vae, data, num_samples=num_samples, batch_size=batch_size)
    errors = []
    for xb in data.batches(batch_size, model_device(vae)):
        errors.append((vae.reconstruct(xb) - xb).flatten(1).pow(2).sum(1))  # (b,)
    return AnomalyScores(-terms.elbo, torch.cat(errors))


def rank(scores: torch.Tensor, k: int | None = None, descending: bool = True) -> torch.Tensor:
    """Indices of the ``k`` highest (or lowest) scores, most anomalous first.

    :param scores: ``(N,)``.
    :param k: how many (default all).
    :param descending: highest first.
    """
    if scores.dim() != 1:
        raise ValueError(f"scores must be one-dimensional (N,), got shape {tuple(scores.shape)}")
    order = scores.argsort(descending=descending)
    return order if k is None else order[:k]
