r"""Trace_ELBO for reparameterised guides, without the bookkeeping.

References:

1. Kingma, D. P. and Welling, M. (2014). Auto-Encoding Variational Bayes. ICLR.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from pyro import poutine
from pyro.distributions.util import scale_and_mask
from pyro.poutine.util import site_is_subsample


def _sample_sites(trace: poutine.Trace):
    return (s for s in trace.nodes.values() if s["type"] == "sample" and not site_is_subsample(s))


def reparam_trace_elbo(model: Callable, guide: Callable, *args: Any, **kwargs: Any) -> torch.Tensor | None:
    r"""``Trace_ELBO``'s single-particle loss for a guide whose sites are all reparameterised.

    .. math::

        -\widehat{\mathcal{L}} = -\Big(\sum_{\text{model sites}} s \log p - \sum_{\text{guide sites}} s \log q\Big),
        \qquad z \sim q \text{ (reparameterised)},

    with each site's plate/β scale ``s`` and mask, exactly as ``Trace_ELBO`` sums them: for
    such a guide its surrogate loss *is* this sum, so the value and the gradient agree with
    ``Trace_ELBO().differentiable_loss`` on the same draw. What is skipped is bookkeeping
    (per-site score parts, pruned trace copies, a ``.item()`` per site).

    :returns: the loss tensor, or ``None`` when some guide site is not reparameterised (the
        caller then uses ``Trace_ELBO`` itself, which adds the score-function term).
    """
    guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
    elbo = 0.0
    for site in _sample_sites(guide_trace):
        if site["is_observed"]:
            continue
        if not getattr(site["fn"], "has_rsample", False):
            return None
        elbo = elbo - scale_and_mask(site["fn"].log_prob(site["value"]), site["scale"], site["mask"]).sum()
    model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args, **kwargs)
    for site in _sample_sites(model_trace):
        elbo = elbo + scale_and_mask(site["fn"].log_prob(site["value"]), site["scale"], site["mask"]).sum()
    return -elbo
