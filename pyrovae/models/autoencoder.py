r"""A plain (deterministic) autoencoder written as a Pyro model and guide.

The guide is a point mass at the encoder's output, :math:`q(z|x) = \delta(z - \mu_\phi(x))`,
and the ``"z"`` site is masked in both model and guide, so the ELBO that Pyro optimises
reduces to the reconstruction log-likelihood alone:

.. math::

    \mathcal{L}_{\mathrm{AE}}(x) = \log p_\theta\big(x \mid z = \mu_\phi(x)\big).

With a Bernoulli likelihood this is the binary cross-entropy autoencoder of the seed
articles. Nothing pulls the codes towards the prior, which is why decoding random prior
draws gives poor samples: the gap a VAE closes. With ``prior_weight > 0`` the point-mass
guide gives MAP estimation instead (:math:`\log p(x|z) + w \log p(z)`), a regularised AE.

Because :class:`Autoencoder` is a :class:`~pyrovae.VAE` (same sites ``"z"``, ``"x"`` and
plate ``"data"``), :func:`pyrovae.train.fit`, ``SVI`` and the inspection tools all accept it.

References:

1. Hinton, G. E. and Salakhutdinov, R. R. (2006). Reducing the Dimensionality of Data with
   Neural Networks. Science.
2. Kingma, D. P. and Welling, M. (2014). Auto-Encoding Variational Bayes. ICLR.
"""

from __future__ import annotations

from typing import Any

import pyro.distributions as dist
import torch
from torch import nn

from .. import likelihoods as _likelihoods
from .vae import VAE


class Autoencoder(VAE):
    """A deterministic autoencoder: a :class:`~pyrovae.VAE` whose guide is a ``Delta``.

    Any library encoder works: its ``loc`` is the code and its ``scale`` is ignored.

    :param encoder: maps x ``(batch, *x_shape)`` to ``(loc, scale)``.
    :param decoder: maps z ``(batch, z_dim)`` to the likelihood's parameters.
    :param prior: the distribution that :meth:`sample` draws codes from (default N(0, I)).
        It enters training only through ``prior_weight``.
    :param likelihood: the reconstruction likelihood (default Bernoulli, i.e. cross-entropy).
    :param prior_weight: weight of :math:`\\log p(z)`; 0 (default) is a plain autoencoder.
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        prior: Any = None,
        likelihood: _likelihoods.Likelihood | None = None,
        prior_weight: float = 0.0,
        **kwargs: Any,
    ) -> None:
        # beta weights the "z" site in model and guide; beta = 0 masks it, which removes
        # log p(z) and the (zero) log-density of the point mass from the objective
        super().__init__(encoder, decoder, prior, likelihood, beta=prior_weight, **kwargs)

    #: the scale is ignored, so its values are not checked on the first batch (its shape is)
    _uses_scale = False

    def encode(self, x: torch.Tensor) -> dist.Distribution:
        """The point mass at the code, ``batch_shape (batch,)`` and ``event_shape (z_dim,)``."""
        loc, _ = self._encoder_params(x)  # (batch, z_dim), protocol-checked on the first batch
        return dist.Delta(loc, event_dim=1)
