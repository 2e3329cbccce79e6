"""Convolutional encoder and decoder in the DCGAN style (Radford et al. 2016)."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .._util.checks import positive_int
from .functional import GaussianEncoder, GaussianHead, _check_shape


def _conv_spatial(x_shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(x_shape) != 3 or x_shape[1] % 4 or x_shape[2] % 4:
        raise ValueError(
            f"conv nets need x_shape (channels, height, width) with height and width divisible by 4, got {x_shape}"
        )
    return x_shape


class ConvEncoder(GaussianEncoder):
    """q(z|x) from two stride-2 convolutions and a dense layer (DCGAN style).

    :param x_shape: ``(channels, height, width)``, height and width divisible by 4.
    :param z_dim: latent dimension.
    :param channels: widths of the two convolutions.
    :param hidden: width of the dense layer after them.
    """

    def __init__(
        self,
        x_shape: Sequence[int] = (1, 28, 28),
        z_dim: int = 50,
        channels: Sequence[int] = (32, 64),
        hidden: int = 256,
    ) -> None:
        super().__init__()
        self.x_shape = _conv_spatial(_check_shape(x_shape))
        self.z_dim = positive_int("z_dim", z_dim)
        c, h, w = self.x_shape
        c1, c2 = channels
        self.body = nn.Sequential(
            nn.Conv2d(c, c1, 4, stride=2, padding=1),  # (batch, c1, h/2, w/2)
            nn.ReLU(),
            nn.Conv2d(c1, c2, 4, stride=2, padding=1),  # (batch, c2, h/4, w/4)
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(c2 * (h // 4) * (w // 4), hidden),
            nn.ReLU(),
        )
        self.head = GaussianHead(hidden, z_dim)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)  # (batch, hidden)


class ConvDecoder(nn.Module):
    """p(x|z) parameters from a dense layer and two stride-2 transposed convolutions.

    :param z_dim: latent dimension.
    :param x_shape: ``(channels, height, width)``, height and width divisible by 4.
    :param channels: widths of the two transposed convolutions' inputs.
    :param hidden: width of the first dense layer.
    :param num_classes: if given, emit Categorical logits ``(batch, *x_shape, num_classes)``.
    """

    def __init__(
        self,
        z_dim: int = 50,
        x_shape: Sequence[int] = (1, 28, 28),
        channels: Sequence[int] = (64, 32),
        hidden: int = 256,
        num_classes: int | None = None,
    ) -> None:
        super().__init__()
        self.z_dim = positive_int("z_dim", z_dim)
        self.x_shape = _conv_spatial(_check_shape(x_shape))
        self.num_classes = num_classes
        c, h, w = self.x_shape
        c1, c2 = channels
        out_c = c * (num_classes or 1)
        self.body = nn.Sequential(
            nn.Linear(z_dim, hidden),
            nn.ReLU(),
            nn.Linear(hidden, c1 * (h // 4) * (w // 4)),
            nn.ReLU(),
            nn.Unflatten(1, (c1, h // 4, w // 4)),  # (batch, c1, h/4, w/4)
            nn.ConvTranspose2d(c1, c2, 4, stride=2, padding=1),  # (batch, c2, h/2, w/2)
            nn.ReLU(),
            nn.ConvTranspose2d(c2, out_c, 4, stride=2, padding=1),  # (batch, out_c, h, w)
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = self.body(z)  # (batch, c * K, h, w)
        if self.num_classes:
            c, h, w = self.x_shape
            out = out.reshape(z.shape[0], c, self.num_classes, h, w).movedim(2, -1)  # (batch, c, h, w, K)
        return out
