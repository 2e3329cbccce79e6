r"""Inference networks for hierarchical VAEs with latent layers :math:`z_1, \dots, z_L`
(:math:`z_1` next to x, :math:`z_L` on top).

- :class:`BottomUpEncoder`: :math:`q(z_1|x)\, q(z_2|z_1) \cdots q(z_L|z_{L-1})`, one MLP and
  Gaussian head per layer, each reading the *sample* of the layer below (Burda et al. 2016).
- :class:`LadderEncoder`: a deterministic bottom-up pass :math:`d_1 = f_1(x)`,
  :math:`d_l = f_l(d_{l-1})` with a Gaussian head per layer, whose outputs the model combines
  top-down with the generative conditionals :math:`p(z_l|z_{l+1})` (Sønderby et al. 2016;
  Vahdat and Kautz 2020), so that :math:`q(z_l|z_{l+1}, x)` depends on the layer above.

Both handle any leading sample dims on their inputs (:func:`folded`).

References:

1. Burda, Y., Grosse, R. and Salakhutdinov, R. (2016). Importance Weighted Autoencoders. ICLR.
2. Sønderby, C. K., Raiko, T., Maaløe, L., Sønderby, S. K. and Winther, O. (2016). Ladder
   Variational Autoencoders. NeurIPS.
3. Vahdat, A. and Kautz, J. (2020). NVAE: A Deep Hierarchical Variational Autoencoder. NeurIPS.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from .._util.checks import positive_int
from .functional import GaussianHead, _activation, _check_shape, mlp
from .mlp import MLPEncoder

#: how the top-down guide combines the bottom-up head with the prior p(z_l | z_{l+1})
COMBINE = ("precision", "residual")


def folded(net: Callable[[torch.Tensor], Any], h: torch.Tensor, event_dims: int = 1) -> Any:
    """Apply a ``(batch, *event) -> outputs`` network to ``h`` with any leading dims.

    The leading dims (sample and particle dims in front of the batch) are folded into the batch
    and unfolded in every output, so networks written for ``(batch, d)`` inputs serve
    vectorised particles and ancestral sampling unchanged.

    :param net: maps ``(n, *event)`` to a tensor or a tuple of tensors, each ``(n, ...)``.
    :param h: ``(*lead, *event)``.
    :param event_dims: how many trailing dims of ``h`` belong to one input.
    :returns: the outputs, each ``(*lead, ...)``.
    """
    lead = h.shape[: h.dim() - event_dims]
    out = net(h.reshape(-1, *h.shape[h.dim() - event_dims:]))
    if isinstance(out, tuple):
        return tuple(o.reshape(*lead, *o.shape[1:]) for o in out)
    return out.reshape(*lead, *out.shape[1:])


def _check_layers(hidden: Sequence[Sequence[int]],
                  z_dims: Sequence[int]) -> tuple[tuple[tuple[int, ...], ...], tuple[int, ...]]:
    z_dims = tuple(positive_int("z_dims entry", d) for d in z_dims)
    hidden = tuple(tuple(h) for h in hidden)
    if len(z_dims) < 2:
        raise ValueError(f"a hierarchical VAE needs at least 2 latent layers, got z_dims={z_dims}")
    if len(hidden) != len(z_dims):
        raise ValueError(f"give one tuple of hidden widths per latent layer: {len(z_dims)} layers, "
                         f"{len(hidden)} tuples")
    return hidden, z_dims


class BottomUpEncoder(nn.Module):
    r"""The bottom-up guide's networks: :math:`q(z_1|x)` from x, :math:`q(z_l|z_{l-1})` from the
    sample below.

    Burda et al.'s two-layer network is ``hidden=((200, 200), (100, 100)), z_dims=(100, 50)``:
    784-200-200-100 and 100-100-100-50.

    :param x_shape: shape of one data point.
    :param hidden: hidden widths of each layer's MLP, bottom first.
    :param z_dims: latent sizes, bottom (:math:`z_1`) first.
    :param activation: hidden non-linearity (Burda et al. use tanh).
    """

    direction = "bottom_up"

    def __init__(self, x_shape: Sequence[int], hidden: Sequence[Sequence[int]], z_dims: Sequence[int],
                 activation: str = "tanh") -> None:
        super().__init__()
        self.x_shape = _check_shape(x_shape)
        self.hidden, self.z_dims = _check_layers(hidden, z_dims)
        inputs = [self.x_shape] + [(d,) for d in self.z_dims[:-1]]
        self.layers = nn.ModuleList(MLPEncoder(i, h, d, activation)
                                    for i, h, d in zip(inputs, self.hidden, self.z_dims))

    def forward(self, layer: int, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(loc, scale)`` of the posterior of latent layer ``layer`` (0-based: 0 is :math:`z_1`).

        :param layer: which layer.
        :param h: x ``(*lead, *x_shape)`` for layer 0, else the sample of the layer below,
            ``(*lead, z_dims[layer - 1])``.
        :returns: ``(loc, scale)``, each ``(*lead, z_dims[layer])``.
        """
        return folded(self.layers[layer], h, len(self.x_shape) if layer == 0 else 1)  # each (*lead, z_dims[layer])


class LadderEncoder(nn.Module):
    r"""The top-down guide's deterministic bottom-up pass, with one Gaussian head per layer.

    :math:`d_1 = f_1(x)`, :math:`d_l = f_l(d_{l-1})`; head l gives :math:`(\hat\mu_l, \hat\sigma_l)`.
    The top layer's posterior is the head itself, :math:`q(z_L|x) = \mathcal{N}(\hat\mu_L, \hat\sigma_L^2)`;
    below it, :meth:`combine` merges the head with the prior :math:`p(z_l|z_{l+1}) = \mathcal{N}(\mu_p, \sigma_p^2)`:

    .. math::

        \text{precision:}\quad \sigma_q^{-2} = \hat\sigma^{-2} + \sigma_p^{-2}, \quad
            \mu_q = \sigma_q^2 (\hat\mu \hat\sigma^{-2} + \mu_p \sigma_p^{-2})
            \qquad \text{(Sønderby et al. 2016)};

        \text{residual:}\quad \mu_q = \mu_p + \hat\mu, \quad \sigma_q = \sigma_p \hat\sigma
            \qquad \text{(Vahdat and Kautz 2020)}.

    :param x_shape: shape of one data point.
    :param hidden: hidden widths of each deterministic block, bottom first; block l reads block l-1.
    :param z_dims: latent sizes, bottom first.
    :param activation: hidden non-linearity.
    :param combine: ``"precision"`` or ``"residual"``.
    """

    direction = "top_down"

    def __init__(self, x_shape: Sequence[int], hidden: Sequence[Sequence[int]], z_dims: Sequence[int],
                 activation: str = "tanh", combine: str = "precision") -> None:
        super().__init__()
        self.x_shape = _check_shape(x_shape)
        self.hidden, self.z_dims = _check_layers(hidden, z_dims)
        if combine not in COMBINE:
            raise ValueError(f"unknown combine {combine!r}; expected one of {list(COMBINE)}")
        self.combine_mode = combine
        act = _activation(activation)
        blocks, heads, width = [], [], math.prod(self.x_shape)
        for h, d in zip(self.hidden, self.z_dims):
            # an empty block passes its input on (a linear ladder, as the closed-form tests use)
            blocks.append(nn.Sequential(mlp((width, *h), activation), act()) if h else nn.Identity())
            width = h[-1] if h else width
            heads.append(GaussianHead(width, d))
        self.blocks, self.heads = nn.ModuleList(blocks), nn.ModuleList(heads)

    def forward(self, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The heads :math:`(\\hat\\mu_l, \\hat\\sigma_l)` of every layer, bottom first, each ``(batch, z_dims[l])``."""
        d = x.flatten(1)  # (batch, prod(x_shape))
        heads = []
        for block, head in zip(self.blocks, self.heads):
            d = block(d)  # (batch, hidden[l][-1])
            heads.append(head(d))
        return heads

    def combine(self, head: tuple[torch.Tensor, torch.Tensor], prior_loc: torch.Tensor,
                prior_scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(loc, scale)`` of :math:`q(z_l|z_{l+1}, x)` from the head ``(batch, d)`` and the prior's
        ``(*lead, batch, d)`` parameters; broadcasts to ``(*lead, batch, d)``."""
        loc_hat, scale_hat = head
        if self.combine_mode == "residual":
            return prior_loc + loc_hat, prior_scale * scale_hat
        prec_hat, prec_p = scale_hat.pow(-2), prior_scale.pow(-2)
        var = 1.0 / (prec_hat + prec_p)
        return var * (loc_hat * prec_hat + prior_loc * prec_p), var.sqrt()
