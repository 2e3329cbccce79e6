"""Networks for the semi-supervised M2 VAE: a classifier q(y|x), and an encoder q(z|x, y) and a
decoder p(x|y, z) whose label input broadcasts, so that Pyro can enumerate y.

An MLP over the concatenation ``[h, one_hot(y)]`` has the first layer
``W_h h + W_y one_hot(y) + c``; writing ``W_y one_hot(y)`` as an embedding lookup lets ``y`` carry
leading enumeration dims, ``(C, 1)`` against a batch ``(batch, d)``, and gives ``(C, batch, ...)``
without copying ``h`` once per label (Kingma et al. 2014; Pyro's ``examples/vae/ss_vae_M2.py``
broadcasts the inputs instead).

References:

1. Kingma, D. P., Rezende, D. J., Mohamed, S. and Welling, M. (2014). Semi-Supervised Learning
   with Deep Generative Models. NeurIPS.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from .._util.checks import positive_int
from .functional import GaussianHead, _activation, _check_shape, mlp


class LabelledMLP(nn.Module):
    """An MLP over ``[h, one_hot(y)]`` whose label input broadcasts against ``h``.

    :param in_features: width of ``h``.
    :param num_classes: number of labels.
    :param sizes: widths after the input, e.g. ``(500, 784)``; the activation sits between layers.
    :param activation: hidden non-linearity.
    """

    def __init__(self, in_features: int, num_classes: int, sizes: Sequence[int], activation: str = "softplus") -> None:
        super().__init__()
        if not sizes:
            raise ValueError("LabelledMLP needs at least one layer width")
        self.num_classes = positive_int("num_classes", num_classes)
        self.h_in = nn.Linear(in_features, sizes[0])
        self.y_in = nn.Embedding(num_classes, sizes[0])  # = W_y one_hot(y), the label's half of the first layer
        self.act = _activation(activation)() if len(sizes) > 1 else nn.Identity()
        self.rest = mlp(tuple(sizes), activation)

    def forward(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``h`` ``(*lead_h, in_features)`` and ``y`` ``(*lead_y)`` (integer labels), with broadcastable
        leads, to ``(*lead, sizes[-1])``."""
        return self.rest(self.act(self.h_in(h) + self.y_in(y.long())))


class LabelledMLPEncoder(nn.Module):
    """q(z|x, y): a :class:`LabelledMLP` over the flattened x and the label, then a Gaussian head.

    :param x_shape: shape of one data point.
    :param num_classes: number of labels.
    :param hidden: hidden widths (at least one).
    :param z_dim: latent dimension.
    :param activation: hidden non-linearity.
    """

    def __init__(self, x_shape: Sequence[int], num_classes: int, hidden: Sequence[int] = (500,), z_dim: int = 50,
                 activation: str = "softplus") -> None:
        super().__init__()
        self.x_shape, self.num_classes, self.z_dim = _check_shape(x_shape), num_classes, positive_int("z_dim", z_dim)
        if not hidden:
            raise ValueError("LabelledMLPEncoder needs at least one hidden layer")
        self.body = LabelledMLP(math.prod(self.x_shape), num_classes, tuple(hidden), activation)
        self.act = _activation(activation)()
        self.head = GaussianHead(hidden[-1], self.z_dim)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.act(self.body(x.flatten(-len(self.x_shape)), y))  # (*lead, batch, hidden[-1])
        return self.head(h)  # each (*lead, batch, z_dim)


class LabelledMLPDecoder(nn.Module):
    """p(x|y, z) parameters from a :class:`LabelledMLP` over z and the label.

    :param z_dim: latent dimension.
    :param num_classes: number of labels.
    :param hidden: hidden widths.
    :param x_shape: shape of one data point.
    :param activation: hidden non-linearity.
    """

    def __init__(self, z_dim: int, num_classes: int, hidden: Sequence[int] = (500,),
                 x_shape: Sequence[int] = (1, 28, 28), activation: str = "softplus") -> None:
        super().__init__()
        self.z_dim, self.num_classes, self.x_shape = positive_int("z_dim", z_dim), num_classes, _check_shape(x_shape)
        self.net = LabelledMLP(self.z_dim, num_classes, (*hidden, math.prod(self.x_shape)), activation)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = self.net(z, y)  # (*lead, batch, prod(x_shape))
        return out.reshape(*out.shape[:-1], *self.x_shape)


class MLPClassifier(nn.Module):
    """q(y|x): logits ``(batch, num_classes)`` from an MLP over the flattened x.

    :param x_shape: shape of one data point.
    :param hidden: hidden widths.
    :param num_classes: number of labels.
    :param activation: hidden non-linearity.
    """

    def __init__(self, x_shape: Sequence[int], hidden: Sequence[int] = (500,), num_classes: int = 10,
                 activation: str = "softplus") -> None:
        super().__init__()
        self.x_shape, self.num_classes = _check_shape(x_shape), positive_int("num_classes", num_classes)
        self.net = mlp((math.prod(self.x_shape), *hidden, self.num_classes), activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(-len(self.x_shape)))  # (..., batch, num_classes)
