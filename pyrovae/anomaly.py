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

from ._batching import _batches, model_device
from .evaluate import elbo_terms
from .model import VAE

NOISE = ("flip", "gaussian", "mask")


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
    """
    terms = elbo_terms(vae, x, num_samples=num_samples, batch_size=batch_size)
    device = model_device(vae)
    errors = []
    for xb in _batches(x, batch_size):
        xb = xb.to(device)
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


def corrupt(x: torch.Tensor, noise: str = "flip", amount: float = 0.1, seed: int | None = 0) -> torch.Tensor:
    """Corrupt inputs in [0, 1] for a denoising demonstration.

    :param x: ``(N, *x_shape)``.
    :param noise: ``"flip"`` (flip each pixel with probability ``amount``: salt and pepper for
        binary data), ``"gaussian"`` (add N(0, amount²), clamp to [0, 1], then round if x is
        binary) or ``"mask"`` (zero the bottom ``amount`` share of rows: an occlusion).
    :param amount: strength.
    :param seed: seed of the noise (``None``: the global RNG).
    """
    if noise not in NOISE:
        raise ValueError(f"unknown noise {noise!r}; expected one of {NOISE}")
    gen = torch.Generator(device=x.device).manual_seed(seed) if seed is not None else None
    if noise == "flip":
        flip = torch.rand(x.shape, generator=gen, device=x.device) < amount
        return torch.where(flip, 1 - x, x)
    if noise == "gaussian":
        y = (x + amount * torch.randn(x.shape, generator=gen, device=x.device)).clamp(0, 1)
        binary = bool(((x == 0) | (x == 1)).all())
        return y.round() if binary else y
    rows = x.shape[-2]
    y = x.clone()
    y[..., rows - round(amount * rows):, :] = 0
    return y


@torch.no_grad()
def denoise(vae: VAE, x_corrupted: torch.Tensor, num_samples: int = 0) -> torch.Tensor:
    """Reconstruct from corrupted inputs: decode the posterior mean, or average the decodes
    of ``num_samples`` posterior draws.

    :param vae: the model.
    :param x_corrupted: ``(b, *x_shape)``, values the likelihood accepts.
    :param num_samples: 0 for the posterior mean, else draws to average.
    :returns: ``(b, *x_shape)``.
    """
    x = x_corrupted.to(model_device(vae))
    if num_samples <= 0:
        return vae.reconstruct(x)
    z = vae.encode(x).sample((num_samples,))  # (S, b, z_dim)
    return vae.decode_mean(z).mean(0)
