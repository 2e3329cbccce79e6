r"""Fit one diagonal Gaussian q to a target p by SVI, in either KL direction.

Every fit is a Pyro model/guide pair trained with :class:`~pyro.infer.SVI`. The guide is
always :math:`q(z) = \mathcal{N}(z; m, \operatorname{diag} s^2)`; what changes is the model
and the estimator, and so which divergence SVI minimises:

* **reverse**, :math:`\mathrm{KL}(q\|p)`: the model puts an improper flat prior on z and scores
  the target with ``pyro.factor("target", log p(z))``, so the model's joint *is* p (up to its
  normaliser) and :class:`~pyro.infer.Trace_ELBO` maximises

  .. math:: \mathcal{L}(q) = \mathbb{E}_q[\log \tilde p(z) - \log q(z)] = \log Z - \mathrm{KL}(q\|p);

* **forward, by maximum likelihood**, :math:`\mathrm{KL}(p\|q)`: when p can be sampled, the
  model observes samples :math:`z_i \sim p` under q (an empty guide), and SVI maximises
  :math:`\frac1n\sum_i \log q(z_i) = -\mathrm{KL}(p\|q) - H(p) + O(n^{-1/2})`;
* **forward, by wake-φ** (ref. 3, 4): when only an unnormalised :math:`\tilde p` is known,
  :class:`~pyro.infer.ReweightedWakeSleep` with ``insomnia=1`` follows the self-normalised
  importance-sampling gradient :math:`\sum_k \bar w_k \nabla \log q(z_k)`,
  :math:`\bar w_k \propto \tilde p(z_k)/q(z_k)`, an estimate of :math:`-\nabla\mathrm{KL}(p\|q)`;
* **Rényi** (ref. 2): :class:`~pyro.infer.RenyiELBO` with order α interpolates between them:
  α → 1 is the reverse KL, α = 0 the importance-weighted bound, α < 0 increasingly mass-covering.

References:

1. Goodfellow, I., Bengio, Y. and Courville, A. (2016). Deep Learning, §3.13. MIT Press.
2. Li, Y. and Turner, R. E. (2016). Rényi Divergence Variational Inference. NeurIPS.
3. Bornschein, J. and Bengio, Y. (2015). Reweighted Wake-Sleep. ICLR.
4. Le, T. A., Kosiorek, A. R., Siddharth, N., Teh, Y. W. and Wood, F. (2019). Revisiting
   Reweighted Wake-Sleep for Models with Stochastic Control Flow. UAI.
"""

from __future__ import annotations

from collections.abc import Callable

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import ELBO, SVI, RenyiELBO, ReweightedWakeSleep, Trace_ELBO
from pyro.optim import ClippedAdam
from torch.distributions import Distribution, constraints

from .._util.checks import at_least, one_of, positive_int

#: the directions (and estimators) :func:`fit_gaussian` knows
METHODS = ("reverse", "forward", "forward-ml", "forward-rws", "renyi")

LogDensity = Callable[[torch.Tensor], torch.Tensor]  # z (..., D) -> log p~(z) (...)


def _log_density(target: Distribution | LogDensity) -> LogDensity:
    return target.log_prob if isinstance(target, Distribution) else target


def _dim(target: Distribution | LogDensity, dim: int | None) -> int:
    if isinstance(target, Distribution):
        if len(target.event_shape) != 1 or target.batch_shape != torch.Size():
            raise ValueError(
                "target must be a single distribution over vectors (batch_shape (), event_shape (D,)), "
                f"got batch_shape {tuple(target.batch_shape)}, event_shape {tuple(target.event_shape)}"
            )
        return target.event_shape[0]
    if not callable(target):
        raise ValueError(f"target must be a Distribution or a log-density callable, got {type(target).__name__}")  # noqa: TRY004 (the API raises ValueError for bad input)
    if dim is None or dim < 1:
        raise ValueError("a log-density target needs dim=D (the length of z)")
    return dim


def _guide(dim: int, init_loc: torch.Tensor, init_scale: float) -> Callable[..., torch.Tensor]:
    def guide(*args, **kwargs) -> torch.Tensor:
        loc = pyro.param("q_loc", init_loc.clone())  # (D,)
        scale = pyro.param("q_scale", torch.full((dim,), float(init_scale)), constraint=constraints.positive)  # (D,)
        return pyro.sample("z", dist.Normal(loc, scale).to_event(1))

    return guide


def _scored_model(log_p: LogDensity, dim: int) -> Callable[..., None]:
    # flat (improper) prior on z, then the target as a factor: the joint density is p~(z)
    def model(*args, **kwargs) -> None:
        z = pyro.sample("z", dist.ImproperUniform(constraints.real_vector, (), (dim,)))  # (..., D)
        pyro.factor("target", log_p(z))

    return model


def _train(model: Callable, guide: Callable, loss: ELBO, steps: int, lr: float, args: tuple = ()) -> dist.Normal:
    """Run SVI in a private param store; return the fitted q as ``Normal(loc, scale).to_event(1)``."""
    positive_int("steps", steps)
    # a learning rate that decays tenfold over the run settles the Monte Carlo noise at the end
    optim = ClippedAdam({"lr": lr, "lrd": 0.1 ** (1.0 / steps)})
    # the target was checked once (``_dim``); per-step validation would only slow the loop
    with pyro.get_param_store().scope(), pyro.validation_enabled(False):
        svi = SVI(model, guide, optim, loss)
        for _ in range(steps):
            svi.step(*args)
        loc = pyro.param("q_loc").detach().clone()
        scale = pyro.param("q_scale").detach().clone()
    return dist.Normal(loc, scale).to_event(1)


def _init(dim: int, init_loc: torch.Tensor | None) -> torch.Tensor:
    if init_loc is None:
        # near the origin, off it by a little noise so that no fit starts on a saddle point
        return 0.1 * torch.randn(dim)
    init_loc = torch.as_tensor(init_loc, dtype=torch.get_default_dtype())
    if init_loc.shape != (dim,):
        raise ValueError(f"init_loc must have shape ({dim},), got {tuple(init_loc.shape)}")
    return init_loc


def fit_reverse(target: Distribution | LogDensity, *, dim: int | None = None, steps: int = 600,
                num_particles: int = 16, lr: float = 0.05, init_loc: torch.Tensor | None = None,
                init_scale: float = 1.0) -> dist.Normal:
    """Minimise KL(q‖p) with Trace_ELBO on a model that scores p with ``pyro.factor``.

    :param target: a Pyro distribution with event shape ``(D,)``, or an unnormalised
        log-density ``z (..., D) -> (...)``.
    :param dim: D, needed only for a log-density target.
    :param steps: SVI steps.
    :param num_particles: vectorised samples of q per step.
    :param lr: initial Adam learning rate (decays tenfold over the run).
    :param init_loc: starting mean ``(D,)``; default near the origin.
    :param init_scale: starting standard deviation.
    :returns: q as ``Normal(loc, scale).to_event(1)``.
    """
    d = _dim(target, dim)
    model = _scored_model(_log_density(target), d)
    loss = Trace_ELBO(num_particles=num_particles, vectorize_particles=True, max_plate_nesting=0)
    return _train(model, _guide(d, _init(d, init_loc), init_scale), loss, steps, lr)


def fit_renyi(target: Distribution | LogDensity, alpha: float, *, dim: int | None = None, steps: int = 600,
              num_particles: int = 16, lr: float = 0.05, init_loc: torch.Tensor | None = None,
              init_scale: float = 1.0) -> dist.Normal:
    r"""Maximise the Rényi bound of order α with :class:`~pyro.infer.RenyiELBO` (ref. 2).

    .. math::

        \mathcal{L}_\alpha(q) = \frac{1}{1-\alpha}\,\mathbb{E}\log \frac1K \sum_{k=1}^K
        \left(\frac{\tilde p(z_k)}{q(z_k)}\right)^{1-\alpha}, \qquad z_k \sim q.

    ``alpha == 1`` is the reverse KL and is delegated to :func:`fit_reverse`.

    :param target: distribution or unnormalised log-density (see :func:`fit_reverse`).
    :param alpha: the order; smaller is more mass-covering.
    :param num_particles: K.
    """
    if alpha == 1:
        return fit_reverse(target, dim=dim, steps=steps, num_particles=num_particles, lr=lr,
                           init_loc=init_loc, init_scale=init_scale)
    at_least("num_particles", num_particles, 2, " for RenyiELBO")
    d = _dim(target, dim)
    model = _scored_model(_log_density(target), d)
    loss = RenyiELBO(alpha=alpha, num_particles=num_particles, vectorize_particles=True, max_plate_nesting=0)
    return _train(model, _guide(d, _init(d, init_loc), init_scale), loss, steps, lr)


def fit_forward_rws(target: Distribution | LogDensity, *, dim: int | None = None, steps: int = 600,
                    num_particles: int = 64, lr: float = 0.05, init_loc: torch.Tensor | None = None,
                    init_scale: float = 3.0) -> dist.Normal:
    r"""Minimise KL(p‖q) knowing only an unnormalised density: ReweightedWakeSleep's wake-φ.

    .. math::

        -\nabla_\phi \mathrm{KL}(p\|q_\phi) \approx \sum_{k=1}^K \bar w_k \nabla_\phi \log q_\phi(z_k),
        \qquad \bar w_k = \frac{\tilde p(z_k)/q(z_k)}{\sum_j \tilde p(z_j)/q(z_j)},\ z_k \sim q.

    The self-normalised weights need q to reach every mode, so q starts wide
    (``init_scale=3``).

    :param target: distribution or unnormalised log-density (see :func:`fit_reverse`).
    :param num_particles: K, importance samples per step.
    """
    at_least("num_particles", num_particles, 2, " for wake-phi")
    d = _dim(target, dim)
    model = _scored_model(_log_density(target), d)
    loss = ReweightedWakeSleep(num_particles=num_particles, insomnia=1.0, model_has_params=False,
                               vectorize_particles=True, max_plate_nesting=0)
    return _train(model, _guide(d, _init(d, init_loc), init_scale), loss, steps, lr)


def fit_forward_ml(target: Distribution | torch.Tensor, *, num_samples: int = 4000, steps: int = 400,
                   lr: float = 0.05, init_loc: torch.Tensor | None = None, init_scale: float = 1.0) -> dist.Normal:
    r"""Minimise KL(p‖q) by maximum likelihood of q on samples of p.

    .. math:: \max_q \frac1n \sum_{i=1}^n \log q(z_i), \qquad z_i \sim p.

    The model observes the samples under q's parameters; the guide is empty.

    :param target: a sampleable distribution with event shape ``(D,)``, or samples ``(n, D)``.
    :param num_samples: n, draws of p when ``target`` is a distribution.
    """
    if isinstance(target, torch.Tensor):
        if target.dim() != 2 or len(target) < 2:
            raise ValueError(f"samples must have shape (n, D) with n >= 2, got {tuple(target.shape)}")
        samples = target.detach()
    else:
        _dim(target, None)
        try:
            samples = target.sample((num_samples,))  # (n, D)
        except NotImplementedError:
            raise ValueError("target cannot be sampled: use fit_forward_rws for an unnormalised density") from None
    n, d = samples.shape
    loc0, scale0 = _init(d, init_loc), float(init_scale)

    def model(z: torch.Tensor) -> None:
        loc = pyro.param("q_loc", loc0.clone())  # (D,)
        scale = pyro.param("q_scale", torch.full((d,), scale0), constraint=constraints.positive)  # (D,)
        with pyro.plate("samples", n):
            pyro.sample("z", dist.Normal(loc, scale).to_event(1), obs=z)

    def guide(z: torch.Tensor) -> None:
        pass

    # divide the log-likelihood by n so the learning rate does not depend on the sample size
    scaled = pyro.poutine.scale(model, scale=1.0 / n)
    return _train(scaled, guide, Trace_ELBO(), steps, lr, args=(samples,))


def fit_gaussian(target: Distribution | LogDensity, direction: str, **kwargs) -> dist.Normal:
    """A diagonal Normal (event dim 1) fitted to ``target`` in the given KL direction.

    :param target: a Pyro distribution with event shape ``(D,)`` (D = 2 for the toy), or an
        unnormalised log-density callable (then pass ``dim=D``).
    :param direction: ``"reverse"`` (KL(q‖p), Trace_ELBO); ``"forward"`` (KL(p‖q): maximum
        likelihood on samples when p can be sampled, wake-φ otherwise); or explicitly
        ``"forward-ml"``, ``"forward-rws"``, ``"renyi"`` (pass ``alpha=``).
    :param kwargs: passed to the fitter (``steps``, ``lr``, ``num_particles``, ...).
    :returns: ``Normal(loc, scale).to_event(1)``.
    :raises ValueError: for an unknown direction or a bad target.
    """
    one_of("direction", direction, METHODS)
    if direction == "forward":
        sampleable = isinstance(target, Distribution)
        if sampleable:
            try:
                target.sample()
            except NotImplementedError:
                sampleable = False
        direction = "forward-ml" if sampleable else "forward-rws"
    if direction == "reverse":
        return fit_reverse(target, **kwargs)
    if direction == "forward-ml":
        return fit_forward_ml(target, **kwargs)
    if direction == "forward-rws":
        return fit_forward_rws(target, **kwargs)
    if "alpha" not in kwargs:
        raise ValueError("direction='renyi' needs alpha=...")
    return fit_renyi(target, **kwargs)
