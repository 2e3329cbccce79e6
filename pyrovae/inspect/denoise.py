"""Denoising with a trained VAE: encode a corrupted input, decode the posterior mean
(Vincent et al. 2008; Im et al. 2017)."""

from __future__ import annotations

import torch

from ..models import VAE
from ..models.validation import check_inputs


@torch.no_grad()
def denoise(vae: VAE, x_corrupted: torch.Tensor, num_samples: int = 0) -> torch.Tensor:
    """Reconstruct from corrupted inputs: decode the posterior mean, or average the decodes
    of ``num_samples`` posterior draws.

    :param vae: the model.
    :param x_corrupted: ``(b, *x_shape)``, values the likelihood accepts.
    :param num_samples: 0 for the posterior mean, else draws to average.
    :returns: ``(b, *x_shape)``.
    :raises TypeError: for inputs that are not a tensor.
    :raises ValueError: for bad inputs (:func:`~pyrovae.models.validation.check_inputs`).
    """
    x = check_inputs(vae, x_corrupted, "x_corrupted")
    if num_samples <= 0:
        return vae.reconstruct(x)
    z = vae.encode(x).sample((num_samples,))  # (S, b, z_dim)
    return vae.decode_mean(z).mean(0)
