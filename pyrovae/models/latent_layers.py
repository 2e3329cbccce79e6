r"""Stacks of latent layers: one joint distribution over :math:`z = [z_1, \dots, z_L]` built
from per-layer conditionals, and the hierarchical prior.

:class:`LayerChain` is a distribution over the concatenated layers (bottom first, event shape
``(sum(z_dims),)``) given by its conditionals in sampling order. Both the prior

.. math::

    p(z) = p(z_L) \prod_{l=1}^{L-1} p(z_l \mid z_{l+1})

and either guide of :class:`~pyrovae.models.hierarchical.HierarchicalVAE` are LayerChains, so
code written for a one-layer VAE (``vae.encode(x).rsample()``, ``vae.prior().log_prob(z)``,
:func:`pyrovae.evaluate.log_likelihood`) sees a hierarchical VAE as a VAE with a structured
latent. The Pyro model and guide draw the same conditionals as the sites ``"z1"``, ..., ``"zL"``.

References:

1. Rezende, D. J., Mohamed, S. and Wierstra, D. (2014). Stochastic Backpropagation and
   Approximate Inference in Deep Generative Models. ICML.
2. Burda, Y., Grosse, R. and Salakhutdinov, R. (2016). Importance Weighted Autoencoders. ICLR.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

import pyro.distributions as dist
import torch
from pyro.distributions import TorchDistribution, constraints
from pyro.nn import PyroModule
from torch import nn
from torch.distributions import kl_divergence

from ..nets.ladder import folded
from ..priors import as_prior

#: ``conditional(layer, zs)``: the distribution of ``layer`` given the layers already drawn
Conditional = Callable[[int, dict], dist.Distribution]
#: ``draw(layer, distribution, sample_shape)``: how :meth:`LayerChain.ancestral` takes a value
Draw = Callable[[int, dist.Distribution, torch.Size], torch.Tensor]


def layer_kl(q: dist.Distribution, p: dist.Distribution, z: torch.Tensor) -> torch.Tensor:
    r"""One layer's KL term, :math:`\mathrm{KL}(q(z_l|\cdot) \,\|\, p(z_l|z_{l+1}))`.

    In closed form where torch/Pyro has one for the pair, else the one-draw Monte Carlo term
    :math:`\log q(z_l) - \log p(z_l)` at ``z``. A guide hides the closed form (a no-op
    ``mask(True)``) where it would be biased, as for the lower layers of a bottom-up guide.

    :param q: the guide's conditional, event shape ``(d,)``.
    :param p: the prior's conditional at the same parents.
    :param z: the drawn value ``(*lead, batch, d)``.
    :returns: ``(*lead, batch)``.
    """
    try:
        kl = kl_divergence(q, p)
    except NotImplementedError:
        kl = q.log_prob(z) - p.log_prob(z)
    return torch.broadcast_to(kl, z.shape[:-1])


def _rsample(layer: int, d: dist.Distribution, shape: torch.Size) -> torch.Tensor:
    return d.rsample(shape)


def _sample(layer: int, d: dist.Distribution, shape: torch.Size) -> torch.Tensor:
    return d.sample(shape)


def conditional_mean(layer: int, d: dist.Distribution, shape: torch.Size) -> torch.Tensor:
    """A :data:`Draw` that takes each layer's conditional mean (an ancestral "mean pass")."""
    return d.mean.expand(shape + d.batch_shape + d.event_shape)


class LayerChain(TorchDistribution):
    """A joint distribution over latent layers, concatenated bottom first, ``[z_1, ..., z_L]``.

    :param z_dims: the layers' sizes, bottom first.
    :param order: the layers (0-based) in sampling order; each one's conditional may read only
        the layers before it.
    :param conditional: ``conditional(layer, zs)`` -> distribution of that layer (event shape
        ``(z_dims[layer],)``) given ``zs``, a dict of the layers drawn so far.
    :param batch_shape: the batch shape of the first layer drawn (``()`` for a prior,
        ``(batch,)`` for a guide).
    """

    arg_constraints: ClassVar[dict] = {}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, z_dims: Sequence[int], order: Sequence[int], conditional: Conditional,
                 batch_shape: Sequence[int] = ()) -> None:
        self.z_dims, self.order, self.conditional = tuple(z_dims), tuple(order), conditional
        if sorted(self.order) != list(range(len(self.z_dims))):
            raise ValueError(f"order must list every layer 0..{len(self.z_dims) - 1} once, got {self.order}")
        super().__init__(torch.Size(batch_shape), torch.Size([sum(self.z_dims)]), validate_args=False)

    def split(self, z: torch.Tensor) -> dict[int, torch.Tensor]:
        """``(..., sum(z_dims))`` -> ``{layer: (..., z_dims[layer])}``."""
        return dict(enumerate(z.split(self.z_dims, dim=-1)))

    def join(self, zs: dict[int, torch.Tensor]) -> torch.Tensor:
        """The inverse of :meth:`split`."""
        return torch.cat([zs[layer] for layer in range(len(self.z_dims))], dim=-1)

    def ancestral(self, sample_shape: Sequence[int] = (), draw: Draw = _rsample) -> tuple[dict, dict]:
        """Draw the layers in order.

        :param sample_shape: leading shape of the first layer's draw (the others follow it).
        :param draw: how each value is taken (default ``rsample``; :func:`conditional_mean`;
            a Pyro model or guide passes ``pyro.sample`` at its site).
        :returns: ``(zs, dists)``: ``{layer: value (*sample_shape, *batch_shape, d)}`` and
            ``{layer: its conditional}``.
        """
        zs, dists = {}, {}
        for i, layer in enumerate(self.order):
            dists[layer] = self.conditional(layer, zs)
            zs[layer] = draw(layer, dists[layer], torch.Size(sample_shape) if i == 0 else torch.Size())
        return zs, dists

    def rsample(self, sample_shape: Sequence[int] = ()) -> torch.Tensor:
        return self.join(self.ancestral(sample_shape)[0])  # (*sample_shape, *batch_shape, sum(z_dims))

    def sample(self, sample_shape: Sequence[int] = ()) -> torch.Tensor:
        with torch.no_grad():
            return self.join(self.ancestral(sample_shape, _sample)[0])

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        zs = self.split(value)
        return sum(self.conditional(layer, zs).log_prob(zs[layer]) for layer in self.order)  # (*lead, *batch_shape)


class HierarchicalPrior(PyroModule):
    r"""The generative prior over latent layers: :math:`p(z_L)` from a prior module, and
    :math:`p(z_l|z_{l+1}) = \mathcal{N}(\mu_l(z_{l+1}), \operatorname{diag}\sigma_l^2(z_{l+1}))`.

    Calling it returns the joint :class:`LayerChain` (event shape ``(sum(z_dims),)``), as a
    one-layer VAE's prior returns a distribution over z.

    :param top: the prior over the top layer: a :mod:`pyrovae.priors` module, a Pyro
        distribution with event shape ``(z_dims[-1],)``, or ``None`` for a standard normal.
    :param conditionals: L - 1 networks, ``conditionals[l]`` mapping :math:`z_{l+2}`
        ``(batch, z_dims[l + 1])`` to ``(loc, scale)`` of :math:`z_{l+1}`, each ``(batch, z_dims[l])``
        (0-based: ``conditionals[0]`` gives :math:`p(z_1|z_2)`), e.g. :class:`pyrovae.nets.MLPEncoder`.
    :param z_dims: the layers' sizes, bottom first.
    """

    def __init__(self, top: object, conditionals: Sequence[nn.Module], z_dims: Sequence[int]) -> None:
        super().__init__()
        self.z_dims = tuple(z_dims)
        if len(conditionals) != len(self.z_dims) - 1:
            raise ValueError(f"{len(self.z_dims)} layers need {len(self.z_dims) - 1} conditionals, "
                             f"got {len(conditionals)}")
        self.top = as_prior(top, self.z_dims[-1])
        self.conditionals = nn.ModuleList(conditionals)
        self.z_dim = sum(self.z_dims)

    def conditional_params(self, layer: int, z_above: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(loc, scale)`` of :math:`p(z_l | z_{l+1})` for ``layer = l - 1``, each ``(*lead, z_dims[layer])``."""
        return folded(self.conditionals[layer], z_above)

    def conditional(self, layer: int, zs: dict[int, torch.Tensor]) -> dist.Distribution:
        """The distribution of ``layer`` given the layer above in ``zs`` (the top: its prior)."""
        if layer == len(self.z_dims) - 1:
            return self.top()
        return dist.Normal(*self.conditional_params(layer, zs[layer + 1])).to_event(1)

    def forward(self) -> LayerChain:
        return LayerChain(self.z_dims, range(len(self.z_dims) - 1, -1, -1), self.conditional)

    def from_noise(self, z_top: torch.Tensor, noise: Sequence[torch.Tensor | None]) -> torch.Tensor:
        r"""Ancestral draws with given noise: :math:`z_l = \mu_l(z_{l+1}) + \sigma_l(z_{l+1}) \epsilon_l`.

        :param z_top: the top layer ``(n, z_dims[-1])``.
        :param noise: L - 1 standard-normal tensors, bottom first, each broadcastable to
            ``(n, z_dims[l])``; ``None`` takes the conditional mean.
        :returns: the joint z ``(n, sum(z_dims))``.
        """
        if len(noise) != len(self.z_dims) - 1:
            raise ValueError(f"give noise for the {len(self.z_dims) - 1} layers below the top, got {len(noise)}")
        zs = {len(self.z_dims) - 1: z_top}
        for layer in range(len(self.z_dims) - 2, -1, -1):
            loc, scale = self.conditional_params(layer, zs[layer + 1])
            zs[layer] = loc if noise[layer] is None else loc + scale * noise[layer]
        return self().join(zs)
