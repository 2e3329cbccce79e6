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

from .._util.checks import one_of
from ..data.corrupt import NOISE, corrupt


class NoisyEncoder(nn.Module):
    """An encoder that corrupts its input in training mode (a fresh draw every call).

    :param encoder: the wrapped encoder, ``x (batch, *x_shape) -> (loc, scale)``.
    :param noise: ``"flip"``, ``"gaussian"`` or ``"mask"`` (see :func:`pyrovae.inspect.corrupt`).
    :param amount: strength of the corruption.
    """

    def __init__(self, encoder: nn.Module, noise: str = "flip", amount: float = 0.1) -> None:
        super().__init__()
        self.encoder, self.noise, self.amount = encoder, one_of("noise", noise, NOISE), amount
        self.x_shape, self.z_dim = encoder.x_shape, encoder.z_dim

    @property
    def context_dim(self) -> int | None:
        """The wrapped encoder's context width, or ``None`` if it has no context protocol."""
        return getattr(self.encoder, "context_dim", None)

    def _view(self, x: torch.Tensor) -> torch.Tensor:
        return corrupt(x, self.noise, self.amount, seed=None) if self.training else x  # (batch, *x_shape)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoder(self._view(x))

    def forward_with_context(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(loc, scale, h)`` of the wrapped encoder on the (corrupted) view of ``x``."""
        return self.encoder.forward_with_context(self._view(x))
