"""Building blocks shared by every network: positive scales, activations, the MLP and the
Gaussian head."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .._util.checks import one_of, positive_int, tensor
from .._util.elementwise import fast_path, softplus_values

#: Smallest standard deviation an encoder emits; keeps log q(z|x) finite.
MIN_SCALE = 1e-4



def softplus(x: torch.Tensor) -> torch.Tensor:
    """:math:`\\log(1 + e^x)`, as ``torch.nn.functional.softplus`` (to float rounding).

    Where no gradient is taken (evaluation, sampling) and the tensor is large, on the CPU, it
    runs the few cheaper passes of :mod:`pyrovae._util.elementwise`. Where a gradient is taken
    it is torch's own kernel, whose backward is one fused kernel too: in training, the passes'
    faster forward did not make up for a backward written in Python (measured with
    ``benchmarks/train_speed.py`` on a 2-core Xeon: ``fit`` 1.5 to 9% slower per epoch with them,
    at 1 and 2 threads, batch 100 and 256).
    """
    if fast_path(tensor("x", x)) and not (x.requires_grad and torch.is_grad_enabled()):
        return softplus_values(x)
    return F.softplus(x)


class Softplus(nn.Module):
    """``nn.Softplus()`` (``beta = 1``) computed by :func:`softplus`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return softplus(x)


_ACTIVATIONS = {"softplus": Softplus, "relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "gelu": nn.GELU}


def _check_shape(x_shape: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(x_shape)
    if not shape or any(not isinstance(s, int) or s < 1 for s in shape):
        raise ValueError(f"x_shape must be a non-empty tuple of positive ints, got {x_shape!r}")
    return shape


def _activation(name: str) -> type[nn.Module]:
    return _ACTIVATIONS[one_of("activation", name, sorted(_ACTIVATIONS))]


def mlp(sizes: Sequence[int], activation: str = "softplus") -> nn.Sequential:
    """A multilayer perceptron with ``activation`` between (not after) the layers.

    :param sizes: layer widths, input first, e.g. ``(784, 400, 50)``.
    :param activation: one of ``softplus``, ``relu``, ``tanh``, ``elu``, ``gelu``.
    """
    act = _activation(activation)
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(act())
    return nn.Sequential(*layers)


def positive_scale(raw: torch.Tensor) -> torch.Tensor:
    """Map an unconstrained tensor to a standard deviation: ``softplus(raw) + MIN_SCALE``."""
    return softplus(raw) + MIN_SCALE


class GaussianHead(nn.Module):
    """A linear layer from features to ``(loc, scale)`` of a diagonal Normal.

    :param in_features: width of the features.
    :param z_dim: latent dimension.
    """

    def __init__(self, in_features: int, z_dim: int) -> None:
        super().__init__()
        self.z_dim = positive_int("z_dim", z_dim)
        self.linear = nn.Linear(in_features, 2 * z_dim)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loc, raw = self.linear(h).chunk(2, dim=-1)  # each (batch, z_dim)
        return loc, positive_scale(raw)


class GaussianEncoder(nn.Module):
    """Base of the library's encoders: features ``h(x)``, then a :class:`GaussianHead`.

    Subclasses set ``self.head`` and implement :meth:`features`. The split gives every such
    encoder the *context protocol* that :class:`pyrovae.flows.IAFGuide` reads (Kingma et al.
    2016's context vector ``h``):

    - ``context_dim``: the width of ``h``;
    - ``forward_with_context(x) -> (loc, scale, h)``: one pass, ``h`` included.

    An encoder of one's own can offer the same two attributes without subclassing this.
    """

    head: GaussianHead

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The features the Gaussian head reads, ``(batch, context_dim)``."""
        raise NotImplementedError

    @property
    def context_dim(self) -> int:
        """Width of :meth:`features`' output (the head's input)."""
        return self.head.linear.in_features

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(self.features(x))  # each (batch, z_dim)

    def forward_with_context(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(loc, scale, h)``: the Gaussian's parameters and the features they came from."""
        h = self.features(x)  # (batch, context_dim)
        loc, scale = self.head(h)
        return loc, scale, h
