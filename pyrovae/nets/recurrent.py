"""Recurrent networks for discrete token sequences (Bowman et al. 2016)."""

from __future__ import annotations

import torch
from torch import nn

from .._util.checks import one_of, positive_int
from .functional import GaussianEncoder, GaussianHead

_CELLS = {"gru": nn.GRU, "lstm": nn.LSTM}


def _rnn(cell: str, input_size: int, hidden: int, bidirectional: bool = False) -> nn.RNNBase:
    cls = _CELLS[one_of("recurrent cell", cell, sorted(_CELLS))]
    return cls(input_size, hidden, batch_first=True, bidirectional=bidirectional)


def _check_tokens(x: torch.Tensor, seq_len: int) -> torch.Tensor:
    if x.dim() != 2 or x.shape[1] != seq_len:
        raise ValueError(f"expected token ids of shape (batch, {seq_len}), got {tuple(x.shape)}")
    return x.long()  # data may arrive as float class indices


class RNNEncoder(GaussianEncoder):
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
        self.x_shape = (positive_int("seq_len", seq_len),)
        self.vocab_size = positive_int("vocab_size", vocab_size)
        self.z_dim = positive_int("z_dim", z_dim)
        self.cell = cell
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.rnn = _rnn(cell, embed_dim, hidden, bidirectional=True)
        self.head = GaussianHead(2 * hidden, z_dim)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        tokens = _check_tokens(x, self.x_shape[0])  # (batch, L)
        _, state = self.rnn(self.embed(tokens))
        h = state[0] if self.cell == "lstm" else state  # (2, batch, hidden): last state of each direction
        return torch.cat([h[0], h[1]], dim=-1)  # (batch, 2 hidden)


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
        self.z_dim = positive_int("z_dim", z_dim)
        self.x_shape = (positive_int("seq_len", seq_len),)
        self.vocab_size = positive_int("vocab_size", vocab_size)
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
