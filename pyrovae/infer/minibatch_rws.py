r"""Reweighted wake-sleep that is correct on minibatches: per-data-point wake-θ and wake-φ.

Pyro's :class:`~pyro.infer.ReweightedWakeSleep` documents that it does not support
minibatches, and :class:`~pyro.infer.RenyiELBO` gets them wrong in a quieter way: both put
*scaled* log-densities (``site["log_prob"]``, already multiplied by the plate's
``N / batch``) inside the log-sum-exp over particles, and ReweightedWakeSleep also sums
every data point into one weight per particle. With a subsampled plate the first raises
every weight to the power ``N / batch``; the second normalises weights across the batch
instead of per data point. Neither then estimates the full-data objective.

The estimator here computes one set of K importance log-weights *per data point* from the
unscaled log-densities inside the plate (``"data"`` by default),

.. math::

    \log w_{nk} = \log p_\theta(x_n, z_{nk}) - \log q_\phi(z_{nk} \mid x_n),
    \qquad z_{nk} \sim q_\phi(z \mid x_n),\ k = 1..K,

and apply the plate's subsample scale :math:`N/B` once, *outside* the log-sum-exp:

.. math::

    \mathcal{L}_K = \frac{N}{B} \sum_{n=1}^{B} \log \frac1K \sum_{k=1}^K w_{nk},

the same correction :class:`pyrovae.iwae.IWAE_ELBO` makes for the IWAE bound, ref. 1).
:class:`MinibatchRWS` follows wake-θ (the gradient of :math:`\mathcal{L}_K` in θ, with z
and q held fixed) and wake-φ for the guide (refs. 2, 3):

.. math::

    \Delta\phi \propto \frac{N}{B} \sum_{n} \sum_k \bar w_{nk}\, \nabla_\phi \log q_\phi(z_{nk}\mid x_n),
    \qquad \bar w_{nk} = \frac{w_{nk}}{\sum_j w_{nj}},

a self-normalised estimate of :math:`-\nabla_\phi \sum_n \mathrm{KL}(p_\theta(z|x_n) \,\|\, q_\phi(z|x_n))`,
the *inclusive* KL.

It reports :math:`-\mathcal{L}_K` as the loss (a K-sample bound on :math:`-\log p(x)`), so
``pyrovae.fit`` histories compare with IWAE's; the guide's term enters the surrogate with
zero value. Every sample site must lie inside the data plate and share one scale (so β = 1);
anything else raises ``ValueError`` rather than silently estimating something else.

References:

1. Burda, Y., Grosse, R. and Salakhutdinov, R. (2016). Importance Weighted Autoencoders. ICLR.
2. Bornschein, J. and Bengio, Y. (2015). Reweighted Wake-Sleep. ICLR.
3. Le, T. A., Kosiorek, A. R., Siddharth, N., Teh, Y. W. and Wood, F. (2019). Revisiting
   Reweighted Wake-Sleep for Models with Stochastic Control Flow. UAI.
4. Li, Y. and Turner, R. E. (2016). Rényi Divergence Variational Inference. NeurIPS.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from pyro.distributions.util import scale_and_mask
from pyro.infer import ELBO
from pyro.infer.enum import get_importance_trace
from pyro.poutine import Trace

from .iwae_elbo import iwae_bound
from .util import data_plate_frame, per_datum_log_prob, sample_sites


class PerDatumWeights(NamedTuple):
    """Per-data-point importance quantities of one vectorised draw."""

    log_p: torch.Tensor  # (K, B) log p(x_n, z_nk), unscaled
    log_q: torch.Tensor  # (K, B) log q(z_nk | x_n), unscaled
    scale: float  # the plate's subsample scale N / B (times any common poutine.scale)
    z: dict  # site name -> value, each (K, B, ...) the particles


class MinibatchRWS(ELBO):
    r"""Reweighted wake-sleep (wake-θ + wake-φ), per data point and minibatch-correct.

    .. math::

        \text{surrogate} = -\frac{N}{B}\sum_n \log \frac1K \sum_k
            \frac{p_\theta(x_n, z_{nk})}{\lfloor q_\phi(z_{nk}|x_n) \rfloor}
            \;-\; \frac{N}{B}\sum_n \sum_k \lfloor \bar w_{nk} \rfloor \log q_\phi(z_{nk}|x_n)
            \;+\; \lfloor \cdot \rfloor,

    with :math:`\lfloor\cdot\rfloor` a stop-gradient and z drawn without reparameterisation.
    The first term is wake-θ (the model's IWAE gradient); the second is wake-φ, which moves
    q towards the inclusive KL(p(z|x)‖q) (refs. 2, 3). The wake-φ term enters with zero value,
    so the loss reads as −L_K. For one data point and no subsampling it equals Pyro's
    ``ReweightedWakeSleep(insomnia=1)`` draw for draw.

    Use it like any Pyro ELBO::

        pyrovae.fit(vae, train, epochs=10, batch_size=100, loss=MinibatchRWS(num_particles=5))

    :param num_particles: K ≥ 2, importance samples per data point.
    :param plate: name of the data plate.
    :param max_plate_nesting: as in Pyro (guessed when left at infinity).
    """

    def __init__(self, num_particles: int = 5, plate: str = "data", max_plate_nesting: float = float("inf")) -> None:
        if num_particles < 2:
            raise ValueError(f"importance weighting needs num_particles >= 2, got {num_particles}")
        super().__init__(num_particles=num_particles, max_plate_nesting=max_plate_nesting, vectorize_particles=True)
        self.plate = plate

    def _get_trace(self, model: Callable, guide: Callable, args: tuple, kwargs: dict) -> tuple[Trace, Trace]:
        return get_importance_trace("flat", self.max_plate_nesting, model, guide, args, kwargs,
                                    detach=True)  # wake-phi: no reparameterisation

    def per_datum_weights(self, model: Callable, guide: Callable, *args, **kwargs) -> PerDatumWeights:
        """Draw K particles per data point and return their log-densities, unscaled.

        :raises ValueError: when a sample site is outside the data plate or the sites'
            scales differ.
        """
        model_trace, guide_trace = next(self._get_traces(model, guide, args, kwargs))
        scales: set[float] = set()

        def total(trace: Trace, which: str) -> torch.Tensor:
            out = 0.0
            for name, site in sample_sites(trace):
                frame = data_plate_frame(site, self.plate, estimator="MinibatchRWS", role=which, name=name)
                scales.add(float(site["scale"]))
                lp = scale_and_mask(site["unscaled_log_prob"], 1.0, site["mask"])
                out = out + per_datum_log_prob(lp, frame, self.num_particles, self.max_plate_nesting)  # (K, B)
            return out

        log_p, log_q = total(model_trace, "model"), total(guide_trace, "guide")
        if len(scales) != 1:
            raise ValueError(
                f"sample sites carry different scales {sorted(scales)}; per-data-point weights need one "
                "common scale (a VAE with beta != 1 cannot be trained by importance weighting)"
            )
        z = {n: s["value"] for n, s in guide_trace.nodes.items() if s["type"] == "sample"}
        return PerDatumWeights(log_p, log_q, scales.pop(), z)

    @staticmethod
    def _bound(log_w: torch.Tensor, scale: float) -> torch.Tensor:
        # (N / B) * sum_n log mean_k w_nk: the scale outside the log-sum-exp
        return scale * iwae_bound(log_w).sum()

    @torch.no_grad()
    def loss(self, model: Callable, guide: Callable, *args, **kwargs) -> float:
        """−L_K, the negative K-sample importance-weighted bound (a float)."""
        w = self.per_datum_weights(model, guide, *args, **kwargs)
        return -float(self._bound(w.log_p - w.log_q, w.scale))

    def loss_and_grads(self, model: Callable, guide: Callable, *args, **kwargs) -> float:
        """Backpropagate :meth:`differentiable_loss` (for ``SVI``) and return its value."""
        loss = self.differentiable_loss(model, guide, *args, **kwargs)
        loss.backward()
        return float(loss.detach())

    def differentiable_loss(self, model: Callable, guide: Callable, *args, **kwargs) -> torch.Tensor:
        """The surrogate: value −L_K, gradient wake-θ for the model and wake-φ for the guide."""
        w = self.per_datum_weights(model, guide, *args, **kwargs)
        log_w = w.log_p - w.log_q.detach()  # (K, B) model gradients only
        wake_theta = -self._bound(log_w, w.scale)
        weights = torch.softmax(log_w.detach(), 0)  # (K, B) self-normalised per data point
        wake_phi = -w.scale * (weights * w.log_q).sum()
        return wake_theta + (wake_phi - wake_phi.detach())

    def wake_phi_loss(self, model: Callable, guide: Callable, *args, **kwargs) -> torch.Tensor:
        """The wake-φ term alone, with its value: −(N/B) Σ_n Σ_k w̄_nk log q(z_nk|x_n)."""
        w = self.per_datum_weights(model, guide, *args, **kwargs)
        weights = torch.softmax((w.log_p - w.log_q).detach(), 0)  # (K, B)
        return -w.scale * (weights * w.log_q).sum()
