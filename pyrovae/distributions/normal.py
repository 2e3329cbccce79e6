r"""Normals whose log-density skips work the reparameterisation already did.

A guide draws :math:`z = \mu + \sigma \varepsilon` and the ELBO then scores that same :math:`z`:

.. math::

    \log q(z) = -\tfrac12 \Big(\frac{z - \mu}{\sigma}\Big)^2 - \log\sigma - \tfrac12\log 2\pi
              = -\tfrac12 \varepsilon^2 - \log\sigma - \tfrac12\log 2\pi .

:class:`ReparamNormal` keeps the :math:`\varepsilon` of its last ``rsample`` and, scoring that
very tensor, uses the right-hand side. The value is the same to float rounding, and so is
the gradient: as a function of :math:`(\mu, \sigma)` along the draw, :math:`(z - \mu)/\sigma`
*is* :math:`\varepsilon`, so the total derivative of :math:`\log q(z(\mu, \sigma))` is that of
:math:`-\log \sigma` alone, which is what the right-hand side differentiates. Any other value
is scored by the usual formula. :class:`UnitNormal` is :math:`\mathcal N(0, 1)`, scored as
:math:`-\tfrac12 z^2 - \tfrac12 \log 2\pi` without the arithmetic on constant zeros and ones.

References:

1. Kingma, D. P. and Welling, M. (2014). Auto-Encoding Variational Bayes. ICLR (section 2.4).
"""

from __future__ import annotations

import math

import torch
from pyro import distributions as dist
from torch.distributions.utils import _standard_normal

__all__ = ["ReparamNormal", "UnitNormal"]

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
_NO_SHAPE = torch.Size()


def _to_batch(log_p: torch.Tensor, batch_shape: torch.Size) -> torch.Tensor:
    # the broadcast of the value's shape and the distribution's batch shape, as Normal.log_prob gives
    n = len(batch_shape)
    if log_p.dim() >= n and log_p.shape[log_p.dim() - n:] == batch_shape:
        return log_p  # the batch shape is already the trailing part (the usual case: no broadcast needed)
    return log_p.expand(torch.broadcast_shapes(log_p.shape, batch_shape))


class ReparamNormal(dist.Normal):
    """:class:`pyro.distributions.Normal` that scores its own last ``rsample`` from the kept noise."""

    def rsample(self, sample_shape: torch.Size = _NO_SHAPE) -> torch.Tensor:
        """:math:`\\mu + \\sigma\\varepsilon`, keeping :math:`\\varepsilon` for :meth:`log_prob`."""
        shape = self._extended_shape(sample_shape)
        eps = _standard_normal(shape, dtype=self.loc.dtype, device=self.loc.device)  # Normal.rsample's draw
        z = self.loc + eps * self.scale
        self._draw = (z, eps)
        return z

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """:math:`\\log \\mathcal N(value; \\mu, \\sigma^2)` element-wise (see the module docstring)."""
        draw = getattr(self, "_draw", None)
        if draw is None or value is not draw[0] or torch.jit.is_tracing():
            return super().log_prob(value)
        if self._validate_args:
            self._validate_sample(value)
        eps = draw[1]
        return (eps * eps).mul_(-0.5) - self.scale.log() - _HALF_LOG_2PI


class UnitNormal(dist.Normal):
    """:math:`\\mathcal N(0, 1)` with the given (zero) ``loc`` and (unit) ``scale`` tensors, scored
    without them. Build it as ``UnitNormal(zeros, ones)``; a ``loc`` or ``scale`` that is not
    0 or 1 would be scored wrongly, so the prior module that builds it owns both buffers."""

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """:math:`-\\tfrac12 z^2 - \\tfrac12\\log 2\\pi` element-wise, broadcast to the batch shape."""
        if torch.jit.is_tracing():  # shapes are traced values there: the general formula
            return super().log_prob(value)
        if self._validate_args:
            self._validate_sample(value)
        return _to_batch((value * value).mul_(-0.5).sub_(_HALF_LOG_2PI), self.batch_shape)
