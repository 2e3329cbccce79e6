r"""The denoising VAE: the guide sees a corrupted input, the model scores the clean one.

Wrapping the encoder in :class:`NoisyEncoder` corrupts x inside the guide while the module
is in training mode, so the ELBO that any Pyro optimiser maximises becomes

.. math::

    \mathbb{E}_{\tilde x \sim c(\tilde x|x)}\Big[\mathbb{E}_{q(z|\tilde x)}[\log p(x|z)]
        - \mathrm{KL}(q(z|\tilde x) \,\|\, p(z))\Big],

the denoising criterion of Im et al. (2017): reconstruct the clean x from a noisy view.
In eval mode the wrapper passes x through, so a trained model is used as usual:
``inspect.denoise(vae, x_noisy)`` reconstructs from corrupted inputs. ``model`` and
``guide`` keep their signatures, so :func:`pyrovae.train.fit` trains it unchanged.

References:

1. Vincent, P. et al. (2008). Extracting and Composing Robust Features with Denoising
   Autoencoders. ICML.
2. Im, D. J. et al. (2017). Denoising Criterion for Variational Auto-Encoding Framework. AAAI.
"""

from __future__ import annotations

import torch
from torch import nn

from ..data.corrupt import NOISE, corrupt


class NoisyEncoder(nn.Module):
    """An encoder that corrupts its input in training mode (a fresh draw every call).

    :param encoder: the wrapped encoder, ``x (batch, *x_shape) -> (loc, scale)``.
    :param noise: ``"flip"``, ``"gaussian"`` or ``"mask"`` (see :func:`pyrovae.inspect.corrupt`).
    :param amount: strength of the corruption.
    """

    def __init__(self, encoder: nn.Module, noise: str = "flip", amount: float = 0.1) -> None:
        super().__init__()
        if noise not in NOISE:
            raise ValueError(f"unknown noise {noise!r}; expected one of {NOISE}")
        self.encoder, self.noise, self.amount = encoder, noise, amount
        self.x_shape, self.z_dim = encoder.x_shape, encoder.z_dim

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.training:
            x = corrupt(x, self.noise, self.amount, seed=None)  # (batch, *x_shape)
        return self.encoder(x)
