"""When :class:`~pyrovae.infer.ReparamTrace_ELBO` may skip the traces for a VAE's direct sum.

:func:`pyrovae.models.direct.direct_loss` computes a :class:`~pyrovae.models.VAE`'s single-draw
negative ELBO from its parts, with no traces. This module decides when that is the same
number as the traced estimator, and checks it once per model: the first step is traced, and
the direct route is taken from the next step on only if the traces hold exactly the sites the
direct sum knows, guide ``{"z"}`` and model ``{"z", "x"}`` with ``"x"`` observed (a prior, a
likelihood or a network that adds a site of its own keeps the model on the traced route for
good). The first step's loss is summed from its sites in the direct route's order
(:func:`~pyrovae.models.direct.elbo_sum`), so a run's losses do not depend on which step was
first (a resumed run repeats an uninterrupted one bit for bit). Nothing is run twice: the
networks see one forward pass per step on either route. Changing a part of the VAE
(``vae.decoder = ...``) makes it check again. :func:`pyrovae.fit` checks before its first epoch,
on a forked RNG (:func:`pyrovae.train.rng.isolate_first_calls`), so that every step of a run,
and of a resumed run, takes the same route.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from pyro import poutine

from ..models import VAE
from ..models.direct import direct_applies, direct_loss, elbo_sum
from .util import sample_sites

__all__ = ["loss", "owner", "prove"]

_KEY = "_direct_route"  # in the VAE's __dict__: None (not proved yet), True, False

Traced = Callable[[], tuple[torch.Tensor, tuple[poutine.Trace, poutine.Trace]]]


def owner(model: Callable, guide: Callable) -> VAE | None:
    """The VAE whose own ``model`` and ``guide`` these are, when the direct route may apply now."""
    vae = getattr(model, "__self__", None)
    if (vae is None or getattr(guide, "__self__", None) is not vae
            or getattr(model, "__func__", None) is not VAE.model or getattr(guide, "__func__", None) is not VAE.guide):
        return None
    if vae.__dict__.get(_KEY) is False or not direct_applies(vae):
        return None
    return vae


def _batch(args: tuple, kwargs: dict) -> tuple[torch.Tensor, int | None] | None:
    # (x, num_data) of a training call model(x, num_data); None for any other call
    if len(args) > 2 or set(kwargs) - {"x", "num_data"}:
        return None
    names = ("x", "num_data")
    bound = {**dict(zip(names, args)), **kwargs}
    x = bound.get("x")
    return (x, bound.get("num_data")) if isinstance(x, torch.Tensor) else None


def _sites_match(model_trace: poutine.Trace, guide_trace: poutine.Trace) -> bool:
    guide_sites = dict(sample_sites(guide_trace))
    model_sites = dict(sample_sites(model_trace))
    return (set(guide_sites) == {"z"} and set(model_sites) == {"z", "x"}
            and model_sites["x"]["is_observed"] and not model_sites["z"]["is_observed"])


def loss(vae: VAE, traced: Traced, args: tuple, kwargs: dict) -> torch.Tensor:
    """The negative ELBO for ``vae.model(*args, **kwargs)`` and ``vae.guide(...)``: the direct
    sum once the sites are checked, else from ``traced()`` (checking the sites the first time).

    :param vae: the model (:func:`owner` returned it).
    :param traced: computes the traced loss and returns ``(loss, (model trace, guide trace))``.
    """
    batch = _batch(args, kwargs)
    if batch is None:
        return traced()[0]
    if vae.__dict__.get(_KEY) is True:
        value = direct_loss(vae, *batch)
        return value if value is not None else traced()[0]
    value, (model_trace, guide_trace) = traced()
    if not prove(vae, model_trace, guide_trace):
        return value
    z, x = guide_trace.nodes["z"], model_trace.nodes["x"]
    log_pz = model_trace.nodes["z"]["fn"].log_prob(z["value"]) if vae.beta != 0.0 else None
    return elbo_sum(vae, x["fn"].log_prob(x["value"]), log_pz, z["fn"].log_prob(z["value"]), len(batch[0]), batch[1])


def prove(vae: VAE, model_trace: poutine.Trace, guide_trace: poutine.Trace) -> bool:
    """Decide, from one traced step of ``vae``, whether its later steps take the direct route.

    :returns: whether the traces hold exactly the sites the direct sum knows.
    """
    proved = _sites_match(model_trace, guide_trace)
    vae.__dict__[_KEY] = proved
    return proved
