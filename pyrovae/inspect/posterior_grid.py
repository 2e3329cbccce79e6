r"""The true posterior of a 2-D latent, computed on a grid, against the guide.

For one input x, the unnormalised log joint :math:`\log p(x, z) = \log p(z) + \log p(x|z)` is
evaluated on a grid of z and normalised numerically,

.. math::

    p(z \mid x) \approx \frac{p(x, z)}{\sum_{g} p(x, z_g)\, \Delta A}, \qquad
    \log p(x) \approx \log \sum_g p(x, z_g)\, \Delta A,

and compared with :math:`q(z|x)` evaluated (and renormalised) on the same grid. Both KL
directions are sums over the grid:

.. math::

    \mathrm{KL}(q \,\|\, p) = \sum_g q_g (\log q_g - \log p_g)\, \Delta A, \qquad
    \mathrm{KL}(p \,\|\, q) = \sum_g p_g (\log p_g - \log q_g)\, \Delta A.

:math:`\mathrm{KL}(q\|p(z|x))` is the ELBO gap; the ELBO makes q small here (mode-seeking),
so q typically sits inside p and :math:`\mathrm{KL}(p\|q)` is the larger of the two.

Each density's contours for a figure are its highest-density regions of the 1-, 2- and
3-sigma masses (39.3%, 86.5%, 98.9% of its mass on the grid;
:func:`pyrovae.inspect.density.hdr_levels`).

References:

1. Kingma, D. P. and Welling, M. (2014). Auto-Encoding Variational Bayes. ICLR.
2. Cremer, C., Li, X. and Duvenaud, D. (2018). Inference Suboptimality in Variational
   Autoencoders. ICML (true posteriors of 2-D latents on a grid, Fig. 2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..evaluate.posterior import moments
from ..models import VAE
from ..models.validation import check_inputs
from .density import SIGMA_MASSES, hdr_levels, latent_extent


@dataclass
class PosteriorGrid:
    """The true posterior and the guide of one input, on a grid."""

    z0: torch.Tensor  # (n,) grid values of z[0]
    z1: torch.Tensor  # (n,) grid values of z[1]
    log_joint: torch.Tensor  # (n, n) log p(x, z), indexed [i1, i0] (rows follow z[1])
    log_post: torch.Tensor  # (n, n) log p(z|x), normalised on the grid
    log_q: torch.Tensor  # (n, n) log q(z|x), normalised on the grid
    log_px: float  # log p(x) by quadrature
    kl_q_p: float  # KL(q || p(z|x)) on the grid, nats (the ELBO gap)
    kl_p_q: float  # KL(p(z|x) || q) on the grid, nats
    mean: torch.Tensor  # (2,) mean of the grid posterior
    cov: torch.Tensor  # (2, 2) covariance of the grid posterior
    q_loc: torch.Tensor  # (2,) the guide's mean (Monte Carlo for a flow guide)
    q_scale: torch.Tensor  # (2,) the guide's standard deviations
    masses: tuple[float, ...] = SIGMA_MASSES  # HDR masses of the levels: the 1-, 2- and 3-sigma masses
    post_levels: torch.Tensor | None = None  # (len(masses),) log p(z|x) levels enclosing each mass on the grid
    q_levels: torch.Tensor | None = None  # (len(masses),) log q(z|x) levels enclosing each mass on the grid

    def __post_init__(self) -> None:
        # the figures' contours: regions of each density's own mass, never an underflow level
        if self.post_levels is None:
            self.post_levels = hdr_levels(self.log_post, self.masses)
        if self.q_levels is None:
            self.q_levels = hdr_levels(self.log_q, self.masses)


def _box(center: torch.Tensor, half: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return center - half, center + half


@torch.no_grad()
def _log_joint(vae: VAE, x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, n: int, chunk: int):
    z0 = torch.linspace(float(lo[0]), float(hi[0]), n, dtype=lo.dtype, device=lo.device)
    z1 = torch.linspace(float(lo[1]), float(hi[1]), n, dtype=lo.dtype, device=lo.device)
    zz = torch.stack(torch.meshgrid(z1, z0, indexing="ij")[::-1], -1).reshape(-1, 2)  # (n*n, 2) as (z0, z1)
    prior = vae.prior()
    parts = [prior.log_prob(zc) + vae.decode(zc[:, None, :]).log_prob(x).squeeze(1) for zc in zz.split(chunk)]
    return z0, z1, zz, torch.cat(parts).reshape(n, n)  # (n, n) indexed [i1, i0]


def _normalise(log_f: torch.Tensor, area: float) -> tuple[torch.Tensor, float]:
    log_z = float(torch.logsumexp(log_f.flatten(), 0)) + math.log(area)
    return log_f - log_z, log_z


def _edge_mass(log_p: torch.Tensor, area: float) -> float:
    """Probability mass of the grid's outermost cells."""
    cells = log_p.exp() * area  # (n, n)
    inner = cells[1:-1, 1:-1].sum()
    return float(cells.sum() - inner)


def _moments(log_p: torch.Tensor, zz: torch.Tensor, area: float) -> tuple[torch.Tensor, torch.Tensor]:
    w = (log_p.exp() * area).reshape(-1, 1)  # (n*n, 1) probability mass per cell
    mean = (w * zz).sum(0) / w.sum()
    d = zz - mean
    return mean, (w * d).T @ d / w.sum()


@torch.no_grad()
def posterior_grid(
    vae: VAE, x: torch.Tensor, n: int = 121, extent: tuple[tuple[float, float], tuple[float, float]] | None = None,
    width: float = 5.0, chunk: int = 4096,
) -> PosteriorGrid:
    """Evaluate p(z|x) and q(z|x) on a grid over a 2-D latent and compare them.

    Without ``extent``, the grid is found in passes. The first locates the true posterior
    on the union of the prior's own span (the 0.1%-99.9% quantiles of draws from the model's
    prior, whatever its family; :func:`pyrovae.inspect.density.latent_extent`) and q's
    ±``width`` sd box; while more than 1% of the posterior's grid mass lies on the box's edge,
    the box doubles about its centre (up to 3 times). Then the grid covers ±``width`` standard
    deviations of both p(z|x) and q(z|x), laid out twice: from the first grid's moments of p,
    then from the finer second grid's (a narrow posterior in a wide prior is found coarsely
    first).

    :param vae: a model with ``z_dim == 2``.
    :param x: one input ``x_shape`` (or ``(1, *x_shape)``), as the model sees data (binarised
        for a Bernoulli likelihood).
    :param n: grid points per axis.
    :param extent: ``((lo0, hi0), (lo1, hi1))`` to fix the grid.
    :param width: box half-width in standard deviations (automatic extent).
    :param chunk: grid points per decoder call.
    :returns: :class:`PosteriorGrid`.
    :raises TypeError: for an input that is not a tensor.
    :raises ValueError: for ``z_dim != 2``, a batch of inputs, data the model cannot score
        (:func:`~pyrovae.models.validation.check_inputs`), or a point-mass guide.
    """
    if vae.z_dim != 2:
        raise ValueError(f"the posterior grid needs a 2-D latent (z_dim == 2), got z_dim={vae.z_dim}")
    x = check_inputs(vae, x, one=True, encode_only=False)  # scored: p(x|z) on every grid point
    q = vae.encode(x)  # batch_shape (1,), event_shape (2,): any guide with a density
    summary = moments(q)
    if summary.kind == "point_mass":
        raise ValueError("posterior_grid compares densities, but this guide is a point mass (an autoencoder): "
                         "it has no density on the grid")
    q_loc, q_scale = summary.loc[0], summary.scale[0]  # (2,) each: the box is laid out from q's moments
    if extent is not None:
        lo = torch.tensor([extent[0][0], extent[1][0]], dtype=q_loc.dtype, device=q_loc.device)
        hi = torch.tensor([extent[0][1], extent[1][1]], dtype=q_loc.dtype, device=q_loc.device)
    else:
        lo_q, hi_q = _box(q_loc, width * q_scale)
        lo_prior, hi_prior = latent_extent(vae, (0, 1), 0.001, 0.999)  # (2,) each, float64 on the CPU
        lo = torch.minimum(lo_q, lo_prior.to(lo_q))
        hi = torch.maximum(hi_q, hi_prior.to(hi_q))
        for attempt in range(4):
            z0, z1, zz, lj = _log_joint(vae, x, lo, hi, n, chunk)
            area = float((z0[1] - z0[0]) * (z1[1] - z1[0]))
            log_p = _normalise(lj, area)[0]
            if attempt == 3 or _edge_mass(log_p, area) <= 0.01:
                break
            centre, half = (lo + hi) / 2, (hi - lo)  # the posterior runs off the box: double it
            lo, hi = centre - half, centre + half
        for refine in range(2):  # lay the box out from p's moments; once more from the finer grid's
            mean, cov = _moments(log_p, zz, area)
            sd = cov.diagonal().clamp_min(1e-12).sqrt()
            lo_p, hi_p = _box(mean, width * torch.maximum(sd, 2 * area**0.5 * torch.ones_like(sd)))
            lo, hi = torch.minimum(lo_p, lo_q), torch.maximum(hi_p, hi_q)
            if refine == 0:
                z0, z1, zz, lj = _log_joint(vae, x, lo, hi, n, chunk)
                area = float((z0[1] - z0[0]) * (z1[1] - z1[0]))
                log_p = _normalise(lj, area)[0]
    z0, z1, zz, lj = _log_joint(vae, x, lo, hi, n, chunk)
    area = float((z0[1] - z0[0]) * (z1[1] - z1[0]))
    log_post, log_px = _normalise(lj, area)
    log_q, _ = _normalise(q.log_prob(zz).reshape(n, n), area)  # a flow guide inverts every grid point
    p, qd = log_post.exp() * area, log_q.exp() * area  # cell masses
    kl_q_p = float((qd * (log_q - log_post)).sum())
    kl_p_q = float((p * (log_post - log_q)).sum())
    mean, cov = _moments(log_post, zz, area)
    return PosteriorGrid(z0.cpu(), z1.cpu(), lj.cpu(), log_post.cpu(), log_q.cpu(), log_px, kl_q_p, kl_p_q,
                         mean.cpu(), cov.cpu(), q_loc.cpu(), q_scale.cpu())
