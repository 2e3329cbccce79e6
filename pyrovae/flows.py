r"""Normalising flows for VAEs: an inverse autoregressive flow guide and a flow prior.

**IAF guide** (Kingma et al. 2016). The encoder gives a diagonal Normal and a context vector
:math:`h(x)`; :math:`T` affine autoregressive steps, each conditioned on :math:`h`, push it
forward:

.. math::

    z_0 = \mu(x) + \sigma(x) \odot \epsilon, \qquad
    z_t = m_t(z_{t-1}, h) + s_t(z_{t-1}, h) \odot z_{t-1}, \qquad
    \log q(z_T|x) = \log \mathcal{N}(z_0; \mu, \sigma^2) - \sum_{t=1}^{T} \sum_i \log s_{t,i}.

Sampling and the density of the sample cost one network pass per step (Pyro caches the
log-scales of the last sample); the density of an *arbitrary* z needs an inversion with
``z_dim`` passes per step, which only evaluation code that rescores foreign z pays.

**Flow prior** (Papamakarios et al. 2021, masked autoregressive direction). The prior is a
standard Normal :math:`u` mapped through learned bijections, laid out so that the density of
any z (needed at every training step, for the guide's samples) is one pass per step:

.. math::

    \log p(z) = \log \mathcal{N}(f(z); 0, I) + \log \left|\det \partial f / \partial z\right|,
    \qquad f = f_T \circ \dots \circ f_1,

where each :math:`f_t` is an affine (or rational-quadratic spline) autoregressive map.
Sampling inverts :math:`f` (``z_dim`` passes per step). Both start at the identity, so an
untrained flow guide is the diagonal Normal and an untrained affine flow prior is N(0, I).

Both are Pyro distributions (``TransformedDistribution``) with ``event_shape (z_dim,)`` and
plug into :class:`pyrovae.VAE`: ``VAE(..., prior=FlowPrior(z_dim), guide_flow=IAFGuide(z_dim,
context_dim))``.

References:

1. Rezende, D. J. and Mohamed, S. (2015). Variational Inference with Normalizing Flows. ICML.
2. Kingma, D. P., Salimans, T., Jozefowicz, R., Chen, X., Sutskever, I. and Welling, M.
   (2016). Improved Variational Inference with Inverse Autoregressive Flow. NeurIPS.
3. Burda, Y., Grosse, R. and Salakhutdinov, R. (2016). Importance Weighted Autoencoders. ICLR.
4. Tomczak, J. M. and Welling, M. (2018). VAE with a VampPrior. AISTATS.
5. Papamakarios, G., Nalisnick, E., Rezende, D. J., Mohamed, S. and Lakshminarayanan, B.
   (2021). Normalizing Flows for Probabilistic Modeling and Inference. JMLR 22(57).
"""

from __future__ import annotations

from collections.abc import Sequence

import pyro.distributions as dist
import pyro.distributions.transforms as T
import torch
from pyro.nn import AutoRegressiveNN, ConditionalAutoRegressiveNN
from torch import nn

from ._util.checks import one_of, positive_int

__all__ = ["FLOW_KINDS", "FlowPrior", "IAFGuide", "context_dim_of", "encoder_context"]

#: Kinds of autoregressive step a :class:`FlowPrior` can use.
FLOW_KINDS = ("affine", "spline")


def _hidden(hidden: Sequence[int] | None, z_dim: int) -> list[int]:
    widths = [2 * z_dim] if hidden is None else [int(h) for h in hidden]
    if not widths or any(h < z_dim for h in widths):
        # MADE masks need at least z_dim units per layer to keep every output connected
        raise ValueError(f"flow hidden widths must be non-empty and each >= z_dim={z_dim}, got {hidden!r}")
    return widths


def _zero_last_layer(arn: nn.Module) -> None:
    # the output layer emits (mean, log-scale); zero weights and bias make the step the identity
    last = arn.layers[-1]
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)


def _protocol(encoder: nn.Module) -> bool:
    # the context protocol of pyrovae.nets.GaussianEncoder: a width and a pass that returns h
    if getattr(encoder, "context_dim", None) is None:
        return False
    if not callable(getattr(encoder, "forward_with_context", None)):
        raise TypeError(
            f"{type(encoder).__name__} declares context_dim but has no forward_with_context(x) -> (loc, scale, h); "
            "give it one (or derive it from pyrovae.nets.GaussianEncoder)"
        )
    return True


def context_dim_of(encoder: nn.Module) -> int:
    """Width of the context vector :func:`encoder_context` takes from ``encoder``.

    An encoder with the context protocol (every library encoder, see
    :class:`pyrovae.nets.GaussianEncoder`) gives its ``context_dim``: the width of the
    features its Gaussian head reads. Any other encoder gives ``(loc, log scale)``, i.e.
    ``2 * z_dim``.

    :raises ValueError: for an encoder with neither ``context_dim`` nor ``z_dim``.
    :raises TypeError: for an encoder with ``context_dim`` but no ``forward_with_context``.
    """
    if _protocol(encoder):
        return int(encoder.context_dim)
    z_dim = getattr(encoder, "z_dim", None)
    if z_dim is None:
        raise ValueError(
            f"cannot tell the context width of {type(encoder).__name__}: give it context_dim and "
            "forward_with_context(x) -> (loc, scale, h) (see pyrovae.nets.GaussianEncoder), or at least a z_dim"
        )
    return 2 * z_dim


def encoder_context(encoder: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run ``encoder`` on ``x`` and return ``(loc, scale, h)``.

    ``h`` is the context vector of Kingma et al. (2016). An encoder with the context
    protocol (``context_dim`` and ``forward_with_context``, as every library encoder has)
    gives the features its Gaussian head reads, in the same pass; any other encoder gives
    ``h = (loc, log scale)``.

    :param encoder: follows the encoder protocol, ``x -> (loc, scale)``.
    :param x: ``(batch, *x_shape)``.
    :returns: ``loc`` and ``scale`` ``(batch, z_dim)``, ``h`` ``(batch, context_dim)``.
    :raises TypeError: for an encoder that declares ``context_dim`` without ``forward_with_context``.
    """
    if _protocol(encoder):
        return encoder.forward_with_context(x)
    loc, scale = encoder(x)
    return loc, scale, torch.cat([loc, scale.log()], dim=-1)  # (batch, 2 z_dim)


class IAFGuide(nn.Module):
    """An inverse autoregressive flow on top of the encoder's diagonal Normal: q(z|x).

    Give it to :class:`pyrovae.VAE` as ``guide_flow``; ``vae.encode(x)`` (and so the guide)
    then returns :meth:`encode`'s ``TransformedDistribution``.

    :param z_dim: latent dimension.
    :param context_dim: width of the encoder's context vector (see :func:`context_dim_of`).
    :param num_flows: number of IAF steps T.
    :param hidden: hidden widths of each step's MADE network, each ``>= z_dim``
        (default ``(2 * z_dim,)``).
    :param stable: use Kingma et al.'s gated form ``z = s z + (1 - s) m`` with
        ``s = sigmoid(.)`` (starts at ``s = sigmoid(2)`` rather than the identity).
    """

    def __init__(
        self,
        z_dim: int,
        context_dim: int,
        num_flows: int = 2,
        hidden: Sequence[int] | None = None,
        stable: bool = False,
    ) -> None:
        super().__init__()
        self.z_dim = positive_int("z_dim", z_dim)
        self.context_dim = positive_int("context_dim", context_dim)
        self.num_flows = positive_int("num_flows", num_flows)
        widths = _hidden(hidden, z_dim)
        steps = []
        for _ in range(num_flows):
            # each MADE draws its own random order of the z coordinates, which mixes them
            arn = ConditionalAutoRegressiveNN(z_dim, context_dim, widths)
            _zero_last_layer(arn)
            steps.append(T.ConditionalAffineAutoregressive(arn, stable=stable))
        self.steps = nn.ModuleList(steps)

    def forward(self, loc: torch.Tensor, scale: torch.Tensor, context: torch.Tensor) -> dist.TransformedDistribution:
        """q(z|x) from the encoder's outputs.

        :param loc: ``(batch, z_dim)``.
        :param scale: ``(batch, z_dim)``, positive.
        :param context: ``(batch, context_dim)``.
        :returns: batch shape ``(batch,)``, event shape ``(z_dim,)``.
        """
        if context.shape[-1] != self.context_dim:
            raise ValueError(f"context has width {context.shape[-1]} but this IAFGuide expects {self.context_dim}")
        base = dist.Normal(loc, scale).to_event(1)
        return dist.TransformedDistribution(base, [step.condition(context) for step in self.steps])

    def encode(self, encoder: nn.Module, x: torch.Tensor) -> dist.TransformedDistribution:
        """Run ``encoder`` on ``x`` (see :func:`encoder_context`) and build q(z|x)."""
        return self(*encoder_context(encoder, x))


class FlowPrior(nn.Module):
    r"""p(z): a standard Normal through ``num_flows`` learned autoregressive bijections.

    Its density is one MADE pass per step (see the module docstring); sampling inverts them.
    A plain ``nn.Module`` (like the library's encoders), so ``VAE`` registers its parameters
    with ``pyro.module`` and they train under any Pyro ELBO.

    :param z_dim: latent dimension.
    :param num_flows: number of steps T.
    :param hidden: MADE hidden widths, each ``>= z_dim`` (default ``(2 * z_dim,)``).
    :param kind: ``"affine"`` (starts at the identity: p(z) = N(0, I)) or ``"spline"``
        (monotone rational-quadratic splines, Durkan et al. 2019).
    :param count_bins: spline bins (``"spline"`` only).
    :param bound: the splines act on ``[-bound, bound]`` and are the identity outside.
    """

    def __init__(
        self,
        z_dim: int,
        num_flows: int = 2,
        hidden: Sequence[int] | None = None,
        kind: str = "affine",
        count_bins: int = 8,
        bound: float = 5.0,
    ) -> None:
        super().__init__()
        self.z_dim = positive_int("z_dim", z_dim)
        self.num_flows = positive_int("num_flows", num_flows)
        self.kind = one_of("flow kind", kind, FLOW_KINDS)
        widths = _hidden(hidden, z_dim)
        steps = []
        for _ in range(num_flows):
            if kind == "affine":
                arn = AutoRegressiveNN(z_dim, widths)
                _zero_last_layer(arn)
                steps.append(T.AffineAutoregressive(arn))
            else:
                steps.append(T.spline_autoregressive(z_dim, hidden_dims=widths, count_bins=count_bins, bound=bound))
        self.steps = nn.ModuleList(steps)
        # buffers, so that ``vae.to(device)`` moves the base distribution
        self.register_buffer("loc", torch.zeros(z_dim))
        self.register_buffer("scale", torch.ones(z_dim))

    def forward(self) -> dist.TransformedDistribution:
        """The prior, batch shape ``()``, event shape ``(z_dim,)``."""
        base = dist.Normal(self.loc, self.scale).to_event(1)
        # u -> z is the inverse of each step, so log p(z) runs the steps forward: one pass each
        return dist.TransformedDistribution(base, [step.inv for step in reversed(self.steps)])
