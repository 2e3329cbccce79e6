r"""The conditional VAE: a label y enters both the generative model and the guide.

.. math::

    p_\theta(x, z \mid y) = p(z)\, p_\theta(x \mid z, y), \qquad
    q_\phi(z \mid x, y) = \mathcal{N}\big(\mu_\phi(x, y), \operatorname{diag}\sigma^2_\phi(x, y)\big),

trained on the conditional ELBO
:math:`\mathbb{E}_q[\log p_\theta(x|z,y)] - \mathrm{KL}(q_\phi(z|x,y) \,\|\, p(z))`.
Because y already says *which* digit it is, z is free to hold the *style* (slant, stroke
width); decoding one z with different y gives the same handwriting of another digit.

Sites follow the library's contract: latent ``"z"``, observation ``"x"``, plate ``"data"``.
The label is observed data, not a site: ``model(x, y)`` and ``guide(x, y)``.

References:

1. Sohn, K., Lee, H. and Yan, X. (2015). Learning Structured Output Representation using
   Deep Conditional Generative Models. NeurIPS.
2. Kingma, D. P. et al. (2014). Semi-Supervised Learning with Deep Generative Models.
   NeurIPS (the M2 model's p(x|y,z)).
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroModule
from torch import nn
from torch.distributions import kl_divergence

from .. import likelihoods as _likelihoods


class ConditionalVAE(PyroModule):
    """A VAE conditioned on a label: ``model(x, y)`` is p(z) p(x|z,y), ``guide(x, y)`` is q(z|x,y).

    :param encoder: maps ``(x, y)`` to ``(loc, scale)``, each ``(batch, z_dim)``.
    :param decoder: maps ``(z, y)`` to the likelihood's parameters ``(batch, *x_shape)``.
    :param likelihood: default Bernoulli.
    """

    def __init__(
        self, encoder: nn.Module, decoder: nn.Module, likelihood: _likelihoods.Likelihood | None = None
    ) -> None:
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        self.likelihood = likelihood if likelihood is not None else _likelihoods.Bernoulli()
        self.x_shape, self.z_dim, self.num_classes = encoder.x_shape, encoder.z_dim, encoder.num_classes

    def _check(self, x: torch.Tensor, y: torch.Tensor) -> None:
        if tuple(x.shape[1:]) != self.x_shape:
            raise ValueError(f"x has shape {tuple(x.shape)}, expected (batch, {', '.join(map(str, self.x_shape))})")
        if y.shape != x.shape[:1]:
            raise ValueError(f"y must have shape (batch,) = ({len(x)},), got {tuple(y.shape)}")
        if ((y < 0) | (y >= self.num_classes)).any():
            raise ValueError(f"labels must lie in [0, {self.num_classes - 1}]")

    def prior(self, like: torch.Tensor) -> dist.Distribution:
        """N(0, I) over z, on the device and dtype of ``like``."""
        zeros = like.new_zeros(self.z_dim)
        return dist.Normal(zeros, zeros + 1).to_event(1)

    def model(self, x: torch.Tensor, y: torch.Tensor, num_data: int | None = None) -> None:
        """p(z) p(x|z,y) with x ``(batch, *x_shape)`` observed and y ``(batch,)`` given."""
        self._check(x, y)
        pyro.module("decoder", self.decoder)
        with pyro.plate("data", num_data or len(x), subsample=torch.arange(len(x), device=x.device)):
            z = pyro.sample("z", self.prior(x))  # (batch, z_dim)
            pyro.sample("x", self.likelihood(self.decoder(z, y), len(self.x_shape)), obs=x)

    def guide(self, x: torch.Tensor, y: torch.Tensor, num_data: int | None = None) -> None:
        """q(z|x,y)."""
        pyro.module("encoder", self.encoder)
        with pyro.plate("data", num_data or len(x), subsample=torch.arange(len(x), device=x.device)):
            pyro.sample("z", dist.Normal(*self.encoder(x, y)).to_event(1))

    @torch.no_grad()
    def decode_mean(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean of p(x|z,y), ``(batch, *x_shape)``."""
        return self.likelihood.mean(self.decoder(z, y))

    @torch.no_grad()
    def generate(self, y: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """Digits of the requested classes: decode ``z`` (default: prior draws) with labels ``y``.

        :param y: ``(n,)`` labels.
        :param z: ``(n, z_dim)`` codes, or ``None`` to draw them from p(z).
        """
        if z is None:
            z = self.prior(next(self.decoder.parameters())).sample((len(y),))  # (n, z_dim)
        return self.decode_mean(z, y)

    @torch.no_grad()
    def style_transfer(self, x: torch.Tensor, y: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Encode each x with its own label, then decode the same z with every target label.

        :param x: ``(n, *x_shape)`` source images.
        :param y: ``(n,)`` their labels.
        :param targets: ``(k,)`` labels to render.
        :returns: ``(n, k, *x_shape)``: row i is x_i's style written as each target.
        """
        loc, _ = self.encoder(x, y)  # (n, z_dim)
        n, k = len(x), len(targets)
        z = loc.repeat_interleave(k, dim=0)  # (n*k, z_dim)
        out = self.decode_mean(z, targets.repeat(n))  # (n*k, *x_shape)
        return out.reshape(n, k, *self.x_shape)

    @torch.no_grad()
    def elbo(self, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        """Conditional ELBO per data point with the analytic KL, ``(N,)``."""
        out = []
        for xb, yb in zip(x.split(batch_size), y.split(batch_size)):
            q = dist.Normal(*self.encoder(xb, yb)).to_event(1)
            recon = self.likelihood(self.decoder(q.rsample(), yb), len(self.x_shape)).log_prob(xb)  # (b,)
            out.append(recon - kl_divergence(q, self.prior(xb)))
        return torch.cat(out)
