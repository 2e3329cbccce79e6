r"""Training objectives by name: the one table that ``fit``, the CLI and the benchmarks share.

============== ===============================================================================
name           estimator
============== ===============================================================================
trace          :class:`~pyrovae.infer.ReparamTrace_ELBO`: ``Trace_ELBO``'s estimator, computed
               leanly for a reparameterised guide (Pyro's own ``Trace_ELBO`` when validating)
trace-pyro     ``Trace_ELBO`` itself: the ELBO with a Monte Carlo KL term, and all its checks
meanfield      ``TraceMeanField_ELBO``: the ELBO with the analytic KL where it exists
jit            ``JitTrace_ELBO``: ``Trace_ELBO`` compiled with the PyTorch JIT
iwae           :class:`~pyrovae.infer.IWAE_ELBO`, the importance-weighted bound of Burda et al.
rws            :class:`~pyrovae.infer.MinibatchRWS`, reweighted wake-sleep per data point
============== ===============================================================================

The IWAE bound with K samples per data point is

.. math::

    \mathcal{L}_K = \sum_n \mathbb{E}\left[\log \frac{1}{K} \sum_{k=1}^K
        \frac{p(x_n, z_{nk})}{q(z_{nk} | x_n)}\right], \qquad z_{nk} \sim q(z | x_n),

which equals the ELBO at K = 1 and rises to :math:`\log p(x)` as K grows. ``IWAE_ELBO``
applies the minibatch scale N / B outside the log-sum-exp; Pyro's ``RenyiELBO(alpha=0)``
puts the scaled log-densities inside it, which is not this bound when ``num_data`` is set.

References:

1. Kingma, D. P. and Welling, M. (2014). Auto-Encoding Variational Bayes. ICLR.
2. Burda, Y., Grosse, R. and Salakhutdinov, R. (2016). Importance Weighted Autoencoders. ICLR.
3. Bornschein, J. and Bengio, Y. (2015). Reweighted Wake-Sleep. ICLR.
"""

from __future__ import annotations

from pyro.infer import ELBO, JitTrace_ELBO, Trace_ELBO, TraceMeanField_ELBO

from .iwae_elbo import IWAE_ELBO
from .minibatch_rws import MinibatchRWS
from .reparam_trace_elbo import ReparamTrace_ELBO

__all__ = ["DEFAULT_IWAE_PARTICLES", "LOSSES", "make_loss", "resolve_loss"]

#: Samples per data point of the importance-weighted objectives when none are given (Burda et al.'s smaller K).
DEFAULT_IWAE_PARTICLES = 5

# name -> (class, whether it weights K particles per data point and so needs K >= 2, extra arguments)
_TABLE: dict[str, tuple[type[ELBO], bool, dict]] = {
    "trace": (ReparamTrace_ELBO, False, {}),
    "trace-pyro": (Trace_ELBO, False, {}),
    "meanfield": (TraceMeanField_ELBO, False, {}),
    # the model's shape checks are Python branches on static shapes: the tracer's warnings about them are noise
    "jit": (JitTrace_ELBO, False, {"ignore_jit_warnings": True}),
    "iwae": (IWAE_ELBO, True, {}),
    "rws": (MinibatchRWS, True, {}),
}

#: The names :func:`make_loss` knows.
LOSSES = tuple(_TABLE)


def make_loss(name: str, num_particles: int | None = None, *, validate: bool = False) -> ELBO:
    """A Pyro ELBO by name (see the module's table).

    :param name: one of :data:`LOSSES`.
    :param num_particles: samples of z per data point, drawn as one vectorised batch. The
        default is 1 for the ELBOs and :data:`DEFAULT_IWAE_PARTICLES` for ``iwae`` and ``rws``,
        which need at least 2 (with 1 the IWAE bound is the ELBO: use ``trace``).
    :param validate: ``"trace"`` gives Pyro's own ``Trace_ELBO``, with all its per-site checks.
    :raises ValueError: for an unknown name, or too few particles.
    """
    if name not in _TABLE:
        raise ValueError(f"unknown loss {name!r}; expected one of {', '.join(LOSSES)}")
    cls, weighted, extra = _TABLE[name]
    if weighted:
        k = DEFAULT_IWAE_PARTICLES if num_particles is None else num_particles
        if k < 2:
            raise ValueError(f"the {name} loss needs num_particles >= 2 (with 1 it is the ELBO: use 'trace'), got {k}")
        return cls(num_particles=k)
    k = 1 if num_particles is None else num_particles
    if k < 1:
        raise ValueError(f"num_particles must be >= 1, got {k}")
    if validate and cls is ReparamTrace_ELBO:
        cls = Trace_ELBO
    return cls(num_particles=k, vectorize_particles=k > 1, **extra)


def resolve_loss(loss: ELBO | str | None, num_particles: int | None = None, *, validate: bool = False) -> ELBO:
    """The ELBO that ``fit`` trains with: ``None`` is ``"trace"``, a name goes through
    :func:`make_loss`, and an ELBO object is used as it is.

    :raises ValueError: for an unknown name, or ``num_particles`` beside an ELBO object
        (which carries its own).
    """
    if loss is None or isinstance(loss, str):
        return make_loss("trace" if loss is None else loss, num_particles, validate=validate)
    if num_particles is not None:
        raise ValueError("num_particles goes with a named loss (e.g. loss='iwae'); an ELBO object carries its own")
    if not isinstance(loss, ELBO) and not hasattr(loss, "differentiable_loss") and not hasattr(loss, "loss_and_grads"):
        raise ValueError(f"loss must be a Pyro ELBO, one of {', '.join(LOSSES)}, or None; got {type(loss).__name__}")
    return loss
