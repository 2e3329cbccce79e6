"""Conditional encoder and decoder: the label y, one-hot, enters next to x or z
(Sohn et al. 2015)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .functional import GaussianHead, Softplus, mlp


class ConditionalMLPEncoder(nn.Module):
    """q(z|x, y): the flattened x concatenated with one-hot y, an MLP, a Gaussian head.

    :param x_shape: shape of one data point.
    :param num_classes: number of labels.
    :param hidden: hidden widths.
    :param z_dim: latent dimension.
    """

    def __init__(
        self, x_shape: Sequence[int], num_classes: int, hidden: Sequence[int] = (400,), z_dim: int = 16
    ) -> None:
        super().__init__()
        self.x_shape, self.num_classes, self.z_dim = tuple(x_shape), num_classes, z_dim
        self.body = nn.Sequential(mlp((math.prod(self.x_shape) + num_classes, *hidden)), Softplus())
        self.head = GaussianHead(hidden[-1], z_dim)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y1 = F.one_hot(y.long(), self.num_classes).to(x.dtype)  # (batch, C)
        return self.head(self.body(torch.cat([x.flatten(1), y1], dim=-1)))  # each (batch, z_dim)


class ConditionalMLPDecoder(nn.Module):
    """p(x|z, y) parameters from an MLP over z concatenated with one-hot y.

    :param z_dim: latent dimension.
    :param num_classes: number of labels.
    :param hidden: hidden widths.
    :param x_shape: shape of one data point.
    """

    def __init__(
        self, z_dim: int, num_classes: int, hidden: Sequence[int] = (400,), x_shape: Sequence[int] = (1, 28, 28)
    ) -> None:
        super().__init__()
        self.x_shape, self.num_classes, self.z_dim = tuple(x_shape), num_classes, z_dim
        self.net = mlp((z_dim + num_classes, *hidden, math.prod(self.x_shape)))

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        y1 = F.one_hot(y.long(), self.num_classes).to(z.dtype)  # (batch, C)
        return self.net(torch.cat([z, y1], dim=-1)).reshape(z.shape[0], *self.x_shape)  # (batch, *x_shape)
