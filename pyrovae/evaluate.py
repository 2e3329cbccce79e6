r"""What a trained VAE learned, in numbers: ELBO terms per data point.

.. math::

    \mathrm{ELBO}(x) = \underbrace{\mathbb{E}_{q(z|x)}[\log p(x|z)]}_{\text{recon}}
        - \underbrace{\mathrm{KL}(q(z|x) \,\|\, p(z))}_{\text{kl}}

References:

1. Kingma, D. P. and Welling, M. (2014). Auto-Encoding Variational Bayes. ICLR.
"""

from __future__ import annotations

from typing import Iterable, NamedTuple

import torch
from torch.distributions import kl_divergence

from .model import VAE


class ELBOTerms(NamedTuple):
    """Per-data-point ELBO terms; ``recon - kl`` is the ELBO."""

    recon: torch.Tensor  # (N,) E_q[log p(x|z)]
    kl: torch.Tensor  # (N,) KL(q(z|x) || p(z))


def _batches(x: torch.Tensor | Iterable, batch_size: int) -> Iterable[torch.Tensor]:
    if isinstance(x, torch.Tensor):
        yield from x.split(batch_size)
    else:
        for b in x:
            yield b[0] if isinstance(b, (tuple, list)) else b


def model_device(vae: VAE) -> torch.device:
    """The device of the model's parameters (or buffers)."""
    for t in list(vae.parameters()) + list(vae.buffers()):
        return t.device
    return torch.device("cpu")


def kl_is_analytic(vae: VAE) -> bool:
    """Whether KL(q(z|x) || p(z)) has a closed form for this guide and prior."""
    x = torch.zeros(1, *vae.x_shape, device=model_device(vae))
    with torch.no_grad():
        try:
            kl_divergence(vae.encode(x), vae.prior())
            return True
        except NotImplementedError:
            return False


@torch.no_grad()
def elbo_terms(vae: VAE, x: torch.Tensor | Iterable, num_samples: int = 1, batch_size: int = 1000) -> ELBOTerms:
    """Reconstruction term and KL term of the ELBO, per data point.

    The KL term is analytic where torch/Pyro has a closed form (Normal guide against a Normal
    prior) and a Monte Carlo estimate from the same ``num_samples`` draws otherwise (mixture
    and VampPrior priors); :func:`kl_is_analytic` says which.

    :param vae: a trained model (β is ignored: these are the terms of the true ELBO).
    :param x: data ``(N, *x_shape)`` or an iterable of batches, on any device (moved in
        batches to the model's device).
    :param num_samples: z draws per data point.
    :param batch_size: data points per batch.
    :returns: ``(recon, kl)``, each ``(N,)``, on the model's device.
    """
    device = model_device(vae)
    recons, kls = [], []
    for xb in _batches(x, batch_size):
        xb = xb.to(device)
        q = vae.encode(xb)  # batch_shape (b,)
        z = q.rsample((num_samples,))  # (S, b, z_dim)
        recon = vae.decode(z).log_prob(xb).mean(0)  # (b,)
        p = vae.prior()
        try:
            kl = kl_divergence(q, p)  # (b,)
        except NotImplementedError:
            kl = (q.log_prob(z) - p.log_prob(z)).mean(0)  # (b,)
        recons.append(recon)
        kls.append(kl)
    return ELBOTerms(torch.cat(recons), torch.cat(kls))


def elbo(vae: VAE, x: torch.Tensor | Iterable, **kwargs) -> torch.Tensor:
    """The ELBO per data point, ``(N,)`` (see :func:`elbo_terms`)."""
    recon, kl = elbo_terms(vae, x, **kwargs)
    return recon - kl


@torch.no_grad()
def log_weights(vae: VAE, x: torch.Tensor, num_samples: int) -> torch.Tensor:
    r"""Importance log-weights :math:`\log p(x, z_k) - \log q(z_k|x)` with :math:`z_k \sim q(z|x)`.

    The building block of importance-sampled log p(x), effective sample size and
    self-normalised estimates. One batch, all samples at once: chunk ``num_samples`` in the
    caller to bound memory.

    :param vae: the model.
    :param x: a batch ``(b, *x_shape)`` on the model's device.
    :param num_samples: K, draws per data point.
    :returns: ``(b, K)``.
    """
    q = vae.encode(x)  # batch_shape (b,)
    z = q.sample((num_samples,))  # (K, b, z_dim)
    log_p = vae.prior().log_prob(z) + vae.decode(z).log_prob(x)  # (K, b)
    return (log_p - q.log_prob(z)).T  # (b, K)
