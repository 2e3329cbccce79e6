"""Walking Pyro traces: the site selection and log-density sums the estimators share.

:class:`~pyrovae.infer.ReparamTrace_ELBO`, :class:`~pyrovae.infer.IWAE_ELBO` and
:class:`~pyrovae.infer.MinibatchRWS` each read the sample sites of a model trace and a guide
trace. What a site contributes, and where the per-data-point axis of its log-density lies, is
written once, here.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from pyro import poutine
from pyro.distributions.util import scale_and_mask
from pyro.poutine.indep_messenger import CondIndepStackFrame
from pyro.poutine.util import site_is_subsample

__all__ = ["data_plate_frame", "per_datum_log_prob", "sample_sites", "scaled_log_prob"]


def sample_sites(trace: poutine.Trace) -> Iterator[tuple[str, dict]]:
    """``(name, site)`` for every sample site of ``trace`` that is not a plate's subsample site."""
    return ((name, s) for name, s in trace.nodes.items() if s["type"] == "sample" and not site_is_subsample(s))


def scaled_log_prob(site: dict) -> torch.Tensor:
    """The site's log-density with its scale (plate subsampling, β) and mask applied, as
    ``Trace_ELBO`` sums it; the site's batch shape."""
    return scale_and_mask(site["fn"].log_prob(site["value"]), site["scale"], site["mask"])


def data_plate_frame(site: dict, plate: str, *, estimator: str, role: str, name: str) -> CondIndepStackFrame:
    """The frame of the vectorised plate ``plate`` that ``site`` lies in.

    :param estimator: the estimator's name, for the error message.
    :param role: ``"model"`` or ``"guide"``, for the error message.
    :param name: the site's name, for the error message.
    :raises ValueError: when the site is outside that plate (a global latent, say), since
        per-data-point importance weights need local latents only.
    """
    frame = next((f for f in site["cond_indep_stack"] if f.name == plate), None)
    if frame is None or frame.dim is None:
        raise ValueError(
            f"{estimator} needs every sample site inside the vectorised plate {plate!r}; {role} site {name!r} is "
            f"outside plate {plate!r} (per-data-point importance weights need local latents only)"
        )
    return frame


def per_datum_log_prob(log_prob: torch.Tensor, frame: CondIndepStackFrame, num_particles: int,
                       max_plate_nesting: int) -> torch.Tensor:
    """A site's log-density summed to one value per particle and data point, ``(K, B)``.

    :param log_prob: the site's log-density over its batch shape, whose leftmost of
        ``max_plate_nesting`` dims is the vectorised-particle plate when ``num_particles > 1``
        (with one particle there is none, and a size-1 particle dim is put in front).
    :param frame: the data plate's frame (:func:`data_plate_frame`); its dim becomes dim 1.
    :param num_particles: K.
    :param max_plate_nesting: the ELBO's (finite) plate nesting.
    """
    ndim = max_plate_nesting + (0 if num_particles > 1 else 1)  # batch dims, particle dim first
    lp = log_prob.reshape((1,) * (ndim - log_prob.dim()) + log_prob.shape)
    lp = lp.movedim((0, ndim + frame.dim), (0, 1))  # (K or 1, B or 1, other plates ...)
    lp = lp.expand(num_particles, frame.size, *lp.shape[2:])
    return lp.reshape(num_particles, frame.size, -1).sum(-1)  # (K, B)
