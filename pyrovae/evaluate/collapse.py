r"""Posterior-collapse diagnostics: active units, KL per dimension, mutual information and the
aggregate posterior's distance from the prior.

The average KL term of the ELBO splits into two parts (Hoffman & Johnson 2016):

.. math::

    \mathbb{E}_{p_d(x)}\,\mathrm{KL}(q(z|x) \,\|\, p(z))
        = \underbrace{I_q(x; z)}_{\text{mutual information}}
        + \underbrace{\mathrm{KL}(q(z) \,\|\, p(z))}_{\text{aggregate posterior vs prior}},
    \qquad q(z) = \frac{1}{N} \sum_n q(z|x_n).

A collapsed latent dimension carries no information about x: its posterior mean does not
move with x (it is not an *active unit*, Burda et al. 2016) and its KL is near zero.

References:

1. Burda, Y., Grosse, R. and Salakhutdinov, R. (2016). Importance Weighted Autoencoders. ICLR
   (active units, §5.2).
2. Hoffman, M. D. and Johnson, M. J. (2016). ELBO surgery: yet another way to carve up the
   variational evidence lower bound. NeurIPS Workshop on Advances in Approximate Bayesian
   Inference.
3. Dieng, A. B., Kim, Y., Rush, A. M. and Blei, D. M. (2019). Avoiding Latent Variable
   Collapse with Generative Skip Models. AISTATS (the mutual-information estimator).
4. He, J., Spokoyny, D., Neubig, G. and Berg-Kirkpatrick, T. (2019). Lagging Inference
   Networks and Posterior Collapse in Variational Autoencoders. ICLR.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import NamedTuple

import pyro.distributions as dist
import torch
from torch.distributions import Independent, Normal

from .._util.batching import _batches, model_device

#: Burda et al.'s threshold on Cov_x(E_q[z_d]) for an active unit.
ACTIVE_THRESHOLD = 0.01


def _encode_all(vae, x: torch.Tensor | Iterable, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    device = model_device(vae)
    locs, scales = [], []
    with torch.no_grad():
        for xb in _batches(x, batch_size):
            q = vae.encode(xb.to(device)).base_dist  # Normal, batch_shape (b, z_dim)
            locs.append(q.loc)
            scales.append(q.scale)
    return torch.cat(locs), torch.cat(scales)  # each (N, z_dim)


def unit_activity(vae, x: torch.Tensor | Iterable, batch_size: int = 1000) -> torch.Tensor:
    r"""Activity of each latent dimension: :math:`A_d = \mathrm{Var}_x(\mathbb{E}_{q(z|x)}[z_d])`.

    :param vae: the model.
    :param x: ``(N, *x_shape)`` (N ≥ 2) or an iterable of batches.
    :param batch_size: data points per batch.
    :returns: ``(z_dim,)``.
    """
    loc, _ = _encode_all(vae, x, batch_size)  # (N, z_dim)
    if len(loc) < 2:
        raise ValueError(f"unit activity is a variance over data points: need N >= 2, got {len(loc)}")
    return loc.var(0)


def active_units(vae, x: torch.Tensor | Iterable, threshold: float = ACTIVE_THRESHOLD, batch_size: int = 1000) -> int:
    r"""Number of active latent dimensions (Burda et al. 2016): those with
    :math:`\mathrm{Cov}_x(\mathbb{E}_{q(z|x)}[z_d]) > 0.01`.

    :param vae: the model.
    :param x: ``(N, *x_shape)`` or an iterable of batches.
    :param threshold: activity above which a dimension counts as active.
    :param batch_size: data points per batch.
    """
    return int((unit_activity(vae, x, batch_size) > threshold).sum())


def _prior_marginals(prior: dist.Distribution) -> dist.Distribution | None:
    """The prior's one-dimensional marginals as a distribution with batch shape ``(z_dim,)``,
    for factorised Normals and mixtures of diagonal Normals; ``None`` otherwise."""
    base = prior.base_dist if isinstance(prior, Independent) else prior
    if isinstance(base, Normal) and isinstance(prior, Independent):
        return base
    if isinstance(prior, dist.MixtureSameFamily):
        comp = prior.component_distribution
        comp = comp.base_dist if isinstance(comp, Independent) else comp
        if isinstance(comp, Normal):
            locs, scales = comp.loc, comp.scale  # each (K, z_dim)
            logits = prior.mixture_distribution.logits.expand(locs.shape[-1], -1)  # (z_dim, K)
            return dist.MixtureSameFamily(dist.Categorical(logits=logits), dist.Normal(locs.T, scales.T))
    return None


@torch.no_grad()
def kl_per_dim(vae, x: torch.Tensor | Iterable, num_samples: int = 16, batch_size: int = 1000) -> torch.Tensor:
    r"""KL of each latent dimension, per data point: :math:`\mathrm{KL}(q(z_d|x) \,\|\, p(z_d))`.

    Closed form for a factorised Normal prior (then the dimensions sum to the ELBO's KL term).
    For a mixture prior (mixture of Gaussians, VampPrior) the prior does not factorise; each
    dimension is compared with the prior's marginal :math:`p(z_d)` by Monte Carlo with
    ``num_samples`` draws, and the dimensions no longer sum to the total KL.

    :param vae: the model.
    :param x: ``(N, *x_shape)`` or an iterable of batches.
    :param num_samples: draws per data point for the Monte Carlo case.
    :param batch_size: data points per batch.
    :returns: ``(N, z_dim)`` in nats.
    :raises ValueError: for a prior whose marginals are not known.
    """
    loc, scale = _encode_all(vae, x, batch_size)  # (N, z_dim)
    marg = _prior_marginals(vae.prior())
    if marg is None:
        raise ValueError(
            f"kl_per_dim needs a factorised Normal or a mixture-of-diagonal-Normals prior, got {type(vae.prior()).__name__}"
        )
    q = Normal(loc, scale)
    if isinstance(marg, Normal):
        return torch.distributions.kl_divergence(q, marg)  # (N, z_dim)
    z = q.sample((num_samples,))  # (S, N, z_dim)
    return (q.log_prob(z) - marg.log_prob(z)).mean(0)


def _log_q_all(z: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """log q(z_i | x_n) for every draw i and data point n, ``(c, N)``, by expanding the square
    into matrix products (memory ``O(c N)`` rather than ``O(c N z_dim)``), in float64 so the
    expanded terms cancel accurately."""
    z, loc, scale = z.double(), loc.double(), scale.double()
    inv_var = scale.pow(-2)  # (N, D)
    const = -0.5 * (loc.pow(2) * inv_var).sum(1) - scale.log().sum(1) - 0.5 * loc.shape[1] * math.log(2 * math.pi)  # (N,)
    return -0.5 * z.pow(2) @ inv_var.T + z @ (loc * inv_var).T + const  # (c, N)


class AggregatePosterior(NamedTuple):
    """Hoffman & Johnson's split of the average KL term, in nats (floats)."""

    mutual_information: float  # I_q(x; z)
    aggregate_kl: float  # KL(q(z) || p(z))
    mean_kl: float  # E_x KL(q(z|x) || p(z)) from the same draws = the sum of the two


@torch.no_grad()
def aggregate_posterior(
    vae, x: torch.Tensor | Iterable, num_samples: int = 1, batch_size: int = 1000, chunk_size: int = 500
) -> AggregatePosterior:
    r"""Estimate :math:`I_q(x;z)` and :math:`\mathrm{KL}(q(z)\,\|\,p(z))` from the data set.

    Draws :math:`z_i \sim q(z|x_i)` and evaluates the aggregate posterior
    :math:`\log q(z_i) = \log \frac{1}{N}\sum_n q(z_i|x_n)` over all N data points (in chunks,
    ``O(N^2 z_dim)`` work, ``O(chunk_size N)`` memory), then (Dieng et al. 2019; Hoffman & Johnson 2016)

    .. math::

        \hat I = \frac{1}{N}\sum_i \left[\log q(z_i|x_i) - \log q(z_i)\right], \qquad
        \widehat{\mathrm{KL}}(q(z)\|p(z)) = \frac{1}{N}\sum_i \left[\log q(z_i) - \log p(z_i)\right].

    :math:`\hat I \le \log N`: a data set of N points cannot show more information than that,
    so use a few thousand points. Both estimates are consistent as N grows; for a collapsed
    model :math:`\hat I` is near 0 and may come out slightly negative (Monte Carlo noise).

    :param vae: the model.
    :param x: ``(N, *x_shape)`` or an iterable of batches.
    :param num_samples: draws per data point.
    :param batch_size: data points per encoder batch.
    :param chunk_size: draws evaluated against all N posteriors at once.
    """
    loc, scale = _encode_all(vae, x, batch_size)  # (N, z_dim)
    n = len(loc)
    q_all = Normal(loc, scale)
    z = q_all.sample((num_samples,)).reshape(-1, loc.shape[1])  # (S*N, z_dim) row s*N+i from x_i
    own = q_all.log_prob(z.reshape(num_samples, n, -1)).sum(-1).reshape(-1)  # (S*N,) log q(z_i|x_i)
    agg = torch.cat([_log_q_all(zc, loc, scale).logsumexp(1) - math.log(n) for zc in z.split(chunk_size)])  # (S*N,)
    log_p = vae.prior().log_prob(z)  # (S*N,)
    own, log_p = own.double(), log_p.double()
    mi = float((own - agg).mean())
    akl = float((agg - log_p).mean())
    return AggregatePosterior(mi, akl, float((own - log_p).mean()))


def mutual_information(vae, x: torch.Tensor | Iterable, **kwargs) -> float:
    r"""Mutual information :math:`I_q(x;z)` under the aggregate posterior, in nats
    (see :func:`aggregate_posterior`)."""
    return aggregate_posterior(vae, x, **kwargs).mutual_information


def aggregate_kl(vae, x: torch.Tensor | Iterable, **kwargs) -> float:
    r""":math:`\mathrm{KL}(q(z) \,\|\, p(z))` between the aggregate posterior and the prior, in
    nats (see :func:`aggregate_posterior`)."""
    return aggregate_posterior(vae, x, **kwargs).aggregate_kl


def _dims(ds: list[int]) -> str:
    return ", ".join(f"z[{d}]" for d in ds)


def collapse_report(vae, x: torch.Tensor | Iterable, threshold: float = ACTIVE_THRESHOLD, batch_size: int = 1000) -> str:
    """Say in words which latent dimensions are collapsed.

    A dimension is *collapsed* when its activity :math:`\\mathrm{Var}_x(\\mathbb{E}_q[z_d])` is at
    most ``threshold`` (Burda et al.'s 0.01): its posterior mean ignores the input. The report
    gives the count, the names, each dimension's activity and average KL, and the mutual
    information.

    :param vae: the model.
    :param x: ``(N, *x_shape)`` or an iterable of batches (a few thousand points).
    :param threshold: the activity threshold.
    :param batch_size: data points per batch.
    """
    activity = unit_activity(vae, x, batch_size).cpu()  # (z_dim,)
    z_dim = len(activity)
    collapsed = [d for d in range(z_dim) if activity[d] <= threshold]
    active = [d for d in range(z_dim) if activity[d] > threshold]
    try:
        kl = kl_per_dim(vae, x, batch_size=batch_size).mean(0).cpu()  # (z_dim,)
    except ValueError:
        kl = None
    info = aggregate_posterior(vae, x, batch_size=batch_size)
    lines = [f"{len(active)} of {z_dim} latent dimensions are active (Var_x E_q[z_d] > {threshold:g})."]
    if not active:
        lines.append(f"Posterior collapse: all {z_dim} dimensions are collapsed; q(z|x) ignores x.")
    elif collapsed:
        lines.append(f"Collapsed ({len(collapsed)}): {_dims(collapsed)}.")
    else:
        lines.append("No dimension is collapsed.")
    if active:
        lines.append(f"Active ({len(active)}): {_dims(active)}.")
    lines.append(f"Mutual information I(x; z) = {info.mutual_information:.3f} nats; "
                 f"KL(q(z) || p(z)) = {info.aggregate_kl:.3f} nats.")
    lines.append("per dimension: activity" + (", mean KL (nats)" if kl is not None else ""))
    for d in range(z_dim):
        tag = "collapsed" if d in collapsed else "active"
        kl_text = f", KL {float(kl[d]):.3f}" if kl is not None else ""
        lines.append(f"  z[{d}]: activity {float(activity[d]):.4f}{kl_text} ({tag})")
    return "\n".join(lines)
