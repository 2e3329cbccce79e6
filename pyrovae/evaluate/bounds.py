r"""What a trained VAE learned, in numbers: ELBO terms, importance-weighted log p(x), the
ELBO gap (the importance weights and their streaming statistics live in
:mod:`pyrovae.evaluate.importance`).

Every function takes a trained :class:`~pyrovae.VAE` and a tensor ``(N, *x_shape)`` or an
iterable of batches, works in batches on the model's device, and returns per-data-point
tensors or plain numbers. The data are checked first, once
(:func:`~pyrovae.models.validation.check_data`: type, shape, dtype, finite values in the
likelihood's support), so 8-bit pixels or grey levels under a Bernoulli likelihood are refused
with the fix rather than scored.

.. math::

    \mathrm{ELBO}(x) = \underbrace{\mathbb{E}_{q(z|x)}[\log p(x|z)]}_{\text{recon}}
        - \underbrace{\mathrm{KL}(q(z|x) \,\|\, p(z))}_{\text{kl}}
        = \log p(x) - \mathrm{KL}(q(z|x) \,\|\, p(z|x)).

References:

1. Kingma, D. P. and Welling, M. (2014). Auto-Encoding Variational Bayes. ICLR.
2. Burda, Y., Grosse, R. and Salakhutdinov, R. (2016). Importance Weighted Autoencoders. ICLR.
3. Cremer, C., Li, X. and Duvenaud, D. (2018). Inference Suboptimality in Variational
   Autoencoders. ICML (the ELBO gap).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import NamedTuple

import torch
from torch.distributions import kl_divergence
from tqdm.auto import tqdm
from typing_extensions import Self

from .._util.batching import model_device
from .._util.checks import positive_int
from ..models import VAE
from ..models.validation import checked_data
from .importance import _importance_streams

__all__ = ["ELBOTerms", "LogLikelihood", "elbo", "elbo_gap", "elbo_terms", "kl_is_analytic", "log_likelihood"]


class _Terms(NamedTuple):
    recon: torch.Tensor  # (N,) E_q[log p(x|z)]
    kl: torch.Tensor  # (N,) KL(q(z|x) || p(z))


class ELBOTerms(_Terms):
    """Per-data-point ELBO terms; ``recon - kl`` is the ELBO.

    Unpacks as ``recon, kl = elbo_terms(...)``. ``kl_method`` says how the KL was computed:
    ``"analytic"`` (closed form) or ``"monte_carlo"`` (from the same draws as ``recon``).
    """

    kl_method: str

    def __new__(cls, recon: torch.Tensor, kl: torch.Tensor, kl_method: str = "analytic") -> Self:
        self = super().__new__(cls, recon, kl)
        self.kl_method = kl_method
        return self

    @property
    def elbo(self) -> torch.Tensor:
        """``recon - kl``, ``(N,)``."""
        return self.recon - self.kl

    @property
    def analytic_kl(self) -> bool:
        return self.kl_method == "analytic"


def kl_is_analytic(vae: VAE) -> bool:
    """Whether KL(q(z|x) || p(z)) has a closed form for this guide and prior."""
    param = next(iter(vae.parameters()), None)
    dtype = param.dtype if param is not None else torch.get_default_dtype()
    x = torch.zeros(1, *vae.x_shape, device=model_device(vae), dtype=dtype)
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
    and VampPrior priors); the result's ``kl_method`` says which was used.

    :param vae: a trained model (β is ignored: these are the terms of the true ELBO).
    :param x: data ``(N, *x_shape)`` or an iterable of batches, on any device (moved in
        batches to the model's device).
    :param num_samples: z draws per data point.
    :param batch_size: data points per batch.
    :returns: :class:`ELBOTerms` ``(recon, kl)``, each ``(N,)``, on the model's device.
    :raises TypeError: for data that are not a tensor or an iterable of batches.
    :raises ValueError: for data the model cannot score (shape, dtype, values), or a bad
        ``num_samples`` or ``batch_size``.

    Example:

    >>> import torch
    >>> from pyrovae import evaluate
    >>> from pyrovae.models import VAEConfig, build_vae
    >>> vae = build_vae(VAEConfig(z_dim=2, hidden=(8,)))
    >>> terms = evaluate.elbo_terms(vae, torch.zeros(3, 1, 28, 28))
    >>> terms.recon.shape, terms.kl.shape, terms.kl_method
    (torch.Size([3]), torch.Size([3]), 'analytic')
    >>> recon, kl = terms  # it also unpacks as a pair
    """
    positive_int("num_samples", num_samples)
    batches = checked_data(vae, x).batches(batch_size, model_device(vae))
    recons, kls = [], []
    method = "analytic"
    for xb in batches:
        q = vae.encode(xb)  # batch_shape (b,)
        z = q.rsample((num_samples,))  # (S, b, z_dim)
        recon = vae.decode(z).log_prob(xb).mean(0)  # (b,)
        p = vae.prior()
        try:
            kl = kl_divergence(q, p)  # (b,)
        except NotImplementedError:
            kl = (q.log_prob(z) - p.log_prob(z)).mean(0)  # (b,)
            method = "monte_carlo"
        recons.append(recon)
        kls.append(kl)
    return ELBOTerms(torch.cat(recons), torch.cat(kls), method)


def elbo(vae: VAE, x: torch.Tensor | Iterable, **kwargs) -> torch.Tensor:
    """The ELBO per data point, ``(N,)`` (see :func:`elbo_terms`)."""
    recon, kl = elbo_terms(vae, x, **kwargs)
    return recon - kl


class LogLikelihood(NamedTuple):
    """Importance-sampled log p(x) per data point and its standard error (both ``(N,)``)."""

    log_px: torch.Tensor  # (N,) log (1/K) sum_k w_k
    stderr: torch.Tensor  # (N,) delta-method standard error of log_px


def log_likelihood(
    vae: VAE,
    x: torch.Tensor | Iterable,
    num_samples: int = 5000,
    batch_size: int = 100,
    chunk_size: int | None = None,
    max_elements: int = 2**20,
    progress: bool = False,
) -> LogLikelihood:
    r"""Importance-sampled log p(x) per data point, with the guide as proposal (Burda et al. 2016).

    .. math::

        \hat{\mathcal{L}}_K(x) = \log \frac{1}{K} \sum_{k=1}^{K} \frac{p(x, z_k)}{q(z_k|x)},
        \qquad z_k \sim q(z|x).

    This is the number the literature reports as "log p(x)" or "test NLL". It is the
    *K-sample importance-weighted bound*: its expectation satisfies
    :math:`\mathrm{ELBO} \le \mathbb{E}\hat{\mathcal{L}}_K \le \mathbb{E}\hat{\mathcal{L}}_{K+1}
    \le \log p(x)`, and it converges to log p(x) as K grows (Burda et al. 2016, Thm. 1). A single
    estimate is an unbiased estimate of p(x) inside the log, so it is a *stochastic* lower
    bound: for a finite K it can land above log p(x) by chance. Data are evaluated as given
    (binarise them the way the model was tested).

    The computation is vectorised over data points and samples: each batch is encoded once,
    and the K samples go through the decoder in chunks, combined with a streaming
    log-sum-exp (memory ``O(batch_size * chunk_size * prod(x_shape))`` whatever K is).

    The standard error is the delta-method one for :math:`\log \bar w`:
    :math:`\mathrm{se} = \hat\sigma_w / (\sqrt{K}\, \bar w)`, with :math:`\hat\sigma_w` the
    sample standard deviation of the K weights. It is reliable when the weights have finite
    variance (a guide broader than the posterior); a guide much narrower than the
    posterior can under-report it.

    :param vae: a trained model.
    :param x: ``(N, *x_shape)`` or an iterable of batches.
    :param num_samples: K, importance samples per data point (≥ 2).
    :param batch_size: data points per batch.
    :param chunk_size: samples per decoder call; ``None`` picks the largest chunk that keeps
        ``batch * chunk * prod(x_shape) <= max_elements``.
    :param max_elements: memory bound used when ``chunk_size`` is ``None`` (the default, 2^20
        floats = 4 MB of decoder output per call, keeps the temporaries in cache on a CPU;
        raise it on a GPU, where fewer, larger calls are faster).
    :param progress: show a tqdm bar over the batches (K = 5000 on the 10,000 MNIST test
        images takes tens of minutes on a CPU).
    :returns: :class:`LogLikelihood` ``(log_px, stderr)``, each ``(N,)``, float64, on the
        model's device.
    :raises TypeError: for data that are not a tensor or an iterable of batches.
    :raises ValueError: for data the model cannot score (shape, dtype, values: 8-bit pixels get
        "divide by 255"), or bad settings.
    """
    data = checked_data(vae, x)
    streams = _importance_streams(vae, data, num_samples, batch_size, chunk_size, max_elements)
    if progress:
        total = math.ceil(len(data) / batch_size) if data.tensor is not None else None
        streams = tqdm(streams, total=total, desc=f"log p(x), K={num_samples}", unit="batch")
    parts = [s.log_mean_exp() for s in streams]
    return LogLikelihood(torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]))


def elbo_gap(vae: VAE, x: torch.Tensor | Iterable, num_samples: int = 5000, **kwargs) -> torch.Tensor:
    r"""The ELBO gap per data point, an estimate of :math:`\mathrm{KL}(q(z|x) \,\|\, p(z|x))`.

    .. math::

        \log p(x) - \mathrm{ELBO}(x) = \mathrm{KL}(q(z|x) \,\|\, p(z|x)) \approx
            \log \frac{1}{K}\sum_k w_k - \frac{1}{K} \sum_k \log w_k,

    with both terms from the same K importance weights :math:`w_k = p(x,z_k)/q(z_k|x)`, so
    the estimate is never negative (Jensen) and inherits the bias of :func:`log_likelihood`
    (it under-estimates the gap for small K).

    :param vae: a trained model.
    :param x: ``(N, *x_shape)`` or an iterable of batches.
    :param num_samples: K (see :func:`log_likelihood`).
    :param kwargs: ``batch_size``, ``chunk_size``, ``max_elements`` as in :func:`log_likelihood`.
    :returns: ``(N,)`` float64, in nats.
    """
    gaps = []
    for s in _importance_streams(vae, x, num_samples, **kwargs):
        gaps.append(s.log_mean_exp()[0] - s.mean_and_stderr()[0])
    return torch.cat(gaps)
