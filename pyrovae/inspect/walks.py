r"""Moving through the latent space: interpolation, a 2-D manifold over the prior's mass,
one-dimension traversals and attribute vectors.

Computation only (decoded means as tensors); :mod:`pyrovae.plots` draws them.

Spherical interpolation follows the great circle between two codes,

.. math::

    \mathrm{slerp}(z_0, z_1; t) = \frac{\sin((1-t)\Omega)}{\sin\Omega} z_0
        + \frac{\sin(t\Omega)}{\sin\Omega} z_1, \qquad
    \cos\Omega = \frac{z_0 \cdot z_1}{\|z_0\|\|z_1\|},

which keeps intermediate codes at the norm a Gaussian prior puts its mass on (White 2016).

References:

1. Kingma, D. P. and Welling, M. (2014). Auto-Encoding Variational Bayes. ICLR (Fig. 4: the
   learned manifold over Gaussian quantiles).
2. White, T. (2016). Sampling Generative Networks. arXiv:1609.04468 (slerp, attribute vectors).
3. Larsen, A. B. L. et al. (2016). Autoencoding beyond pixels using a learned similarity
   metric. ICML (attribute vectors from mean codes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .._util.checks import at_least, one_of
from ..evaluate.posterior import moments
from ..models import VAE
from ..models.validation import check_inputs
from .density import check_dims, check_quantile_range, latent_points, span_of

#: interpolation paths; "slerp" is another name for "spherical"
METHODS = ("linear", "spherical", "slerp")


def interpolate(z0: torch.Tensor, z1: torch.Tensor, steps: int = 10, method: str = "linear") -> torch.Tensor:
    """Codes on the path from ``z0`` to ``z1`` (both ends included).

    :param z0: ``(z_dim,)``.
    :param z1: ``(z_dim,)``.
    :param steps: number of codes (≥ 2).
    :param method: ``"linear"`` or ``"spherical"`` (also called ``"slerp"``; linear where
        the angle is ~0).
    :returns: ``(steps, z_dim)``.
    """
    one_of("interpolation", method, METHODS)
    at_least("steps", steps, 2)
    t = torch.linspace(0, 1, steps, dtype=z0.dtype, device=z0.device)[:, None]  # (steps, 1)
    if method in ("spherical", "slerp"):
        cos = torch.dot(z0, z1) / (z0.norm() * z1.norm()).clamp_min(1e-12)
        omega = torch.arccos(cos.clamp(-1, 1))
        if float(torch.sin(omega)) > 1e-6:
            return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)
    return (1 - t) * z0 + t * z1


def _means(vae: VAE, x: torch.Tensor) -> torch.Tensor:
    """The mean of q(z|x) per input, ``(b, z_dim)``: closed form where the guide has one, else
    the Monte Carlo moments of :func:`~pyrovae.evaluate.posterior.moments` (a flow guide, or
    a hierarchical VAE's chain of layers, whose ``.mean`` is not implemented)."""
    return moments(vae.encode(x)).loc


@torch.no_grad()
def interpolate_inputs(vae: VAE, x0: torch.Tensor, x1: torch.Tensor, steps: int = 10,
                       method: str = "linear") -> torch.Tensor:
    """Decode the path between the posterior means of two inputs (seed 001, Fig. 7).

    :param vae: the model.
    :param x0: one input ``x_shape`` (or ``(1, *x_shape)``).
    :param x1: the other input.
    :param steps: decodes along the path, ends included.
    :param method: ``"linear"`` or ``"spherical"`` (``"slerp"``).
    :returns: decoded means ``(steps, *x_shape)``.
    :raises ValueError: for inputs that are not one data point each (checked by
        :func:`~pyrovae.models.validation.check_inputs`), or bad settings.
    """
    x = torch.cat([check_inputs(vae, x0, "x0", one=True), check_inputs(vae, x1, "x1", one=True)])  # (2, *x_shape)
    z = _means(vae, x)  # (2, z_dim)
    return vae.decode_mean(interpolate(z[0], z[1], steps, method))


def prior_quantiles(n: int, low: float = 0.05, high: float = 0.95, dtype=torch.float32) -> torch.Tensor:
    """``n`` values of the standard normal's inverse CDF at evenly spaced probabilities in
    [low, high] (the axes of Kingma & Welling's Fig. 4). For the quantiles of the model's own
    prior, whatever its family, use :func:`manifold_grid` with ``spacing="quantile"``."""
    if not 0 < low < high < 1:
        raise ValueError(f"quantile range must satisfy 0 < low < high < 1, got ({low}, {high})")
    p = torch.linspace(low, high, n, dtype=dtype)
    return torch.distributions.Normal(torch.zeros((), dtype=dtype), torch.ones((), dtype=dtype)).icdf(p)


#: how :func:`manifold_grid` spaces its values: evenly between the span's ends, or at evenly
#: spaced quantile probabilities (Kingma & Welling's Fig. 4, where the prior is N(0, I))
SPACINGS = ("linear", "quantile")


@dataclass
class ManifoldGrid:
    """Decodes on an ``n × n`` grid over two latent dimensions."""

    images: torch.Tensor  # (n*n, *x_shape); image i*n + j has z[dims[0]] = z0[j], z[dims[1]] = z1[n-1-i]
    z0: torch.Tensor  # (n,) increasing values of z[dims[0]] (columns, left to right)
    z1: torch.Tensor  # (n,) increasing values of z[dims[1]] (rows, bottom to top)
    dims: tuple[int, int] = (0, 1)
    source: str = "prior"  # where the span came from (pyrovae.inspect.density.SOURCES)
    spacing: str = "linear"  # SPACINGS
    low: float = 0.01  # quantile probabilities of the span's ends
    high: float = 0.99
    base: torch.Tensor | None = None  # (z_dim,) the code the grid varies two dimensions of


@torch.no_grad()
def manifold_grid(
    vae: VAE, n: int = 15, dims: tuple[int, int] = (0, 1), low: float = 0.01, high: float = 0.99,
    base: torch.Tensor | None = None, codes: torch.Tensor | None = None, source: str = "prior",
    spacing: str = "linear", num_samples: int = 10_000, seed: int | None = 0,
) -> ManifoldGrid:
    """Decodes on an ``n × n`` grid over the region where the latent mass is: per dimension,
    from the ``low`` to the ``high`` quantile of ``num_samples`` draws from the model's own
    prior (whatever its family), of ``codes`` (the aggregate posterior), or the union of both
    spans (:func:`pyrovae.inspect.density.latent_extent`).

    For a 2-D latent this is the whole learned manifold (seed 003, Fig. 4); for more
    dimensions, a slice through ``base`` (default: the median of the same draws or codes).
    With ``spacing="quantile"`` the values sit at evenly spaced quantile probabilities of the
    draws (for N(0, I), Kingma and Welling's grid of Gaussian inverse-CDF values).

    :param vae: the model.
    :param n: grid points per axis.
    :param dims: the two latent dimensions to vary.
    :param low: lowest quantile probability.
    :param high: highest quantile probability.
    :param base: ``(z_dim,)`` value of the other dimensions.
    :param codes: ``(N, z_dim)`` latent codes, e.g. ``inspect.encode_dataset(vae, x).loc``.
    :param source: ``"prior"``, ``"codes"`` or ``"both"``.
    :param spacing: ``"linear"`` or ``"quantile"``.
    :param num_samples: prior draws.
    :param seed: seed for the prior draws (the global RNG is left as it was).
    :returns: :class:`ManifoldGrid`; image ``i*n + j`` has ``z[dims[0]] = z0[j]`` and
        ``z[dims[1]] = z1[n-1-i]`` (top row = largest z[dims[1]]).
    :raises ValueError: for a bad quantile range, spacing, source or pair of dimensions.
    """
    at_least("n", n, 2)
    one_of("spacing", spacing, SPACINGS)
    check_quantile_range(low, high)
    dims = check_dims(dims, vae.z_dim)
    points = latent_points(vae, codes, source, num_samples, seed)  # prior draws and/or codes, each (S, z_dim)
    if spacing == "linear":  # the union of the spans
        lo, hi = span_of(points, dims, low, high)
        z0, z1 = (torch.linspace(float(lo[k]), float(hi[k]), n) for k in (0, 1))
    else:  # quantiles of the pooled points
        pooled = torch.cat(points).double()
        probs = torch.linspace(low, high, n, dtype=torch.float64, device=pooled.device)
        z0, z1 = (torch.quantile(pooled[:, d], probs).cpu() for d in dims)
    if base is None:
        base = torch.cat(points).median(0).values  # (z_dim,)
    device = next(vae.parameters()).device
    dtype = next(vae.parameters()).dtype
    z0, z1 = z0.to(dtype), z1.to(dtype)
    z = base.to(device=device, dtype=dtype).repeat(n * n, 1)  # (n*n, z_dim)
    z[:, dims[0]] = z0.to(device).repeat(n)
    z[:, dims[1]] = z1.to(device).flip(0).repeat_interleave(n)
    return ManifoldGrid(vae.decode_mean(z), z0, z1, dims, source, spacing, low, high, z[0].detach().cpu())


@torch.no_grad()
def traversal(vae: VAE, x: torch.Tensor, dims: Sequence[int] | None = None, n: int = 9,
              span: float = 3.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Vary one latent dimension at a time around the posterior mean of ``x``.

    :param vae: the model.
    :param x: one input ``x_shape`` (or ``(1, *x_shape)``).
    :param dims: dimensions to traverse (default: all).
    :param n: values per dimension, evenly spaced in ``[-span, span]``.
    :param span: how far to go, in prior standard deviations.
    :returns: ``(images (len(dims)*n, *x_shape), values (n,))``, one row per dimension.
    :raises ValueError: for an input that is not one data point (checked by
        :func:`~pyrovae.models.validation.check_inputs`).
    """
    z0 = _means(vae, check_inputs(vae, x, one=True))[0]  # (z_dim,)
    dims = list(range(vae.z_dim)) if dims is None else list(dims)
    values = torch.linspace(-span, span, n, device=z0.device, dtype=z0.dtype)
    z = z0.repeat(len(dims) * n, 1)  # (len(dims)*n, z_dim)
    for r, d in enumerate(dims):
        z[r * n:(r + 1) * n, d] = values
    return vae.decode_mean(z), values.cpu()


def stroke_thickness(images: torch.Tensor) -> torch.Tensor:
    """Total ink per image (the sum of pixel intensities): a stroke-thickness attribute for
    MNIST, where the same digit drawn with a thicker pen has more mass.

    :param images: ``(N, *x_shape)`` in [0, 1].
    :returns: ``(N,)``.
    """
    return images.flatten(1).sum(1)


def attribute_vector(codes: torch.Tensor, has_attribute: torch.Tensor) -> torch.Tensor:
    """Mean code of the inputs with an attribute minus the mean code of those without
    (seed 000's "glasses" vector).

    :param codes: posterior means ``(N, z_dim)``.
    :param has_attribute: ``(N,)`` boolean.
    :returns: ``(z_dim,)``.
    """
    has_attribute = has_attribute.to(torch.bool).to(codes.device)
    if has_attribute.shape != codes.shape[:1]:
        raise ValueError(f"has_attribute must have shape ({len(codes)},), got {tuple(has_attribute.shape)}")
    if has_attribute.all() or not has_attribute.any():
        raise ValueError("an attribute vector needs inputs both with and without the attribute")
    return codes[has_attribute].mean(0) - codes[~has_attribute].mean(0)


def thickness_vector(codes: torch.Tensor, images: torch.Tensor, labels: torch.Tensor | None = None,
                     fraction: float = 0.25) -> torch.Tensor:
    """Attribute vector for "thick strokes": the top ``fraction`` of :func:`stroke_thickness`
    against the bottom ``fraction``, within each digit class when ``labels`` are given (so
    the vector does not turn a 1 into an 8 instead of thickening it).

    :param codes: posterior means ``(N, z_dim)``.
    :param images: the inputs ``(N, *x_shape)``.
    :param labels: optional ``(N,)`` classes.
    :param fraction: share of each class counted as thick (and as thin).
    :returns: ``(z_dim,)``.
    """
    mass = stroke_thickness(images).to(codes.device)
    if labels is None:
        groups = [torch.ones_like(mass, dtype=torch.bool)]
    else:
        groups = [labels.to(codes.device) == c for c in labels.unique()]
    vectors, weights = [], []
    for g in groups:
        idx = g.nonzero()[:, 0]
        k = int(len(idx) * fraction)
        if k < 1:
            continue
        order = idx[mass[idx].argsort()]
        vectors.append(codes[order[-k:]].mean(0) - codes[order[:k]].mean(0))
        weights.append(len(idx))
    if not vectors:
        raise ValueError(f"too few inputs for fraction={fraction}: need at least {int(1 / fraction)} per class")
    w = torch.tensor(weights, dtype=codes.dtype, device=codes.device)
    return (torch.stack(vectors) * w[:, None]).sum(0) / w.sum()


def class_vector(codes: torch.Tensor, labels: torch.Tensor, source: int, target: int) -> torch.Tensor:
    """Mean code of class ``target`` minus mean code of class ``source``, ``(z_dim,)``."""
    labels = labels.to(codes.device)
    for c in (source, target):
        if not (labels == c).any():
            raise ValueError(f"no inputs with label {c}")
    return codes[labels == target].mean(0) - codes[labels == source].mean(0)


@torch.no_grad()
def apply_attribute(vae: VAE, x: torch.Tensor, vector: torch.Tensor,
                    amounts: Sequence[float] = (0, 0.5, 1, 1.5, 2)) -> torch.Tensor:
    """Add ``amount * vector`` to each input's posterior mean and decode.

    :param vae: the model.
    :param x: inputs ``(b, *x_shape)``.
    :param vector: ``(z_dim,)`` attribute vector.
    :param amounts: multiples of the vector to add.
    :returns: ``(b * len(amounts), *x_shape)``, one row of ``len(amounts)`` per input.
    :raises ValueError: for bad inputs (:func:`~pyrovae.models.validation.check_inputs`).
    """
    z = _means(vae, check_inputs(vae, x))  # (b, z_dim)
    a = torch.as_tensor(amounts, dtype=z.dtype, device=z.device)  # (A,)
    shifted = z[:, None, :] + a[None, :, None] * vector.to(z.device)  # (b, A, z_dim)
    return vae.decode_mean(shifted.reshape(-1, z.shape[1]))
