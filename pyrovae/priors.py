"""Prior families p(z).

A prior is a callable with no arguments that returns a Pyro distribution with
``event_shape == (z_dim,)`` and empty batch shape; :class:`pyrovae.VAE` broadcasts it over
the ``"data"`` plate (and any particle plates). Learnable priors are
:class:`~pyro.nn.PyroModule` s whose parameters train with the rest of the model. Any plain
Pyro distribution with event shape ``(z_dim,)`` is accepted too (see :func:`as_prior`).

References:

1. Kingma, D. P. and Welling, M. (2014). Auto-Encoding Variational Bayes. ICLR.
2. Dilokthanakul, N. et al. (2016). Deep Unsupervised Clustering with Gaussian Mixture
   Variational Autoencoders. arXiv:1611.02648.
3. Tomczak, J. M. and Welling, M. (2018). VAE with a VampPrior. AISTATS.
"""

from __future__ import annotations

import copy
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import pyro.distributions as dist
import torch
from pyro.nn import PyroModule
from torch import nn
from torch.distributions import constraints

from ._util.checks import positive_int
from .distributions.mixture import diagonal_normal_mixture
from .distributions.normal import UnitNormal
from .nets.functional import positive_scale


class StandardNormal(PyroModule):
    """p(z) = N(0, I). No parameters.

    :param z_dim: latent dimension.
    """

    def __init__(self, z_dim: int) -> None:
        super().__init__()
        self.z_dim = positive_int("z_dim", z_dim)
        # buffers, so that ``vae.to(device)`` moves them
        self.register_buffer("loc", torch.zeros(z_dim))
        self.register_buffer("scale", torch.ones(z_dim))

    def forward(self) -> dist.Distribution:
        return UnitNormal(self.loc, self.scale).to_event(1)


class LearnedGaussian(PyroModule):
    """p(z) = N(mu, diag(sigma^2)) with learned ``mu`` and ``sigma``.

    :param z_dim: latent dimension.
    """

    def __init__(self, z_dim: int) -> None:
        super().__init__()
        self.z_dim = positive_int("z_dim", z_dim)
        self.loc = nn.Parameter(torch.zeros(z_dim))
        # softplus(0.5413) = 1, so the prior starts at N(0, I)
        self.raw_scale = nn.Parameter(torch.full((z_dim,), 0.5413))

    def forward(self) -> dist.Distribution:
        return dist.Normal(self.loc, positive_scale(self.raw_scale)).to_event(1)


class MixtureOfGaussians(PyroModule):
    """p(z) = sum_k pi_k N(mu_k, diag(sigma_k^2)), all learned.

    :param z_dim: latent dimension.
    :param num_components: number of components K.
    :param spread: standard deviation of the initial component means.
    """

    def __init__(self, z_dim: int, num_components: int = 10, spread: float = 1.0) -> None:
        super().__init__()
        self.z_dim = positive_int("z_dim", z_dim)
        self.num_components = positive_int("num_components", num_components)
        self.logits = nn.Parameter(torch.zeros(num_components))  # (K,)
        self.locs = nn.Parameter(spread * torch.randn(num_components, z_dim))  # (K, z_dim)
        self.raw_scales = nn.Parameter(torch.full((num_components, z_dim), 0.5413))  # (K, z_dim)

    def forward(self) -> dist.Distribution:
        return diagonal_normal_mixture(self.logits, self.locs, positive_scale(self.raw_scales))


class VampPrior(PyroModule):
    """The VampPrior: a uniform mixture of the guide's posteriors at K learned pseudo-inputs,
    p(z) = 1/K sum_k q(z | u_k) (Tomczak & Welling 2018).

    The pseudo-inputs are ``sigmoid(raw)`` so they stay in the data range [0, 1].
    The encoder is shared with the guide (pass the VAE's own encoder). The density is a
    :class:`~pyrovae.distributions.mixture.DiagonalNormalMixture`, scored by matrix products (7x faster
    log p(x) at K = 500 than ``MixtureSameFamily``; ``benchmarks/mixture_speed.py``).

    Unlike N(0, I), this prior does not pin where z lives: prior and posteriors can drift
    together at no cost in KL. With a saturating decoder (``tanh``) we have seen z drift to
    ``|loc| ~ 3`` early in training, where 91% of the decoder's first-layer units saturate;
    the decoder then ignores z and the model stays at the pixel marginals (test ELBO -199
    on binarised MNIST), with or without KL warm-up. Use a non-saturating activation (GELU,
    ReLU) with this prior.

    :param encoder: the VAE's encoder.
    :param num_components: number of pseudo-inputs K.
    :param x_shape: shape of one data point.
    :param init: optional ``(K, *x_shape)`` data in (0, 1) to start the pseudo-inputs from.
    """

    def __init__(
        self,
        encoder: nn.Module,
        num_components: int = 500,
        x_shape: Sequence[int] = (1, 28, 28),
        init: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.num_components = positive_int("num_components", num_components)
        self.x_shape = tuple(x_shape)
        self.z_dim = getattr(encoder, "z_dim", None)
        if init is None:
            raw = 0.1 * torch.randn(num_components, *self.x_shape) - 2.0  # sigmoid ~ 0.12: faint images
        else:
            if tuple(init.shape) != (num_components, *self.x_shape):
                raise ValueError(f"init must have shape {(num_components, *self.x_shape)}, got {tuple(init.shape)}")
            raw = torch.logit(init.clamp(1e-3, 1 - 1e-3))
        self.raw_pseudo_inputs = nn.Parameter(raw)  # (K, *x_shape)

    @property
    def pseudo_inputs(self) -> torch.Tensor:
        return torch.sigmoid(self.raw_pseudo_inputs)  # (K, *x_shape)

    def forward(self) -> dist.Distribution:
        # through _modules, not attribute access: a PyroModule would otherwise register the
        # shared encoder's parameters a second time under another name
        encoder = self._modules["encoder"]
        loc, scale = encoder(self.pseudo_inputs)  # each (K, z_dim)
        return diagonal_normal_mixture(loc.new_zeros(loc.shape[0]), loc, scale)  # uniform weights


class DistributionPrior(nn.Module):
    """Wraps a fixed Pyro distribution with ``event_shape (z_dim,)`` as a prior.

    ``vae.to(device)``, ``.double()`` and the like move and cast every tensor the
    distribution holds, however it is built: its parameters, those of distributions and
    transforms inside it (``Independent``, ``MixtureSameFamily``, ``TransformedDistribution``,
    an ``.expand``-ed distribution), and their cached values. A distribution that holds a
    torch module (a learned transform) is refused: its parameters would never train. Write
    such a prior as a module whose ``forward()`` returns the distribution, as
    :class:`pyrovae.flows.FlowPrior` does.

    :param distribution: e.g. ``dist.Laplace(torch.zeros(2), torch.ones(2)).to_event(1)``.
    :raises ValueError: for a batch shape or an event shape other than ``(z_dim,)``.
    :raises TypeError: for a distribution that holds a torch module.
    """

    def __init__(self, distribution: dist.Distribution) -> None:
        super().__init__()
        if len(distribution.event_shape) != 1 or distribution.batch_shape != torch.Size():
            raise ValueError(
                "a prior distribution needs event_shape (z_dim,) and batch_shape (); got "
                f"event_shape {tuple(distribution.event_shape)}, batch_shape {tuple(distribution.batch_shape)}. "
                "Hint: use .to_event(1) on a distribution over a (z_dim,) vector."
            )
        _map_distribution(distribution, lambda t: t)  # one walk now: a module inside raises here, not at .to()
        self.distribution = distribution
        self.z_dim = distribution.event_shape[0]

    def forward(self) -> dist.Distribution:
        return self.distribution

    def _apply(self, fn: Callable, *args, **kwargs):  # type: ignore[override]
        self.distribution = _map_distribution(self.distribution, fn)
        return super()._apply(fn, *args, **kwargs)


def _map_distribution(d: dist.Distribution, fn: Callable[[torch.Tensor], torch.Tensor]) -> dist.Distribution:
    """A copy of ``d`` with ``fn`` applied to every tensor inside it (as ``nn.Module._apply``
    does to buffers); shared tensors stay shared."""
    return _map_tensors(d, fn, {})


def _map_tensors(obj: Any, fn: Callable[[torch.Tensor], torch.Tensor], memo: dict[int, Any]) -> Any:
    if id(obj) in memo:
        return memo[id(obj)]
    if isinstance(obj, torch.Tensor):
        out = fn(obj)
    elif isinstance(obj, nn.Module):
        raise TypeError(
            f"a prior distribution that holds a torch module ({type(obj).__name__}) cannot be a fixed prior: its "
            "parameters would neither train nor move with the VAE. Write the prior as an nn.Module whose "
            "forward() builds the distribution (as pyrovae.flows.FlowPrior does) and pass that module as prior="
        )
    elif isinstance(obj, (list, tuple)):
        items = [_map_tensors(v, fn, memo) for v in obj]
        out = obj if all(a is b for a, b in zip(items, obj)) else type(obj)(items)
    elif isinstance(obj, (torch.distributions.Distribution, torch.distributions.Transform, constraints.Constraint)):
        memo[id(obj)] = obj  # for now: a transform and its inverse refer to each other
        changed = {}
        for k, v in vars(obj).items():
            if not isinstance(v, weakref.ref) and k != "_cached_x_y":
                mapped = _map_tensors(v, fn, memo)
                if mapped is not v:
                    changed[k] = mapped
        if not changed:
            return obj  # nothing to move: keep the object (and singletons such as constraints.real)
        out = copy.copy(obj)
        for k, v in vars(obj).items():
            if isinstance(v, weakref.ref):
                changed[k] = None  # a transform's cached inverse points at the old object; rebuilt on demand
            elif k == "_cached_x_y":
                changed[k] = (None, None)  # a transform's cache of its last input and output
        for k, v in changed.items():
            object.__setattr__(out, k, v)
    else:
        out = obj
    memo[id(obj)] = out
    return out


def as_prior(prior: object, z_dim: int | None = None) -> nn.Module:
    """Turn what the user passed as ``prior`` into a callable prior module.

    :param prior: a prior module, a Pyro distribution with event shape ``(z_dim,)``, or
        ``None`` (standard normal, needs ``z_dim``).
    :param z_dim: the latent dimension, used for ``None`` and for a consistency check.
    """
    if prior is None:
        if z_dim is None:
            raise ValueError("prior=None needs a known z_dim (give the encoder a z_dim attribute or pass a prior)")
        return StandardNormal(z_dim)
    if isinstance(prior, torch.distributions.Distribution):
        module = DistributionPrior(prior)
    elif isinstance(prior, nn.Module) and callable(prior):
        module = prior
    else:
        raise ValueError(
            f"prior must be a pyrovae prior module or a Pyro distribution "
            f"with event_shape (z_dim,), got {type(prior).__name__}"
        )
    prior_z = getattr(module, "z_dim", None)
    if z_dim is not None and prior_z is not None and prior_z != z_dim:
        raise ValueError(f"the prior is over {prior_z} latent dimensions but the encoder produces z_dim={z_dim}")
    return module


__all__ = [
    "DistributionPrior",
    "LearnedGaussian",
    "MixtureOfGaussians",
    "StandardNormal",
    "VampPrior",
    "as_prior",
]
