r"""The VAE's single-draw negative ELBO, computed from its parts without Pyro's handlers.

For :class:`~pyrovae.models.VAE`'s own ``model`` and ``guide`` (one local latent site ``"z"``
and the observed ``"x"`` in the plate ``"data"``), ``Trace_ELBO``'s estimator with a
reparameterised guide is

.. math::

    -\widehat{\mathcal{L}} = -\frac{N}{B} \sum_{n=1}^{B}
        \Big(\log p(x_n \mid z_n) + \beta \big(\log p(z_n) - \log q(z_n \mid x_n)\big)\Big),
    \qquad z_n = \text{q(z|x_n).rsample()},

with :math:`N` = ``num_data`` (``B`` without it) and the KL weight :math:`\beta`.
:func:`direct_loss` computes that sum from the same networks, the same distributions and the
same draw of ``z`` (the one ``rsample`` call the guide makes), so it gives the same value and
the same gradient as tracing the guide and replaying the model, without building the traces,
the plates and the effect-handler messages every step. It is only a route to the same number:
:class:`~pyrovae.infer.ReparamTrace_ELBO` takes it only after it has checked, on the first
step, that the traced sites are exactly ``"z"`` and ``"x"``, and only where nothing could tell
the two apart (see :func:`direct_applies`).

References:

1. Kingma, D. P. and Welling, M. (2014). Auto-Encoding Variational Bayes. ICLR (eq. 10).
"""

from __future__ import annotations

from typing import Any

import torch
from pyro.infer.util import is_validation_enabled
from pyro.poutine.runtime import am_i_wrapped
from torch.distributions.utils import _standard_normal

from ..distributions.normal import ReparamNormal
from . import validation as _validation
from .fused_tail import fused_tail_applies, fused_tail_loss
from .vae import VAE

__all__ = ["direct_applies", "direct_loss", "elbo_sum"]


def direct_applies(vae: Any) -> bool:
    """Whether :func:`direct_loss` computes exactly what tracing ``vae.model`` and ``vae.guide`` would.

    It does for a :class:`VAE` whose ``model`` and ``guide`` are the class's own (not
    overridden), with no global sites, while no Pyro handler is active (no ``poutine.scale``,
    ``condition``, ``block`` around the call), Pyro's validation is off, ``pyro.module``
    registration is off (a ``torch.optim`` loop, as in :func:`pyrovae.fit`; ``SVI`` with
    ``pyro.optim`` needs the param-store sites) and nothing is being traced by ``torch.jit``.
    """
    cls = type(vae)
    return (
        isinstance(vae, VAE)
        and cls.model is VAE.model
        and cls.guide is VAE.guide
        and vae.global_guide is None
        and not vae.__dict__.get("_register_params", True)
        and not am_i_wrapped()
        and not is_validation_enabled()
        and not torch.jit.is_tracing()
    )


def direct_loss(vae: VAE, x: torch.Tensor, num_data: int | None = None) -> torch.Tensor | None:
    """The negative ELBO estimate of ``vae`` on ``x`` (see the module docstring).

    :param vae: the model (:func:`direct_applies` must hold).
    :param x: a batch ``(B, *x_shape)``.
    :param num_data: the full data-set size N, to scale the minibatch.
    :returns: a differentiable scalar, or ``None`` when the guide's distribution has no
        ``rsample`` (the score-function term is then needed: trace instead).
    """
    x, batch = _validation.model_inputs(vae, x, None, "guide")
    if num_data is not None and num_data < batch:
        raise ValueError(f"num_data={num_data} is smaller than the batch size {batch}")
    c = 1.0 if num_data is None else num_data / batch
    if fused_tail_applies(vae, x):  # the default parts: the draw by hand, the whole tail as one autograd node
        loc, scale = vae._encoder_params(x)  # each (B, z_dim)
        eps = _standard_normal(loc.shape, dtype=loc.dtype, device=loc.device)  # ReparamNormal.rsample's draw
        z = loc + eps * scale  # (B, z_dim)
        out = vae._decoder_out(z)  # (B, *x_shape)
        if out.shape == x.shape:
            return fused_tail_loss(vae, out, x, z, eps, scale, c)
        q = ReparamNormal(loc, scale).to_event(1)  # logits of another shape: score them as the likelihood does
    else:
        q = vae.encode(x)  # batch_shape (B,), event_shape (z_dim,)
        if not q.has_rsample:
            return None
        z = q.rsample()  # (B, z_dim)
        out = vae._decoder_out(z)  # (B, *x_shape)
    log_pz = vae._prior()().log_prob(z) if vae.beta != 0.0 else None  # (B,); beta = 0 masks the "z" sites
    log_px = vae.likelihood(out, vae.event_dim).log_prob(x)  # (B,), as the model's "x" site
    return elbo_sum(vae, log_px, log_pz, q.log_prob(z), batch, num_data)


def elbo_sum(vae: VAE, log_px: torch.Tensor, log_pz: torch.Tensor | None, log_qz: torch.Tensor,
             batch: int, num_data: int | None) -> torch.Tensor:
    """:math:`-\\frac{N}{B}\\sum_n (\\log p(x_n|z_n) + \\beta(\\log p(z_n) - \\log q(z_n|x_n)))`
    from the per-datum terms, in one fixed order (the traced route's first step sums its sites
    with this too, so both routes give bitwise the same value on the same terms).

    :param log_px: ``(B,)``.
    :param log_pz: ``(B,)``, or ``None`` when ``vae.beta`` is 0.
    :param log_qz: ``(B,)``.
    """
    beta = vae.beta
    elbo = log_px.sum()
    if beta != 0.0:
        kl_part = log_pz.sum() - log_qz.sum()  # sum_n log p(z_n) - log q(z_n|x_n)
        elbo = elbo + (kl_part if beta == 1.0 else beta * kl_part)
    scale = 1.0 if num_data is None else num_data / batch
    return -(elbo * scale) if scale != 1.0 else -elbo
