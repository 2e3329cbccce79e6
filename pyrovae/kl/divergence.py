r"""KL divergences in both directions, exact where possible and Monte Carlo otherwise.

The Kullback–Leibler divergence is not symmetric:

.. math::

    \mathrm{KL}(p \,\|\, q) = \mathbb{E}_{p}\left[\log p(z) - \log q(z)\right]
    \neq \mathrm{KL}(q \,\|\, p).

Minimising the *forward* (inclusive) direction :math:`\mathrm{KL}(p\|q)` over q makes q cover
every mode of p; minimising the *reverse* (exclusive) direction :math:`\mathrm{KL}(q\|p)`,
which is what a VAE's ELBO does to its guide, makes q lock onto one mode (ref. 1, Fig. 3.6;
ref. 2). :func:`kl` uses torch/Pyro's registered closed form when there is one and a Monte
Carlo estimate with its standard error when there is not; :func:`kl_both` and
:func:`asymmetry` report both directions. Fitting a Gaussian in either direction is
:func:`fit_gaussian` (from :mod:`pyrovae.kl.fit`); the toy study is :mod:`pyrovae.kl.toy` and
the VAE study :mod:`pyrovae.kl.guides`.

References:

1. Goodfellow, I., Bengio, Y. and Courville, A. (2016). Deep Learning, §3.13 and Fig. 3.6.
   MIT Press.
2. Minka, T. (2005). Divergence measures and message passing. Microsoft Research
   Technical Report MSR-TR-2005-173.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch.distributions import Distribution, kl_divergence

from .._util.checks import at_least

__all__ = ["KLEstimate", "KLReport", "asymmetry", "kl", "kl_both"]


class KLEstimate(NamedTuple):
    """One KL divergence: the value, its Monte Carlo standard error, and how it was got."""

    value: torch.Tensor  # (*batch_shape) nats
    stderr: torch.Tensor  # (*batch_shape) 0 for a closed form
    exact: bool  # True when a registered closed form was used

    def __float__(self) -> float:
        return float(self.value)


class KLReport(NamedTuple):
    """Both directions of KL between p and q, and how far apart they are."""

    forward: KLEstimate  # KL(p || q), inclusive / mass-covering
    reverse: KLEstimate  # KL(q || p), exclusive / mode-seeking

    @property
    def difference(self) -> torch.Tensor:
        """KL(p‖q) − KL(q‖p), nats."""
        return self.forward.value - self.reverse.value

    @property
    def ratio(self) -> torch.Tensor:
        """KL(p‖q) / KL(q‖p) (``inf`` where the reverse KL is 0 and the forward one is not)."""
        return self.forward.value / self.reverse.value

    def __str__(self) -> str:
        def fmt(e: KLEstimate) -> str:
            return f"{float(e.value):.4f}" + ("" if e.exact else f" ± {float(e.stderr):.4f}")

        return (f"KL(p||q) = {fmt(self.forward)} nats, KL(q||p) = {fmt(self.reverse)} nats, "
                f"difference {float(self.difference):+.4f}")


def _check(d: object, name: str) -> None:
    if not isinstance(d, Distribution):
        raise ValueError(f"{name} must be a torch/pyro Distribution, got {type(d).__name__}")  # noqa: TRY004 (the API raises ValueError for bad input)


@torch.no_grad()
def kl(p: Distribution, q: Distribution, num_samples: int = 10000, exact: bool | None = None) -> KLEstimate:
    r"""KL(p‖q), by closed form when torch/Pyro has one, else by Monte Carlo.

    .. math::

        \widehat{\mathrm{KL}}(p\|q) = \frac1S \sum_{s=1}^S \log p(z_s) - \log q(z_s),
        \qquad z_s \sim p,

    with standard error :math:`\hat\sigma / \sqrt S` (:math:`\hat\sigma` the sample standard
    deviation of the summands).

    :param p: the distribution the expectation is under (must be sampleable for Monte Carlo).
    :param q: the other distribution; its support must contain p's.
    :param num_samples: S, draws for the Monte Carlo estimate.
    :param exact: ``True`` requires the closed form (``NotImplementedError`` if none),
        ``False`` forces Monte Carlo, ``None`` (default) uses the closed form when available.
    :returns: a :class:`KLEstimate` with tensors of p and q's broadcast batch shape.
    :raises ValueError: for arguments that are not distributions, different event shapes,
        or ``num_samples < 2``.
    """
    _check(p, "p")
    _check(q, "q")
    if p.event_shape != q.event_shape:
        raise ValueError(f"p and q must have the same event shape, got {tuple(p.event_shape)} and {tuple(q.event_shape)}")
    if exact is not False:
        try:
            value = kl_divergence(p, q)  # (*batch_shape)
            return KLEstimate(value, torch.zeros_like(value), True)
        except NotImplementedError:
            if exact:
                raise
    at_least("num_samples", num_samples, 2, " for a Monte Carlo estimate")
    z = p.sample((num_samples,))  # (S, *batch_shape, *event_shape)
    terms = p.log_prob(z) - q.log_prob(z)  # (S, *batch_shape)
    return KLEstimate(terms.mean(0), terms.std(0) / math.sqrt(num_samples), False)


def kl_both(p: Distribution, q: Distribution, num_samples: int = 10000) -> tuple[KLEstimate, KLEstimate]:
    """Both directions: ``(KL(p‖q), KL(q‖p))``, each a :class:`KLEstimate`.

    :param p: first distribution (the target, in the toy studies).
    :param q: second distribution (the approximation).
    :param num_samples: draws for any direction without a closed form.

    Example: two unit Normals one apart in each of 2 dimensions, KL = 2 × 1/2 both ways.

    >>> import torch, pyro.distributions as dist
    >>> from pyrovae import kl
    >>> p = dist.Normal(torch.zeros(2), torch.ones(2)).to_event(1)
    >>> q = dist.Normal(torch.ones(2), torch.ones(2)).to_event(1)
    >>> forward, reverse = kl.kl_both(p, q)
    >>> round(float(forward), 4), round(float(reverse), 4), forward.exact
    (1.0, 1.0, True)
    """
    return kl(p, q, num_samples), kl(q, p, num_samples)


def asymmetry(p: Distribution, q: Distribution, num_samples: int = 10000) -> KLReport:
    """Both KL directions and their difference, printable (``print(asymmetry(p, q))``).

    :param p: first distribution.
    :param q: second distribution.
    :param num_samples: draws for any direction without a closed form.
    """
    return KLReport(*kl_both(p, q, num_samples))
