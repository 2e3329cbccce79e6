"""Objectives, one estimator per module, named after its class (as in ``pyro.infer``).

- :class:`ReparamTrace_ELBO`: ``Trace_ELBO`` for reparameterised guides, without its bookkeeping;
- :class:`IWAE_ELBO`: the importance-weighted bound per data point, minibatch-correct;
- :class:`MinibatchRWS`: reweighted wake-sleep (wake-θ and wake-φ) per data point;
- :func:`make_loss`, :func:`resolve_loss` and :data:`LOSSES`: every objective by name.
"""

from .iwae_elbo import IWAE_ELBO, iwae_bound
from .losses import DEFAULT_IWAE_PARTICLES, LOSSES, make_loss, resolve_loss
from .minibatch_rws import MinibatchRWS
from .reparam_trace_elbo import ReparamTrace_ELBO, reparam_trace_elbo

__all__ = [
    "DEFAULT_IWAE_PARTICLES",
    "IWAE_ELBO",
    "LOSSES",
    "MinibatchRWS",
    "ReparamTrace_ELBO",
    "iwae_bound",
    "make_loss",
    "reparam_trace_elbo",
    "resolve_loss",
]
