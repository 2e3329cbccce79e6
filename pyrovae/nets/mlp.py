"""Multilayer-perceptron encoder and decoder (Kingma and Welling 2014, appendix C)."""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from .._util.checks import positive_int
from .functional import GaussianEncoder, GaussianHead, _activation, _check_shape, mlp


class MLPEncoder(GaussianEncoder):
    """q(z|x): flatten ``x``, then an MLP, then a Gaussian head.

    :param x_shape: shape of one data point, e.g. ``(1, 28, 28)`` or ``(D,)``.
    :param hidden: hidden-layer widths, e.g. ``(400,)``.
    :param z_dim: latent dimension.
    :param activation: hidden non-linearity (default softplus, as in Kingma & Welling 2014).

    Example:

    >>> import torch
    >>> from pyrovae import nets
    >>> encoder = nets.MLPEncoder(x_shape=(1, 28, 28), hidden=(400,), z_dim=50)
    >>> loc, scale = encoder(torch.rand(8, 1, 28, 28))
    >>> loc.shape, scale.shape, bool((scale > 0).all())
    (torch.Size([8, 50]), torch.Size([8, 50]), True)
    """

    def __init__(
        self,
        x_shape: Sequence[int],
        hidden: Sequence[int] = (400,),
        z_dim: int = 50,
        activation: str = "softplus",
    ) -> None:
        super().__init__()
        self.x_shape = _check_shape(x_shape)
        self.z_dim = positive_int("z_dim", z_dim)
        self.hidden = tuple(hidden)
        x_size = math.prod(self.x_shape)
        self.body = mlp((x_size, *self.hidden), activation)
        self.act = _activation(activation)() if self.hidden else nn.Identity()
        self.head = GaussianHead(self.hidden[-1] if self.hidden else x_size, z_dim)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x.flatten(1)))  # (batch, hidden[-1])


class MLPDecoder(nn.Module):
    """p(x|z) parameters from an MLP.

    :param z_dim: latent dimension.
    :param hidden: hidden-layer widths, e.g. ``(400,)``.
    :param x_shape: shape of one data point.
    :param num_classes: if given, emit Categorical logits ``(batch, *x_shape, num_classes)``.
    :param activation: hidden non-linearity.
    """

    def __init__(
        self,
        z_dim: int = 50,
        hidden: Sequence[int] = (400,),
        x_shape: Sequence[int] = (1, 28, 28),
        num_classes: int | None = None,
        activation: str = "softplus",
    ) -> None:
        super().__init__()
        self.z_dim = positive_int("z_dim", z_dim)
        self.x_shape = _check_shape(x_shape)
        self.hidden = tuple(hidden)
        self.out_shape = self.x_shape + ((num_classes,) if num_classes else ())
        self.net = mlp((z_dim, *self.hidden, math.prod(self.out_shape)), activation)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).reshape(z.shape[0], *self.out_shape)  # (batch, *out_shape)
