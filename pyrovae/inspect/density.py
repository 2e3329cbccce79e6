r"""Where a latent distribution has its mass: spans of prior draws or codes, the prior's
density on a 2-D grid, and highest-density levels that enclose a given mass.

Every figure that shows the latent space (the manifold, the posterior bubbles, the grid
posterior against the guide) takes its extent and its contour levels from here, so the
figures follow the model's own prior (a learned mixture, a VampPrior, any Pyro distribution)
rather than assuming N(0, I).

A highest-density region (HDR) of mass :math:`m` is :math:`R_m = \{z : f(z) \ge f_m\}`, with
the level :math:`f_m` chosen so that :math:`\int_{R_m} f = m` (Hyndman 1996). On a grid of
equal cells it is found by sorting the cells by density and accumulating their mass. For a
d-dimensional Gaussian the region is the ellipsoid of Mahalanobis radius :math:`k`, whose
mass is the :math:`\chi^2_d` distribution function at :math:`k^2`,

.. math::

    m_d(k) = P\!\left(\tfrac{d}{2}, \tfrac{k^2}{2}\right), \qquad m_2(k) = 1 - e^{-k^2/2},

so the "1-sigma" and "2-sigma" regions of a 2-D density hold 39.3% and 86.5% of its mass.

References:

1. Hyndman, R. J. (1996). Computing and graphing highest density regions. The American
   Statistician 50(2), 120-126.
2. Kingma, D. P. and Welling, M. (2014). Auto-Encoding Variational Bayes. ICLR (Fig. 4: a
   manifold over the prior's quantiles).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pyro.distributions as dist
import torch

from .._util.checks import at_least, one_of, positive_int
from ..models import VAE

__all__ = [
    "SIGMA_MASSES",
    "SOURCES",
    "DensityGrid",
    "check_dims",
    "check_quantile_range",
    "hdr_levels",
    "latent_extent",
    "latent_points",
    "marginal_distribution",
    "prior_density",
    "prior_samples",
    "sigma_mass",
    "span_of",
]

#: where :func:`latent_extent` looks for the mass: the prior, the codes of a data set (the
#: aggregate posterior), or the union of both spans
SOURCES = ("prior", "codes", "both")


def sigma_mass(k: float, dim: int = 2) -> float:
    r"""Mass of the k-sigma region of a ``dim``-dimensional Gaussian, :math:`P(d/2, k^2/2)`
    (the :math:`\chi^2_d` CDF at :math:`k^2`); ``sigma_mass(1) = 1 - exp(-1/2) = 0.3935``.

    :param k: radius in standard deviations (Mahalanobis distance), ``> 0``.
    :param dim: dimension of the Gaussian.
    :raises ValueError: for ``k <= 0``.
    """
    if not k > 0:
        raise ValueError(f"the radius k must be positive, got {k}")
    positive_int("dim", dim)
    return float(torch.special.gammainc(torch.tensor(dim / 2, dtype=torch.float64),
                                        torch.tensor(k * k / 2, dtype=torch.float64)))


#: masses of the 1-, 2- and 3-sigma regions of a 2-D Gaussian: 0.393, 0.865, 0.989
SIGMA_MASSES = tuple(sigma_mass(k) for k in (1.0, 2.0, 3.0))


def hdr_levels(log_density: torch.Tensor, masses: Sequence[float] = SIGMA_MASSES[:2]) -> torch.Tensor:
    """Log-density levels of the highest-density regions that hold ``masses`` of a gridded
    density (Hyndman 1996): the cells at or above level ``k`` hold ``masses[k]`` of the
    grid's total mass.

    Works on log densities (normalised or not, any shape; the cells must have equal areas),
    so a narrow density never underflows. The mass is the grid's: a density cut off by the
    grid's edge is renormalised to the part on the grid.

    :param log_density: log f on the cells of a grid, any shape.
    :param masses: the masses, each in (0, 1).
    :returns: ``(len(masses),)`` log levels, in the order of ``masses`` (a larger mass, a
        lower level).
    :raises ValueError: for a mass outside (0, 1) or a grid with no finite density.
    """
    for m in masses:
        if not 0 < m < 1:
            raise ValueError(f"an HDR mass must lie in (0, 1), got {m}")
    flat = log_density.detach().flatten().double()
    if not torch.isfinite(flat).any():
        raise ValueError("the gridded density is zero (or NaN) everywhere: widen or move the grid")
    flat = torch.where(torch.isnan(flat), torch.full_like(flat, -torch.inf), flat)
    order = flat.sort(descending=True).values  # (n,) highest first
    cum = torch.softmax(order, 0).cumsum(0)  # mass of the k highest cells
    idx = torch.searchsorted(cum, torch.tensor(list(masses), dtype=cum.dtype)).clamp_max(len(order) - 1)
    return order[idx].to(log_density.dtype)


def check_dims(dims: Sequence[int], z_dim: int) -> tuple[int, int]:
    """Two different latent dimensions in ``range(z_dim)``, as a tuple.

    :raises ValueError: for a repeated or out-of-range dimension, or a latent under 2-D.
    """
    dims = tuple(int(d) for d in dims)
    if len(dims) != 2 or dims[0] == dims[1] or not all(0 <= d < z_dim for d in dims):
        raise ValueError(f"dims must be two different latent dimensions in 0..{z_dim - 1}, got {dims}"
                         + (" (a 1-D latent has no 2-D map)" if z_dim < 2 else ""))
    return dims  # type: ignore[return-value]


def prior_samples(vae: VAE, num_samples: int = 10_000, seed: int | None = 0) -> torch.Tensor:
    """Draws from the model's prior p(z), on the model's device.

    :param vae: the model (any prior: a module or a Pyro distribution).
    :param num_samples: how many draws.
    :param seed: seed for the draws (the global RNG is left as it was); ``None`` for the
        global RNG as it is.
    :returns: ``(num_samples, z_dim)``.
    """
    positive_int("num_samples", num_samples)
    with torch.no_grad():
        if seed is None:
            return vae.prior().sample((num_samples,))
        device = next(vae.parameters()).device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            return vae.prior().sample((num_samples,))


def _span(points: torch.Tensor, low: float, high: float) -> tuple[torch.Tensor, torch.Tensor]:
    q = torch.quantile(points.double(), torch.tensor([low, high], dtype=torch.float64, device=points.device), dim=0)
    return q[0], q[1]  # (D,) each


def latent_points(
    vae: VAE, codes: torch.Tensor | None = None, source: str = "prior", num_samples: int = 10_000, seed: int | None = 0,
) -> list[torch.Tensor]:
    """The point sets that say where the latent mass is: prior draws, the codes, or both.

    :param vae: the model.
    :param codes: ``(N, z_dim)`` latent codes, for ``source="codes"`` or ``"both"``.
    :param source: ``"prior"``, ``"codes"`` or ``"both"`` (:data:`SOURCES`).
    :param num_samples: prior draws.
    :param seed: seed for the prior draws.
    :returns: one or two ``(S, z_dim)`` tensors on the model's device, prior draws first.
    :raises ValueError: for an unknown source, or one that needs codes without them.
    """
    one_of("latent source", source, SOURCES)
    if source != "prior" and codes is None:
        raise ValueError(f"source={source!r} spans the codes of a data set: pass codes=(N, z_dim) latent means "
                         "(inspect.encode_dataset(vae, x).loc), or use source='prior'")
    device = next(vae.parameters()).device
    points = [prior_samples(vae, num_samples, seed)] if source in ("prior", "both") else []
    return points + ([codes.detach().to(device)] if source in ("codes", "both") else [])


def check_quantile_range(low: float, high: float) -> None:
    """:raises ValueError: unless ``0 <= low < high <= 1``."""
    if not 0 <= low < high <= 1:
        raise ValueError(f"quantile range must satisfy 0 <= low < high <= 1, got ({low}, {high})")


def latent_extent(
    vae: VAE, dims: Sequence[int] = (0, 1), low: float = 0.01, high: float = 0.99,
    codes: torch.Tensor | None = None, source: str = "prior", num_samples: int = 10_000, seed: int | None = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The box where the latent mass is: per dimension, from the ``low`` to the ``high``
    quantile of prior draws, of the codes, or the union of both spans
    (:func:`latent_points`).

    :param vae: the model.
    :param dims: the latent dimensions.
    :param low: lower quantile probability.
    :param high: upper quantile probability.
    :param codes: ``(N, z_dim)`` latent codes (e.g. posterior means of a data set), for
        ``source="codes"`` or ``"both"``.
    :param source: ``"prior"``, ``"codes"`` or ``"both"`` (:data:`SOURCES`).
    :param num_samples: prior draws.
    :param seed: seed for the prior draws.
    :returns: ``(lo (len(dims),), hi (len(dims),))`` float64 on the CPU.
    :raises ValueError: for a bad quantile range, or a source that needs codes without them.
    """
    return span_of(latent_points(vae, codes, source, num_samples, seed), dims, low, high)


def span_of(
    points: Sequence[torch.Tensor], dims: Sequence[int], low: float, high: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The union over point sets of their ``low``-``high`` quantile spans in ``dims``.

    :param points: ``(S, z_dim)`` tensors (as from :func:`latent_points`).
    :param dims: the latent dimensions.
    :param low: lower quantile probability.
    :param high: upper quantile probability.
    :returns: ``(lo (len(dims),), hi (len(dims),))`` float64 on the CPU.
    """
    check_quantile_range(low, high)
    dims = list(dims)
    spans = [_span(p[:, dims], low, high) for p in points]
    lo = torch.stack([s[0].cpu() for s in spans]).min(0).values
    hi = torch.stack([s[1].cpu() for s in spans]).max(0).values
    return lo, hi


def marginal_distribution(d: dist.Distribution, dims: Sequence[int]) -> dist.Distribution | None:
    """The exact marginal of ``d`` over ``dims``, where the family allows it: a diagonal Normal
    (``Normal(...).to_event(1)``), a ``MultivariateNormal``, or a ``MixtureSameFamily`` of
    either (the mixture and VampPrior families). ``None`` for any other distribution.

    :param d: a distribution with event shape ``(z_dim,)``.
    :param dims: the dimensions to keep.
    """
    dims = list(dims)
    if isinstance(d, dist.Independent) and isinstance(d.base_dist, dist.Normal) and d.reinterpreted_batch_ndims == 1:
        return dist.Normal(d.base_dist.loc[..., dims], d.base_dist.scale[..., dims]).to_event(1)
    if isinstance(d, torch.distributions.MultivariateNormal):
        cov = d.covariance_matrix[..., dims, :][..., :, dims]
        return dist.MultivariateNormal(d.loc[..., dims], covariance_matrix=cov)
    if isinstance(d, torch.distributions.MixtureSameFamily):
        component = marginal_distribution(d.component_distribution, dims)
        if component is None:
            return None
        return dist.MixtureSameFamily(d.mixture_distribution, component)
    return None


@dataclass
class DensityGrid:
    """A 2-D (log) density on a grid, with its highest-density levels."""

    z0: torch.Tensor  # (n,) grid values of z[dims[0]]
    z1: torch.Tensor  # (n,) grid values of z[dims[1]]
    log_density: torch.Tensor  # (n, n) log density, indexed [i1, i0] (rows follow z[dims[1]])
    masses: tuple[float, ...]  # the HDR masses of the levels
    log_levels: torch.Tensor  # (len(masses),) log-density level enclosing each mass
    dims: tuple[int, int] = (0, 1)
    kind: str = "exact"  # "exact" (z_dim == 2), "marginal" (exact marginal) or "slice" (through base)


@torch.no_grad()
def prior_density(
    vae: VAE, dims: tuple[int, int] = (0, 1), n: int = 121,
    extent: tuple[tuple[float, float], tuple[float, float]] | None = None, codes: torch.Tensor | None = None,
    masses: Sequence[float] = SIGMA_MASSES[:2], base: torch.Tensor | None = None, margin: float = 0.1,
    num_samples: int = 10_000, seed: int | None = 0,
) -> DensityGrid:
    """The prior's log density ``prior().log_prob`` on an ``n × n`` grid over two latent
    dimensions, and the levels of its highest-density regions of ``masses`` (default: the
    1- and 2-sigma masses 0.393 and 0.865).

    For ``z_dim > 2`` the density is the exact 2-D marginal when the family has one
    (:func:`marginal_distribution`: diagonal Normals and their mixtures, which covers every
    built-in prior but the flow prior), else a slice through ``base`` (``kind="slice"``).

    :param vae: the model.
    :param dims: the two latent dimensions.
    :param n: grid points per axis.
    :param extent: ``((lo0, hi0), (lo1, hi1))``; default: the 0.5%-99.5% span of the prior
        and of ``codes`` (:func:`latent_extent` with ``source="both"``), widened by
        ``margin`` of its size on each side.
    :param codes: ``(N, z_dim)`` codes whose span the grid covers too.
    :param masses: HDR masses of the levels.
    :param base: ``(z_dim,)`` the other dimensions of a slice (default: the median of prior draws).
    :param margin: extra width on each side of the automatic extent, as a fraction of its size.
    :param num_samples: prior draws for the automatic extent and the slice's base.
    :param seed: seed for those draws.
    :returns: :class:`DensityGrid` on the CPU.
    """
    at_least("n", n, 2)
    prior = vae.prior()
    z_dim = prior.event_shape[0]
    dims = check_dims(dims, z_dim)
    device = next(vae.parameters()).device
    if extent is None:
        lo, hi = latent_extent(vae, dims, 0.005, 0.995, codes, "prior" if codes is None else "both", num_samples, seed)
        pad = margin * (hi - lo)
        lo, hi = lo - pad, hi + pad
    else:
        lo = torch.tensor([extent[0][0], extent[1][0]], dtype=torch.float64)
        hi = torch.tensor([extent[0][1], extent[1][1]], dtype=torch.float64)
    dtype = prior.sample().dtype
    z0 = torch.linspace(float(lo[0]), float(hi[0]), n, dtype=dtype, device=device)
    z1 = torch.linspace(float(lo[1]), float(hi[1]), n, dtype=dtype, device=device)
    zz = torch.stack(torch.meshgrid(z1, z0, indexing="ij")[::-1], -1).reshape(-1, 2)  # (n*n, 2) as (z0, z1)
    if z_dim == 2:
        kind, target, points = "exact", prior, zz if dims == (0, 1) else zz[:, [dims.index(0), dims.index(1)]]
    else:
        marginal = marginal_distribution(prior, dims)
        if marginal is not None:
            kind, target, points = "marginal", marginal, zz
        else:
            if base is None:
                base = prior_samples(vae, num_samples, seed).median(0).values
            points = base.to(device=device, dtype=dtype).repeat(n * n, 1)  # (n*n, z_dim)
            points[:, dims[0]], points[:, dims[1]] = zz[:, 0], zz[:, 1]
            kind, target = "slice", prior
    log_density = torch.cat([target.log_prob(p) for p in points.split(4096)]).reshape(n, n)  # [i1, i0]
    masses = tuple(float(m) for m in masses)
    return DensityGrid(z0.cpu(), z1.cpu(), log_density.cpu(), masses, hdr_levels(log_density, masses).cpu(), dims, kind)
