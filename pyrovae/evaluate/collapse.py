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

from ..distributions.mixture import diagonal_normal_mixture
from ..models.validation import checked_data
from .posterior import PosteriorSummary, diagonal_normal, encode_all, guide_kind, posteriors

#: Burda et al.'s threshold on Cov_x(E_q[z_d]) for an active unit.
ACTIVE_THRESHOLD = 0.01


def unit_activity(vae, x: torch.Tensor | Iterable, batch_size: int = 1000) -> torch.Tensor:
    r"""Activity of each latent dimension: :math:`A_d = \mathrm{Var}_x(\mathbb{E}_{q(z|x)}[z_d])`.

    The posterior means come from :func:`pyrovae.evaluate.posterior.encode_all`, so a flow
    guide's mean is its own (Monte Carlo, with noise shared across x), not its base's, and
    an Autoencoder's is its code.

    :param vae: the model.
    :param x: ``(N, *x_shape)`` (N ≥ 2) or an iterable of batches.
    :param batch_size: data points per batch.
    :returns: ``(z_dim,)``.
    """
    return _activity(encode_all(vae, x, batch_size))


def _activity(summary: PosteriorSummary) -> torch.Tensor:
    if len(summary.loc) < 2:
        raise ValueError(f"unit activity is a variance over data points: need N >= 2, got {len(summary.loc)}")
    return summary.loc.var(0)  # (z_dim,)


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


def _point_mass_error(what: str) -> ValueError:
    return ValueError(
        f"{what}: q(z|x) is a point mass (e.g. pyrovae.models.Autoencoder), whose KL to a continuous "
        "prior is infinite; use unit_activity and mutual_information for such a model"
    )


@torch.no_grad()
def kl_per_dim(vae, x: torch.Tensor | Iterable, num_samples: int = 16, batch_size: int = 1000) -> torch.Tensor:
    r"""KL of each latent dimension, per data point: :math:`\mathrm{KL}(q(z_d|x) \,\|\, p(z_d))`.

    Closed form for a diagonal Normal guide and a factorised Normal prior (then the
    dimensions sum to the ELBO's KL term). For a mixture prior (mixture of Gaussians,
    VampPrior) the prior does not factorise; each dimension is compared with the prior's
    marginal :math:`p(z_d)` by Monte Carlo with ``num_samples`` draws, and the dimensions no
    longer sum to the total KL.

    A guide whose marginals are not Normal (a flow guide) is replaced, per dimension, by the
    Normal with the same mean and variance (:func:`~pyrovae.evaluate.posterior.encode_all`).
    Against a Normal prior marginal that is a lower bound on the true
    :math:`\mathrm{KL}(q(z_d|x)\,\|\,p(z_d))`, exact when the marginal is Normal: the
    cross-entropy term depends on the first two moments only, and the Normal has the
    largest entropy for its variance.

    :param vae: the model.
    :param x: ``(N, *x_shape)`` or an iterable of batches.
    :param num_samples: draws per data point for the Monte Carlo case.
    :param batch_size: data points per batch.
    :returns: ``(N, z_dim)`` in nats.
    :raises ValueError: for a prior whose marginals are not known, or a point-mass guide.
    """
    return _kl_per_dim(vae, encode_all(vae, x, batch_size), num_samples)


def _kl_per_dim(vae, summary: PosteriorSummary, num_samples: int = 16) -> torch.Tensor:
    marg = _prior_marginals(vae.prior())
    if marg is None:
        raise ValueError(
            "kl_per_dim needs a factorised Normal or a mixture-of-diagonal-Normals prior, "
            f"got {type(vae.prior()).__name__}"
        )
    if summary.kind == "point_mass":
        raise _point_mass_error("kl_per_dim")
    q = Normal(summary.loc, summary.scale)
    if isinstance(marg, Normal):
        return torch.distributions.kl_divergence(q, marg)  # (N, z_dim)
    z = q.sample((num_samples,))  # (S, N, z_dim)
    return (q.log_prob(z) - marg.log_prob(z)).mean(0)


class AggregatePosterior(NamedTuple):
    """Hoffman & Johnson's split of the average KL term, in nats (floats)."""

    mutual_information: float  # I_q(x; z)
    aggregate_kl: float  # KL(q(z) || p(z))
    mean_kl: float  # E_x KL(q(z|x) || p(z)) from the same draws = the sum of the two


def _split(own: torch.Tensor, agg: torch.Tensor, log_p: torch.Tensor) -> AggregatePosterior:
    # each (S*N,): log q(z_i|x_i), log q(z_i), log p(z_i)
    own, agg, log_p = own.double(), agg.double(), log_p.double()
    return AggregatePosterior(float((own - agg).mean()), float((agg - log_p).mean()), float((own - log_p).mean()))


def _point_mass_split(codes: torch.Tensor) -> AggregatePosterior:
    # q(z) is the empirical distribution of the codes: I(x; z) = H(z), log N when all differ;
    # a discrete q(z) against a continuous prior has infinite KL
    _, counts = torch.unique(codes, dim=0, return_counts=True)
    p = counts.double() / len(codes)
    return AggregatePosterior(float(-(p * p.log()).sum()), math.inf, math.inf)


def _log_q_table(qs: list, z: torch.Tensor, max_pairs: int = 2**18) -> torch.Tensor:
    """log q(z_i | x_n) for every draw i and data point n, ``(c, N)``, for any guide: each
    batch's q scores every draw (a flow inverts each one: ``z_dim`` passes per step)."""
    cols = []
    for q in qs:
        b = q.batch_shape[0]
        cols.append(torch.cat([q.log_prob(zc[:, None, :].expand(-1, b, -1))  # (c', b)
                               for zc in z.split(max(1, max_pairs // b))]))
    return torch.cat(cols, dim=1)  # (c, N)


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

    Any guide works. A diagonal Normal's q(z) is a mixture scored by matrix products; a flow
    guide's densities :math:`q(z_i|x_n)` are evaluated one by one (``z_dim`` network passes
    per flow step for each of the :math:`N^2` pairs: use a few hundred points). For a point
    mass (an Autoencoder) q(z) is the empirical distribution of the codes, so
    :math:`I = H(z)` (``log N`` when all codes differ) and the KL to a continuous prior is
    infinite.

    :param vae: the model.
    :param x: ``(N, *x_shape)`` or an iterable of batches.
    :param num_samples: draws per data point.
    :param batch_size: data points per encoder batch.
    :param chunk_size: draws evaluated against all N posteriors at once.
    """
    qs = list(posteriors(vae, x, batch_size))
    kind = guide_kind(qs[0])
    if kind == "point_mass":
        return _point_mass_split(torch.cat([q.mean for q in qs]))
    draws = [q.sample((num_samples,)) for q in qs]  # each (S, b, z_dim)
    # scored while still the flows' own outputs, so that they reuse the cached log-scales
    own = torch.cat([q.log_prob(zb) for q, zb in zip(qs, draws)], dim=1)  # (S, N)
    z = torch.cat(draws, dim=1)  # (S, N, z_dim): column i drawn from q(z|x_i)
    n = z.shape[1]
    z, own = z.reshape(-1, z.shape[-1]), own.reshape(-1)  # (S*N, z_dim), (S*N,) log q(z_i|x_i)
    if kind == "normal":
        normals = [diagonal_normal(q) for q in qs]
        # q(z) of a diagonal-Normal guide is a uniform mixture of the N posteriors
        mixture = diagonal_normal_mixture(z.new_zeros(n), torch.cat([q.loc for q in normals]),
                                          torch.cat([q.scale for q in normals]))
        agg = torch.cat([mixture.log_prob(zc) for zc in z.split(chunk_size)])  # (S*N,)
    else:
        agg = torch.cat([_log_q_table(qs, zc).logsumexp(1) - math.log(n) for zc in z.split(chunk_size)])
    return _split(own, agg, vae.prior().log_prob(z))


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


def collapse_report(vae, x: torch.Tensor | Iterable, threshold: float = ACTIVE_THRESHOLD,
                    batch_size: int = 1000) -> str:
    """Say in words which latent dimensions are collapsed.

    A dimension is *collapsed* when its activity :math:`\\mathrm{Var}_x(\\mathbb{E}_q[z_d])` is at
    most ``threshold`` (Burda et al.'s 0.01): its posterior mean ignores the input. The report
    gives the count, the names, each dimension's activity and average KL, and the mutual
    information. Any guide works (see :func:`kl_per_dim` and :func:`aggregate_posterior`).

    :param vae: the model.
    :param x: ``(N, *x_shape)`` or an iterable of batches (a few thousand points).
    :param threshold: the activity threshold.
    :param batch_size: data points per batch.
    :raises TypeError: for data that are not a tensor or an iterable of batches.
    :raises ValueError: for bad data (checked once, for the encoder) or settings.
    """
    x = checked_data(vae, x, encode_only=True)  # once, for both passes below
    summary = encode_all(vae, x, batch_size)
    activity = _activity(summary).cpu()  # (z_dim,)
    z_dim = len(activity)
    collapsed = [d for d in range(z_dim) if activity[d] <= threshold]
    active = [d for d in range(z_dim) if activity[d] > threshold]
    try:
        kl = _kl_per_dim(vae, summary).mean(0).detach().cpu()  # (z_dim,)
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
    if summary.kind == "point_mass":
        lines.append("q(z|x) is a point mass (an autoencoder): I(x; z) is the entropy of the codes (log N when "
                     "all differ), and the KL terms against the continuous prior are infinite.")
    lines.append("per dimension: activity" + (", mean KL (nats)" if kl is not None else ""))
    for d in range(z_dim):
        tag = "collapsed" if d in collapsed else "active"
        kl_text = f", KL {float(kl[d]):.3f}" if kl is not None else ""
        lines.append(f"  z[{d}]: activity {float(activity[d]):.4f}{kl_text} ({tag})")
    return "\n".join(lines)
