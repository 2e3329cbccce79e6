"""Encoder and decoder networks.

An *encoder* maps ``x`` of shape ``(batch, *x_shape)`` to ``(loc, scale)`` of the
diagonal-Normal guide, each ``(batch, z_dim)`` with ``scale > 0``. A *decoder* maps ``z`` of
shape ``(batch, z_dim)`` to the likelihood's parameter tensor: ``(batch, *x_shape)`` (Bernoulli
logits, Gaussian/Laplace loc) or ``(batch, *x_shape, num_classes)`` (Categorical logits).
Any ``nn.Module`` that follows this protocol plugs into :class:`pyrovae.VAE`.

References:

1. Kingma, D. P. and Welling, M. (2014). Auto-Encoding Variational Bayes. ICLR.
2. Radford, A., Metz, L. and Chintala, S. (2016). Unsupervised Representation Learning
   with Deep Convolutional Generative Adversarial Networks. ICLR.
3. Bowman, S. R. et al. (2016). Generating Sentences from a Continuous Space. CoNLL.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

#: Smallest standard deviation an encoder emits; keeps log q(z|x) finite.
MIN_SCALE = 1e-4

_ACTIVATIONS = {"softplus": nn.Softplus, "relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "gelu": nn.GELU}


def _check_dim(name: str, value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _check_shape(x_shape: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(x_shape)
    if not shape or any(not isinstance(s, int) or s < 1 for s in shape):
        raise ValueError(f"x_shape must be a non-empty tuple of positive ints, got {x_shape!r}")
    return shape


def _activation(name: str) -> type[nn.Module]:
    try:
        return _ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; expected one of {sorted(_ACTIVATIONS)}") from None


def mlp(sizes: Sequence[int], activation: str = "softplus") -> nn.Sequential:
    """A multilayer perceptron with ``activation`` between (not after) the layers.

    :param sizes: layer widths, input first, e.g. ``(784, 400, 50)``.
    :param activation: one of ``softplus``, ``relu``, ``tanh``, ``elu``, ``gelu``.
    """
    act = _activation(activation)
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(act())
    return nn.Sequential(*layers)


def positive_scale(raw: torch.Tensor) -> torch.Tensor:
    """Map an unconstrained tensor to a standard deviation: ``softplus(raw) + MIN_SCALE``."""
    return F.softplus(raw) + MIN_SCALE


class GaussianHead(nn.Module):
    """A linear layer from features to ``(loc, scale)`` of a diagonal Normal.

    :param in_features: width of the features.
    :param z_dim: latent dimension.
    """

    def __init__(self, in_features: int, z_dim: int) -> None:
        super().__init__()
        self.z_dim = _check_dim("z_dim", z_dim)
        self.linear = nn.Linear(in_features, 2 * z_dim)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loc, raw = self.linear(h).chunk(2, dim=-1)  # each (batch, z_dim)
        return loc, positive_scale(raw)


class MLPEncoder(nn.Module):
    """q(z|x): flatten ``x``, then an MLP, then a Gaussian head.

    :param x_shape: shape of one data point, e.g. ``(1, 28, 28)`` or ``(D,)``.
    :param hidden: hidden-layer widths, e.g. ``(400,)``.
    :param z_dim: latent dimension.
    :param activation: hidden non-linearity (default softplus, as in Kingma & Welling 2014).
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
        self.z_dim = _check_dim("z_dim", z_dim)
        self.hidden = tuple(hidden)
        x_size = math.prod(self.x_shape)
        self.body = mlp((x_size, *self.hidden), activation)
        self.act = _activation(activation)() if self.hidden else nn.Identity()
        self.head = GaussianHead(self.hidden[-1] if self.hidden else x_size, z_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.act(self.body(x.flatten(1)))  # (batch, hidden[-1])
        return self.head(h)


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
        self.z_dim = _check_dim("z_dim", z_dim)
        self.x_shape = _check_shape(x_shape)
        self.hidden = tuple(hidden)
        self.out_shape = self.x_shape + ((num_classes,) if num_classes else ())
        self.net = mlp((z_dim, *self.hidden, math.prod(self.out_shape)), activation)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).reshape(z.shape[0], *self.out_shape)  # (batch, *out_shape)


def _conv_spatial(x_shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(x_shape) != 3 or x_shape[1] % 4 or x_shape[2] % 4:
        raise ValueError(
            f"conv nets need x_shape (channels, height, width) with height and width divisible by 4, got {x_shape}"
        )
    return x_shape


class ConvEncoder(nn.Module):
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
        self.z_dim = _check_dim("z_dim", z_dim)
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

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(self.body(x))


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
        self.z_dim = _check_dim("z_dim", z_dim)
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


# --------------------------------------------------------------------------------------
# Recurrent networks for discrete sequences (Bowman et al. 2016)
# --------------------------------------------------------------------------------------

_CELLS = {"gru": nn.GRU, "lstm": nn.LSTM}


def _rnn(cell: str, input_size: int, hidden: int, bidirectional: bool = False) -> nn.RNNBase:
    try:
        cls = _CELLS[cell]
    except KeyError:
        raise ValueError(f"unknown recurrent cell {cell!r}; expected one of {sorted(_CELLS)}") from None
    return cls(input_size, hidden, batch_first=True, bidirectional=bidirectional)


def _check_tokens(x: torch.Tensor, seq_len: int) -> torch.Tensor:
    if x.dim() != 2 or x.shape[1] != seq_len:
        raise ValueError(f"expected token ids of shape (batch, {seq_len}), got {tuple(x.shape)}")
    return x.long()  # data may arrive as float class indices


class RNNEncoder(nn.Module):
    """q(z|x) for token sequences: embed, run a bidirectional GRU or LSTM, and read the
    Gaussian parameters off the final states of both directions.

    :param seq_len: length L of every (padded) sequence; ``x_shape`` is ``(L,)``.
    :param vocab_size: number of token ids V; x holds integers in ``[0, V)``.
    :param z_dim: latent dimension.
    :param embed_dim: width of the token embedding.
    :param hidden: width of the recurrent state (per direction).
    :param cell: ``"gru"`` or ``"lstm"``.
    """

    def __init__(
        self, seq_len: int, vocab_size: int, z_dim: int = 16, embed_dim: int = 32, hidden: int = 128, cell: str = "gru"
    ) -> None:
        super().__init__()
        self.x_shape = (_check_dim("seq_len", seq_len),)
        self.vocab_size = _check_dim("vocab_size", vocab_size)
        self.z_dim = _check_dim("z_dim", z_dim)
        self.cell = cell
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.rnn = _rnn(cell, embed_dim, hidden, bidirectional=True)
        self.head = GaussianHead(2 * hidden, z_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = _check_tokens(x, self.x_shape[0])  # (batch, L)
        _, state = self.rnn(self.embed(tokens))
        h = state[0] if self.cell == "lstm" else state  # (2, batch, hidden): last state of each direction
        return self.head(torch.cat([h[0], h[1]], dim=-1))  # each (batch, z_dim)


class RNNDecoder(nn.Module):
    """p(x|z) for token sequences: Categorical logits ``(batch, L, V)`` from a GRU or LSTM.

    z sets the initial state and is also fed as the input at every step, together with a
    learned position embedding. The decoder does not read the previous tokens (no teacher
    forcing), so it follows the ``z -> logits`` decoder protocol and cannot ignore z the
    way an autoregressive decoder can (the posterior collapse of Bowman et al. 2016).

    :param z_dim: latent dimension.
    :param seq_len: sequence length L.
    :param vocab_size: number of token ids V.
    :param hidden: width of the recurrent state.
    :param cell: ``"gru"`` or ``"lstm"``.
    :param pos_dim: width of the position embedding.
    """

    def __init__(
        self, z_dim: int, seq_len: int, vocab_size: int, hidden: int = 128, cell: str = "gru", pos_dim: int = 16
    ) -> None:
        super().__init__()
        self.z_dim = _check_dim("z_dim", z_dim)
        self.x_shape = (_check_dim("seq_len", seq_len),)
        self.vocab_size = _check_dim("vocab_size", vocab_size)
        self.cell = cell
        self.init = nn.Linear(z_dim, hidden)
        self.pos = nn.Parameter(0.1 * torch.randn(seq_len, pos_dim))  # (L, pos_dim)
        self.rnn = _rnn(cell, z_dim + pos_dim, hidden)
        self.out = nn.Linear(hidden, vocab_size)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        batch, length = z.shape[0], self.x_shape[0]
        inputs = torch.cat(
            [z.unsqueeze(1).expand(batch, length, self.z_dim), self.pos.expand(batch, -1, -1)], dim=-1
        )  # (batch, L, z_dim + pos_dim)
        h0 = torch.tanh(self.init(z)).unsqueeze(0)  # (1, batch, hidden)
        state = (h0, torch.zeros_like(h0)) if self.cell == "lstm" else h0
        out, _ = self.rnn(inputs, state)  # (batch, L, hidden)
        return self.out(out)  # (batch, L, V)
