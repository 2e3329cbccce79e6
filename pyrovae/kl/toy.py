r"""The textbook picture, computed: one Gaussian fitted to a bimodal target in each KL direction.

:func:`run_toy` fits a diagonal Gaussian q to a target p (by default two well-separated 2-D
Gaussians) by minimising the forward KL (maximum likelihood on samples, and wake-φ on the
unnormalised density), the reverse KL (Trace_ELBO with a ``pyro.factor`` model), and Rényi
bounds of several orders α between them (:mod:`pyrovae.kl.fit`). It returns every fitted q
with both KL values and the number of p's modes q covers, plus density grids for the figure
in the style of Deep Learning book Fig. 3.6 (:func:`pyrovae.plots.kl_fits`).

.. math::

    q^*_{\text{forward}} = \arg\min_q \mathrm{KL}(p\|q) \text{ (covers both modes)},\qquad
    q^*_{\text{reverse}} = \arg\min_q \mathrm{KL}(q\|p) \text{ (locks onto one)}.

References:

1. Goodfellow, I., Bengio, Y. and Courville, A. (2016). Deep Learning, §3.13, Fig. 3.6.
2. Minka, T. (2005). Divergence measures and message passing. MSR-TR-2005-173.
3. Li, Y. and Turner, R. E. (2016). Rényi Divergence Variational Inference. NeurIPS.
4. Bornschein, J. and Bengio, Y. (2015). Reweighted Wake-Sleep. ICLR.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pyro
import pyro.distributions as dist
import torch
from torch.distributions import Distribution

from .._util.checks import positive
from . import fit as kl_fit
from .divergence import KLEstimate, kl_both

#: Rényi orders of the default sweep (α = 1 is the reverse fit itself)
DEFAULT_ALPHAS = (0.5, 0.0, -1.0)


def bimodal_target(separation: float = 3.0, scale: float = 0.5) -> dist.MixtureSameFamily:
    """The default target: an equal mixture of two 2-D Gaussians at ±(s/2, s/2).

    :param separation: distance between the modes along each axis (the means are
        ``(-s/2, -s/2)`` and ``(s/2, s/2)``).
    :param scale: each component's standard deviation per axis.
    :returns: a distribution with event shape ``(2,)``.
    """
    positive("separation", separation)
    positive("scale", scale)
    h = separation / 2
    locs = torch.tensor([[-h, -h], [h, h]])  # (2 components, 2)
    return dist.MixtureSameFamily(dist.Categorical(torch.ones(2)),
                                  dist.Normal(locs, torch.full((2, 2), scale)).to_event(1))


def modes_of(target: Distribution) -> torch.Tensor:
    """The component means of a mixture ``(M, D)``, or the mean ``(1, D)`` of anything else."""
    if isinstance(target, dist.MixtureSameFamily):
        return target.component_distribution.mean  # (M, D)
    return target.mean.reshape(1, -1)


def modes_covered(q: Distribution, modes: torch.Tensor, radius: float = 2.0) -> int:
    r"""How many of p's modes lie inside q's ``radius``-standard-deviation ellipse.

    A mode :math:`\mu_m` counts as covered when its Mahalanobis distance under q,
    :math:`\|(\mu_m - m_q)/s_q\|`, is at most ``radius``: q puts at least
    :math:`e^{-r^2/2}` (13.5 % for r = 2) of its peak density there.

    :param q: a diagonal Normal (``Normal(loc, scale).to_event(1)``).
    :param modes: ``(M, D)``.
    :param radius: r.
    """
    loc, scale = q.mean, q.stddev  # each (D,)
    dist_ = ((modes - loc) / scale).norm(dim=-1)  # (M,)
    return int((dist_ <= radius).sum())


@dataclass
class Fit:
    """One fitted q and how it scores in both directions."""

    name: str  # e.g. "reverse KL(q||p)", "forward KL(p||q), ML", "Rényi α=0"
    method: str  # kl_fit method: reverse, forward-ml, forward-rws, renyi
    alpha: float | None  # Rényi order (None for the KL fits)
    q: dist.Normal  # Normal(loc (D,), scale (D,)).to_event(1)
    kl_pq: KLEstimate  # KL(p || q), forward / inclusive
    kl_qp: KLEstimate  # KL(q || p), reverse / exclusive
    modes_covered: int  # modes of p inside q's 2-sd ellipse

    def to_dict(self) -> dict:
        return {
            "name": self.name, "method": self.method, "alpha": self.alpha,
            "loc": self.q.mean.tolist(), "scale": self.q.stddev.tolist(),
            "kl_pq": float(self.kl_pq.value), "kl_pq_stderr": float(self.kl_pq.stderr),
            "kl_qp": float(self.kl_qp.value), "kl_qp_stderr": float(self.kl_qp.stderr),
            "modes_covered": self.modes_covered,
        }


@dataclass
class ToyResult:
    """Everything :func:`run_toy` measured; ``grid`` holds densities for the figure."""

    target: Distribution  # p
    modes: torch.Tensor  # (M, D) p's component means
    target_scale: torch.Tensor  # (D,) p's standard deviation per axis (Monte Carlo)
    fits: dict[str, Fit]  # keyed by Fit.name, in fitting order
    seed: int  # the RNG seed of the run
    grid: dict = field(default_factory=dict)  # xs (G,), ys (G,), p (G, G), q: {name: (G, G)}

    @property
    def reverse(self) -> Fit:
        return next(f for f in self.fits.values() if f.method == "reverse")

    @property
    def forward(self) -> Fit:
        return next(f for f in self.fits.values() if f.method in ("forward-ml", "forward-rws"))

    def to_dict(self) -> dict:
        return {"seed": self.seed, "modes": self.modes.tolist(), "target_scale": self.target_scale.tolist(),
                "fits": [f.to_dict() for f in self.fits.values()]}

    def table(self) -> str:
        """A plain-text table: one row per fit."""
        rows = [f"{'fit':<26} {'mean':>16} {'scale':>14} {'KL(p||q)':>16} {'KL(q||p)':>16} {'modes':>5}"]
        for f in self.fits.values():
            def fmt(e: KLEstimate) -> str:
                return f"{float(e.value):.3f}" + ("" if e.exact else f"±{float(e.stderr):.3f}")

            loc = ", ".join(f"{v:+.2f}" for v in f.q.mean.tolist())
            sc = ", ".join(f"{v:.2f}" for v in f.q.stddev.tolist())
            rows.append(f"{f.name:<26} {'(' + loc + ')':>16} {'(' + sc + ')':>14} {fmt(f.kl_pq):>16} "
                        f"{fmt(f.kl_qp):>16} {f.modes_covered:>5}")
        return "\n".join(rows)


@torch.no_grad()
def density_grid(target: Distribution, qs: dict[str, Distribution], extent: float | None = None,
                 size: int = 120) -> dict:
    """Densities of p and each q on a square grid, for contour plots.

    :param target: p, event shape ``(2,)``.
    :param qs: name -> q.
    :param extent: half-width of the square (default: covers p's modes and every q's 2.5-sd box).
    :param size: G, points per axis.
    :returns: ``{"xs": (G,), "ys": (G,), "p": (G, G), "q": {name: (G, G)}}`` with rows along y.
    """
    if extent is None:
        far = [target.sample((4000,)).abs().quantile(0.999)]  # p's bulk
        far += [(q.mean.abs() + 2.5 * q.stddev).max() for q in qs.values()]  # each q's 2.5-sd box
        extent = float(max(far))
    xs = torch.linspace(-extent, extent, size)  # (G,)
    gy, gx = torch.meshgrid(xs, xs, indexing="ij")  # each (G, G)
    pts = torch.stack([gx, gy], -1)  # (G, G, 2)
    return {"xs": xs, "ys": xs, "p": target.log_prob(pts).exp(),
            "q": {name: q.log_prob(pts).exp() for name, q in qs.items()}}


def run_toy(target: Distribution | None = None, seed: int = 0, alphas: Sequence[float] = DEFAULT_ALPHAS,
            steps: int = 600, kl_samples: int = 20000, rws: bool = True, grid_size: int = 120) -> ToyResult:
    """Fit q in each direction to ``target`` and measure both KLs for every fit.

    :param target: p, event shape ``(D,)``; default :func:`bimodal_target`.
    :param seed: RNG seed (fits and Monte Carlo KLs).
    :param alphas: Rényi orders to sweep (empty for none).
    :param steps: SVI steps per fit.
    :param kl_samples: Monte Carlo draws per KL estimate.
    :param rws: also fit the forward KL from the unnormalised density by wake-φ.
    :param grid_size: points per axis of the figure's density grid (0: no grid; needs D = 2).
    :returns: a :class:`ToyResult`.
    """
    target = bimodal_target() if target is None else target
    kl_fit._dim(target, None)  # one check of the target's shape, with its clear error
    pyro.set_rng_seed(seed)
    plan: list[tuple[str, str, float | None]] = [("reverse KL(q||p)", "reverse", None),
                                                 ("forward KL(p||q), ML", "forward-ml", None)]
    if rws:
        plan.append(("forward KL(p||q), wake-phi", "forward-rws", None))
    plan += [(f"Rényi α={a:g}", "renyi", float(a)) for a in alphas]
    modes = modes_of(target)
    fits: dict[str, Fit] = {}
    for name, method, alpha in plan:
        kwargs = {"alpha": alpha} if method == "renyi" else {}
        if method != "forward-ml":
            kwargs["steps"] = steps
        q = kl_fit.fit_gaussian(target, method, **kwargs)
        kl_pq, kl_qp = kl_both(target, q, kl_samples)
        fits[name] = Fit(name, method, alpha, q, kl_pq, kl_qp, modes_covered(q, modes))
    target_scale = target.sample((kl_samples,)).std(0)  # (D,)
    result = ToyResult(target, modes, target_scale, fits, seed)
    if grid_size and target.event_shape == (2,):
        result.grid = density_grid(target, {n: f.q for n, f in fits.items()}, size=grid_size)
    return result
