r"""``Trace_ELBO`` for reparameterised guides, without the bookkeeping.

For a guide whose latent sites all have ``rsample``, ``Trace_ELBO``'s surrogate loss is the
plain single-draw estimate

.. math::

    -\widehat{\mathcal{L}} = -\Big(\sum_{\text{model sites}} s \log p - \sum_{\text{guide sites}} s \log q\Big),
    \qquad z \sim q \text{ (reparameterised)},

with each site's plate/β scale ``s`` and mask. :class:`ReparamTrace_ELBO` computes exactly
that sum from one guide trace and one replayed model trace, and skips what ``Trace_ELBO``
adds for the general case: per-site score parts, pruned trace copies, and a ``.item()`` (a
host synchronisation) per site and per step. On the same draws it gives the same value and
the same gradient. When a guide site is not reparameterised it uses ``Trace_ELBO``'s own
estimator on the traces it already drew (so the score-function term is there).

References:

1. Kingma, D. P. and Welling, M. (2014). Auto-Encoding Variational Bayes. ICLR.
2. Ranganath, R., Gerrish, S. and Blei, D. M. (2014). Black Box Variational Inference.
   AISTATS (the score-function term of the fallback).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from pyro import poutine
from pyro.infer import Trace_ELBO
from pyro.infer.util import is_validation_enabled, torch_item
from pyro.poutine.util import prune_subsample_sites
from pyro.util import check_if_enumerated, check_model_guide_match

from . import direct_route as _direct
from .util import sample_sites, scaled_log_prob

__all__ = ["ReparamTrace_ELBO", "reparam_trace_elbo"]

Traces = tuple[poutine.Trace, poutine.Trace]


def _traces(model: Callable, guide: Callable, args: tuple, kwargs: dict) -> Traces:
    guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
    model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args, **kwargs)
    return model_trace, guide_trace


def _lean_loss(model_trace: poutine.Trace, guide_trace: poutine.Trace) -> torch.Tensor | None:
    # -(sum_model s log p - sum_guide s log q); None when a guide site has no rsample
    elbo = 0.0
    for _, site in sample_sites(guide_trace):
        if site["is_observed"]:
            continue
        if not getattr(site["fn"], "has_rsample", False):
            return None
        elbo = elbo - scaled_log_prob(site).sum()
    for _, site in sample_sites(model_trace):
        elbo = elbo + scaled_log_prob(site).sum()
    return -elbo


class ReparamTrace_ELBO(Trace_ELBO):
    r"""``Trace_ELBO``'s estimator, computed leanly when the guide is reparameterised.

    A drop-in for :class:`pyro.infer.Trace_ELBO` (it is one: the same arguments, particles
    vectorised or not, and ``loss`` / ``loss_and_grads`` / ``differentiable_loss``)::

        svi = SVI(vae.model, vae.guide, Adam({"lr": 1e-3}), ReparamTrace_ELBO())
        pyrovae.fit(vae, train, epochs=10, batch_size=100)   # its default objective

    With validation enabled it still checks that model and guide match; the per-site shape
    checks of ``Trace_ELBO`` are skipped.
    """

    def _traces(self, model: Callable, guide: Callable, args: tuple, kwargs: dict) -> Iterator[Traces]:
        if not self.vectorize_particles:
            for _ in range(self.num_particles):
                yield self._checked(*_traces(model, guide, args, kwargs))
            return
        if self.max_plate_nesting == float("inf"):
            self._guess_max_plate_nesting(model, guide, args, kwargs)
        model, guide = self._vectorized_num_particles(model), self._vectorized_num_particles(guide)
        yield self._checked(*_traces(model, guide, args, kwargs))

    def _checked(self, model_trace: poutine.Trace, guide_trace: poutine.Trace) -> Traces:
        if is_validation_enabled():
            check_model_guide_match(model_trace, guide_trace, self.max_plate_nesting)
            check_if_enumerated(guide_trace)
        return model_trace, guide_trace

    def _particle_loss(self, model_trace: poutine.Trace, guide_trace: poutine.Trace) -> torch.Tensor:
        loss = _lean_loss(model_trace, guide_trace)
        if loss is not None:
            return loss
        # a site without rsample: Trace_ELBO's estimator (with its score-function term), same draws
        model_trace, guide_trace = prune_subsample_sites(model_trace), prune_subsample_sites(guide_trace)
        model_trace.compute_log_prob()
        guide_trace.compute_score_parts()
        value, surrogate = self._differentiable_loss_particle(model_trace, guide_trace)
        return value + (surrogate - torch_item(surrogate))

    def differentiable_loss(self, model: Callable, guide: Callable, *args: Any, **kwargs: Any) -> torch.Tensor:
        """The negative ELBO estimate as a differentiable scalar (no host synchronisation)."""
        if self.num_particles == 1 and not self.vectorize_particles:  # the hot path: no generator, no division
            owner = _direct.owner(model, guide)
            if owner is not None:
                return _direct.loss(owner, lambda: self._traced_loss(model, guide, args, kwargs), args, kwargs)
            return self._traced_loss(model, guide, args, kwargs)[0]
        loss = 0.0
        for model_trace, guide_trace in self._traces(model, guide, args, kwargs):
            loss = loss + self._particle_loss(model_trace, guide_trace)
        return loss / self.num_particles

    def _traced_loss(self, model: Callable, guide: Callable, args: tuple, kwargs: dict) -> tuple[torch.Tensor, Traces]:
        # the guide traced, the model replayed against it: (loss, (model trace, guide trace))
        traces = self._checked(*_traces(model, guide, args, kwargs))
        return self._particle_loss(*traces), traces

    def check_direct_route(self, model: Callable, guide: Callable, *args: Any, **kwargs: Any) -> bool:
        """Trace one step and decide whether the later ones take the direct route
        (:mod:`pyrovae.infer.direct_route`); :func:`pyrovae.fit` calls it once, before its first epoch.

        :returns: whether they will.
        """
        owner = _direct.owner(model, guide)
        if owner is None:
            return False
        _, traces = self._traced_loss(model, guide, args, kwargs)
        return _direct.prove(owner, *traces)

    def loss(self, model: Callable, guide: Callable, *args: Any, **kwargs: Any) -> float:
        """The negative ELBO estimate as a float."""
        with torch.no_grad():
            return torch_item(self.differentiable_loss(model, guide, *args, **kwargs))

    def loss_and_grads(self, model: Callable, guide: Callable, *args: Any, **kwargs: Any) -> float:
        """The negative ELBO estimate, back-propagated into the parameters (for ``SVI``)."""
        loss = self.differentiable_loss(model, guide, *args, **kwargs)
        if getattr(loss, "requires_grad", False):
            loss.backward(retain_graph=self.retain_graph)
        return torch_item(loss)


def reparam_trace_elbo(model: Callable, guide: Callable, *args: Any, **kwargs: Any) -> torch.Tensor | None:
    r"""``Trace_ELBO``'s single-particle loss for a guide whose sites are all reparameterised
    (see the module docstring): what :class:`ReparamTrace_ELBO` computes per particle.

    :returns: the loss tensor, or ``None`` when some guide site is not reparameterised (the
        caller then needs ``Trace_ELBO``'s score-function term).
    """
    return _lean_loss(*_traces(model, guide, args, kwargs))
