r"""Training objectives by name, so that ``fit``, the CLI and the benchmarks choose them alike.

========== ===================================================================================
name       estimator
========== ===================================================================================
trace      ``Trace_ELBO``: the ELBO with a Monte Carlo KL term
meanfield  ``TraceMeanField_ELBO``: the ELBO with the analytic KL where it exists
jit        ``JitTrace_ELBO``: ``Trace_ELBO`` compiled with the PyTorch JIT
iwae       :class:`pyrovae.infer.IWAE_ELBO`, the importance-weighted bound of Burda et al.
trace-pyro ``Trace_ELBO`` itself (here the same as ``trace``)
rws        :class:`pyrovae.infer.MinibatchRWS`, reweighted wake-sleep per data point
========== ===================================================================================

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
"""

from __future__ import annotations

from pyro.infer import ELBO, JitTrace_ELBO, Trace_ELBO, TraceMeanField_ELBO

from .iwae_elbo import IWAE_ELBO
from .minibatch_rws import MinibatchRWS

#: The names :func:`make_loss` knows.
LOSSES = ("trace", "meanfield", "jit", "iwae", "trace-pyro", "rws")

#: Samples per data point of the IWAE bound when none are given (Burda et al.'s smaller K).
DEFAULT_IWAE_PARTICLES = 5


def make_loss(name: str, num_particles: int | None = None) -> ELBO:
    """A Pyro ELBO by name (see the module's table).

    :param name: one of :data:`LOSSES`.
    :param num_particles: samples of z per data point, drawn as one vectorised batch. The
        default is 1 for the ELBOs and :data:`DEFAULT_IWAE_PARTICLES` for ``iwae``. The IWAE
        bound needs at least 2 (with 1 it is the ELBO: use ``trace``).
    :raises ValueError: for an unknown name, or too few particles.
    """
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; expected one of {', '.join(LOSSES)}")
    if name in ("iwae", "rws"):
        k = DEFAULT_IWAE_PARTICLES if num_particles is None else num_particles
        if k < 2:
            raise ValueError(f"the {name} loss needs num_particles >= 2 (with 1 it is the ELBO: use 'trace'), got {k}")
        return {"iwae": IWAE_ELBO, "rws": MinibatchRWS}[name](num_particles=k)
    k = 1 if num_particles is None else num_particles
    if k < 1:
        raise ValueError(f"num_particles must be >= 1, got {k}")
    elbo = {"trace": Trace_ELBO, "trace-pyro": Trace_ELBO, "meanfield": TraceMeanField_ELBO, "jit": JitTrace_ELBO}[name]
    return elbo(num_particles=k, vectorize_particles=k > 1)
