r"""The importance-weighted autoencoder bound, per data point, as a Pyro ELBO.

For a minibatch :math:`\{x_n\}_{n \in B}` of a data set of size :math:`N`, with
:math:`z_{nk} \sim q(z \mid x_n)`, :math:`k = 1, \dots, K`,

.. math::

    \mathcal{L}_K = \frac{N}{|B|} \sum_{n \in B}
        \log \frac{1}{K} \sum_{k=1}^{K} \frac{p(x_n, z_{nk})}{q(z_{nk} \mid x_n)},

which is a lower bound on :math:`\sum_n \log p(x_n)` that tightens as :math:`K` grows
(Burda et al. 2016). The average over :math:`k` sits *inside* the sum over data points: one
log-mean-exp per data point, not one joint bound
:math:`\log \frac{1}{K}\sum_k \prod_n w_{nk}` over the batch, whose slack grows with the batch.

Why not ``pyro.infer.RenyiELBO(alpha=0)``? It does keep the data plate (its log-weights are
per data point), but it reads the log-densities *after* the plate's ``N / |B|`` subsample scale
has been applied, so with ``num_data`` it computes
:math:`\sum_n \log \frac{1}{K}\sum_k w_{nk}^{N/|B|}`, which is not the IWAE bound
(``tests/infer/test_iwae.py`` shows the difference). :class:`IWAE_ELBO` divides that scale out,
takes the log-mean-exp per data point, then scales the result back up. Other scales (the
β of :class:`pyrovae.VAE`, masks) stay inside the weights, so β ≠ 1 gives a β-weighted bound.

All sample sites must sit inside the ``"data"`` plate (local latents, as in a VAE), and every
latent site of the guide must be reparameterisable; the gradient is then the exact gradient of
:math:`\mathcal{L}_K`.

References:

1. Burda, Y., Grosse, R. and Salakhutdinov, R. (2016). Importance Weighted Autoencoders. ICLR.
2. Li, Y. and Turner, R. E. (2016). Rényi Divergence Variational Inference. NeurIPS.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from pyro.infer import ELBO
from pyro.infer.enum import get_importance_trace
from pyro.infer.util import is_validation_enabled
from pyro.util import check_if_enumerated, warn_if_nan

from .util import data_plate_frame, per_datum_log_prob, sample_sites

__all__ = ["IWAE_ELBO", "iwae_bound"]


def iwae_bound(log_w: torch.Tensor) -> torch.Tensor:
    r"""The per-data-point IWAE bound :math:`\log \frac1K \sum_k e^{\log w_{nk}}`.

    :param log_w: log-weights ``(K, batch)``.
    :returns: ``(batch,)``.
    """
    if log_w.dim() != 2:
        raise ValueError(f"log_w must have shape (K, batch), got {tuple(log_w.shape)}")
    return torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0])


class IWAE_ELBO(ELBO):
    r"""Importance-weighted ELBO (Burda et al. 2016), one bound per data point.

    Use it like any Pyro ELBO::

        svi = SVI(vae.model, vae.guide, Adam({"lr": 1e-3}), IWAE_ELBO(num_particles=50))
        pyrovae.fit(vae, train, epochs=10, batch_size=100, loss=IWAE_ELBO(num_particles=5))

    ``loss`` returns :math:`-\mathcal{L}_K` (see the module docstring), scaled to the full
    data set when the model is called with ``num_data``.

    :param num_particles: K, importance samples per data point (vectorised; K = 1 is the ELBO).
    :param plate: name of the data plate that every sample site must lie in.
    :param max_plate_nesting: as in :class:`pyro.infer.ELBO`; guessed when left at infinity.
    """

    def __init__(self, num_particles: int = 5, plate: str = "data", max_plate_nesting: float = float("inf")) -> None:
        if not isinstance(num_particles, int) or num_particles < 1:
            raise ValueError(f"num_particles must be a positive integer, got {num_particles!r}")
        super().__init__(num_particles=num_particles, max_plate_nesting=max_plate_nesting, vectorize_particles=True)
        self.plate = plate

    def _get_trace(self, model: Callable, guide: Callable, args: tuple, kwargs: dict):
        model_trace, guide_trace = get_importance_trace("flat", self.max_plate_nesting, model, guide, args, kwargs)
        if is_validation_enabled():
            check_if_enumerated(guide_trace)
        return model_trace, guide_trace

    def log_weights(self, model: Callable, guide: Callable, *args, **kwargs) -> tuple[torch.Tensor, float]:
        r"""Per-data-point log importance weights and the data plate's subsample scale.

        :returns: ``(log_w, scale)``: ``log_w`` is ``(K, batch)`` with
            :math:`\log p(x_n, z_{nk}) - \log q(z_{nk}|x_n)` (β and masks applied, the
            subsample scale removed); ``scale`` is ``N / batch`` (1 without subsampling).
        """
        if self.max_plate_nesting == float("inf"):
            self._guess_max_plate_nesting(model, guide, args, kwargs)
        # the particle plate (present for K > 1) is the outermost batch dim of every site
        model_trace, guide_trace = self._get_vectorized_trace(model, guide, args, kwargs)
        log_w, scale = 0.0, None
        for sign, trace, role in ((1.0, model_trace, "model"), (-1.0, guide_trace, "guide")):
            for name, site in sample_sites(trace):
                frame = data_plate_frame(site, self.plate, estimator="IWAE_ELBO", role=role, name=name)
                if role == "guide" and not site["is_observed"] and not site["fn"].has_rsample:
                    raise ValueError(
                        f"IWAE_ELBO needs reparameterised guide sites; "
                        f"{name!r} ({type(site['fn']).__name__}) has no rsample"
                    )
                s = frame.full_size / frame.size if frame.full_size is not None else 1.0
                scale = s if scale is None else scale
                lp = torch.as_tensor(site["log_prob"]) / s  # undo the subsample scale only
                log_w = log_w + sign * per_datum_log_prob(lp, frame, self.num_particles, self.max_plate_nesting)
        if scale is None:
            raise ValueError("IWAE_ELBO found no sample sites in the model or guide")
        return log_w, scale  # (K, batch)

    def differentiable_loss(self, model: Callable, guide: Callable, *args, **kwargs) -> torch.Tensor:
        """:math:`-\\mathcal{L}_K` as a differentiable scalar."""
        log_w, scale = self.log_weights(model, guide, *args, **kwargs)
        loss = -scale * iwae_bound(log_w).sum()
        warn_if_nan(loss, "loss")
        return loss

    def loss(self, model: Callable, guide: Callable, *args, **kwargs) -> float:
        """:math:`-\\mathcal{L}_K` as a float."""
        with torch.no_grad():
            return self.differentiable_loss(model, guide, *args, **kwargs).item()

    def loss_and_grads(self, model: Callable, guide: Callable, *args, **kwargs) -> float:
        """:math:`-\\mathcal{L}_K`, back-propagated into the parameters."""
        loss = self.differentiable_loss(model, guide, *args, **kwargs)
        if loss.requires_grad:
            loss.backward()
        return loss.item()
