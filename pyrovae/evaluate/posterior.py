r"""The one summary of the guide over a data set: the mean and standard deviation of
:math:`q(z|x_n)` in each latent dimension, computed in batches on the model's device.

Every guide reduces to one of three cases (:func:`guide_kind`):

- ``"normal"``: a diagonal Normal (the default guide); its parameters are its moments;
- ``"point_mass"``: a ``Delta`` (:class:`pyrovae.models.Autoencoder`); the mean is the code
  and the standard deviation is 0;
- ``"monte_carlo"``: anything else, e.g. an IAF guide (``vae.guide_flow``,
  :class:`pyrovae.flows.IAFGuide`), whose mean has no closed form. The moments are
  estimated from S draws,

  .. math::

      \hat\mu_d(x) = \frac1S \sum_s z_{sd}, \qquad
      \hat\sigma_d^2(x) = \frac1S \sum_s (z_{sd} - \hat\mu_d)^2, \qquad z_s \sim q(z|x),

  and where the guide is a flow on a diagonal Normal, :math:`z_s = f_x(\mu(x) + \sigma(x)
  \odot \epsilon_s)` with the *same* standardised noise :math:`\epsilon_{1..S}` for every x
  (zero mean and unit variance exactly, per dimension). Shared noise makes the summary
  deterministic and removes the Monte Carlo noise from comparisons across x: a dimension
  whose q(z|x) does not move with x gets the same estimate for every x, so its activity
  (:func:`pyrovae.evaluate.unit_activity`) is 0, not noise. An affine flow's moments come
  out exact.

Guides whose distribution implements ``mean`` and ``variance`` count as closed form too
(kind ``"closed_form"``).

References:

1. Kingma, D. P., Salimans, T., Jozefowicz, R., Chen, X., Sutskever, I. and Welling, M.
   (2016). Improved Variational Inference with Inverse Autoregressive Flow. NeurIPS.
2. Glasserman, P. (2003). Monte Carlo Methods in Financial Engineering, §4.2 (common random
   numbers).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import NamedTuple

import pyro.distributions as dist
import torch
from torch.distributions import Distribution, Independent, Normal, TransformedDistribution

from .._util.batching import model_device
from .._util.checks import at_least
from ..models.validation import checked_data

__all__ = ["GUIDE_KINDS", "MOMENT_SAMPLES", "PosteriorSummary", "diagonal_normal", "encode_all", "guide_kind",
           "moments", "posteriors"]

#: What :func:`guide_kind` can say about a guide.
GUIDE_KINDS = ("normal", "point_mass", "closed_form", "monte_carlo")

#: Draws per data point for Monte Carlo moments.
MOMENT_SAMPLES = 256

# draws x batch x z_dim elements per pass of a flow: bounds the memory of Monte Carlo moments
_MAX_ELEMENTS = 2**22


class PosteriorSummary(NamedTuple):
    """Per-data-point moments of q(z|x) (see the module docstring)."""

    loc: torch.Tensor  # (N, z_dim) E_q[z_d | x_n]
    scale: torch.Tensor  # (N, z_dim) sd_q[z_d | x_n]; 0 for a point mass
    kind: str  # one of GUIDE_KINDS: how loc and scale were obtained


def diagonal_normal(q: Distribution) -> Normal | None:
    """``q`` as a ``Normal`` with batch shape ``(batch, z_dim)`` when it is a diagonal Normal
    over z (``Normal(...).to_event(1)``); ``None`` for any other distribution."""
    if isinstance(q, Independent) and q.reinterpreted_batch_ndims == 1 and isinstance(q.base_dist, Normal):
        return q.base_dist
    return None


def guide_kind(q: Distribution) -> str:
    """Which of :data:`GUIDE_KINDS` the guide distribution ``q`` is (see the module docstring)."""
    if diagonal_normal(q) is not None:
        return "normal"
    if isinstance(q, dist.Delta):
        return "point_mass"
    try:
        q.mean, q.variance  # noqa: B018 (probing for closed forms)
    except NotImplementedError:
        return "monte_carlo"
    return "closed_form"


def _standard_noise(num_samples: int, z_dim: int, like: torch.Tensor) -> torch.Tensor:
    # the same draws on every call and for every x, standardised per dimension (ddof 0), so
    # that an affine map of them has exactly the moments of the affine map of N(0, 1)
    gen = torch.Generator().manual_seed(0)
    eps = torch.randn(num_samples, z_dim, generator=gen, dtype=torch.float64)
    eps = (eps - eps.mean(0)) / eps.std(0, unbiased=False)
    return eps.to(dtype=like.dtype, device=like.device)  # (S, z_dim)


def _draw_chunks(q: Distribution, num_samples: int) -> Iterator[torch.Tensor]:
    """Draws of ``q`` in chunks ``(s, batch, z_dim)``, with shared standardised noise when
    ``q`` is a flow on a diagonal Normal."""
    base = diagonal_normal(q.base_dist) if isinstance(q, TransformedDistribution) else None
    if base is None:
        yield q.sample((num_samples,))  # (S, batch, z_dim)
        return
    batch, z_dim = base.loc.shape
    eps = _standard_noise(num_samples, z_dim, base.loc)
    for e in eps.split(max(1, _MAX_ELEMENTS // (batch * z_dim))):
        z = base.loc + base.scale * e[:, None, :]  # (s, batch, z_dim)
        for t in q.transforms:
            z = t(z)
        yield z


def moments(q: Distribution, num_samples: int = MOMENT_SAMPLES) -> PosteriorSummary:
    """Mean and standard deviation of one batch's guide ``q`` (batch shape ``(b,)``, event
    shape ``(z_dim,)``), exact where a closed form exists, else by Monte Carlo.

    :param q: the guide's distribution, as from ``vae.encode(x)``.
    :param num_samples: S, draws per data point for the Monte Carlo case (>= 2).
    :returns: :class:`PosteriorSummary` with ``(b, z_dim)`` tensors.
    """
    kind = guide_kind(q)
    if kind == "normal":
        normal = diagonal_normal(q)
        return PosteriorSummary(normal.loc, normal.scale, kind)
    if kind in ("point_mass", "closed_form"):
        return PosteriorSummary(q.mean, q.variance.sqrt(), kind)
    at_least("num_samples", num_samples, 2, " for Monte Carlo moments")
    total = total_sq = 0.0
    for z in _draw_chunks(q, num_samples):
        dtype = z.dtype
        z = z.double()  # (s, b, z_dim): float64 sums, so the variance does not cancel away
        total = total + z.sum(0)
        total_sq = total_sq + (z * z).sum(0)
    mean = total / num_samples  # (b, z_dim)
    var = (total_sq / num_samples - mean * mean).clamp_min(0)
    return PosteriorSummary(mean.to(dtype), var.sqrt().to(dtype), kind)


def posteriors(vae, x: torch.Tensor | Iterable, batch_size: int = 1000) -> Iterator[Distribution]:
    """``vae.encode`` of each batch of ``x`` on the model's device: the one place that walks a
    data set through the guide. The data are checked now, for the encoder
    (:func:`~pyrovae.models.validation.checked_data` with ``encode_only=True``: grey levels in
    [0, 1] pass under a Bernoulli likelihood, 8-bit pixels and non-finite values do not).

    :param vae: the model.
    :param x: ``(N, *x_shape)`` or an iterable of batches.
    :param batch_size: data points per batch (for a tensor ``x``).
    :returns: an iterator of distributions with batch shape ``(b,)``, event shape ``(z_dim,)``.
    :raises TypeError: for data that are not a tensor or an iterable of batches.
    :raises ValueError: for a wrong shape, dtype or values, or a bad ``batch_size``.
    """
    return _encoded(vae, checked_data(vae, x, encode_only=True).batches(batch_size, model_device(vae)))


@torch.no_grad()
def _encoded(vae, batches: Iterator[torch.Tensor]) -> Iterator[Distribution]:
    for xb in batches:
        yield vae.encode(xb)


@torch.no_grad()
def encode_all(
    vae, x: torch.Tensor | Iterable, batch_size: int = 1000, num_samples: int = MOMENT_SAMPLES
) -> PosteriorSummary:
    """The mean and standard deviation of q(z|x) for every data point, per dimension.

    Honours ``vae.guide_flow`` (Monte Carlo moments) and the Autoencoder's point mass (see
    the module docstring).

    :param vae: the model (any guide).
    :param x: ``(N, *x_shape)`` or an iterable of batches.
    :param batch_size: data points per batch.
    :param num_samples: S, draws per data point when the guide has no closed-form moments.
    :returns: :class:`PosteriorSummary` of ``(N, z_dim)`` tensors on the model's device.
    """
    parts = [moments(q, num_samples) for q in posteriors(vae, x, batch_size)]
    if not parts:
        raise ValueError("encode_all needs at least one data point, got an empty iterable")
    return PosteriorSummary(torch.cat([p.loc for p in parts]), torch.cat([p.scale for p in parts]), parts[0].kind)
