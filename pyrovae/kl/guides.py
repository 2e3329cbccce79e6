r"""Which KL does the guide minimise? The same VAE trained three ways, measured both ways.

:func:`compare_guides` trains one architecture (same decoder recipe, same initialisation,
same seeds, same K samples per data point per step) with

* ``"elbo"``: :class:`~pyro.infer.Trace_ELBO` (K particles averaged): the guide minimises
  the reverse KL(q(z|x) ‖ p(z|x));
* ``"iwae"``: the importance-weighted bound, RenyiELBO with α = 0
  (:class:`~pyrovae.infer.IWAE_ELBO`, which applies the minibatch scale correctly);
* ``"rws"``: reweighted wake-sleep, whose wake-φ guide update minimises the inclusive
  KL(p(z|x) ‖ q(z|x)) (:class:`~pyrovae.infer.MinibatchRWS`),

each built by name with :func:`pyrovae.infer.losses.make_loss` (:data:`LOSS_NAMES`), then
measures every trained guide on held-out data
(:func:`pyrovae.evaluate.importance.importance_stats`):

.. math::

    \log \hat p(x) = \log \frac1S \sum_s w_s,\quad
    \text{gap} = \log \hat p(x) - \mathrm{ELBO}(x) \approx \mathrm{KL}(q\|p(z|x)),\quad
    \widehat{\mathrm{KL}}(p(z|x)\|q) = \sum_s \bar w_s \log w_s - \log \hat p(x),\quad
    \mathrm{ESS} = \frac{1}{\sum_s \bar w_s^2},

with :math:`w_s = p(x, z_s)/q(z_s|x)`, :math:`z_s \sim q(z|x)` and :math:`\bar w_s` the
self-normalised weights. The self-normalised inclusive-KL estimate equals
:math:`\log S - H(\bar w)`, so it can never exceed :math:`\log S`: a guide that misses
posterior mass reads as "at least this bad".

With a 2-D latent, :func:`posterior_grids` gives each trained model's true posterior on a
grid next to its guide (and both KLs by quadrature), for
:func:`pyrovae.plots.posterior_vs_guides`.

References:

1. Burda, Y., Grosse, R. and Salakhutdinov, R. (2016). Importance Weighted Autoencoders. ICLR.
2. Bornschein, J. and Bengio, Y. (2015). Reweighted Wake-Sleep. ICLR.
3. Le, T. A., Kosiorek, A. R., Siddharth, N., Teh, Y. W. and Wood, F. (2019). Revisiting
   Reweighted Wake-Sleep for Models with Stochastic Control Flow. UAI.
4. Goodfellow, I., Bengio, Y. and Courville, A. (2016). Deep Learning, §3.13.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import pyro
import torch

from .. import data as _data
from .._util.checks import at_least, positive_int
from ..evaluate.bounds import elbo as _elbo
from ..evaluate.importance import ImportanceStats, importance_stats
from ..infer.losses import make_loss
from ..inspect.posterior_grid import PosteriorGrid, posterior_grid
from ..models import VAE
from ..models.config import build_vae
from ..models.validation import check_data
from ..train import History, fit

__all__ = ["LOSS_NAMES", "METHODS", "Comparison", "GuideResult", "ImportanceStats", "compare_guides",
           "importance_stats", "posterior_grids"]

#: method -> the :func:`pyrovae.infer.losses.make_loss` name that trains it
LOSS_NAMES = {"elbo": "trace-pyro", "iwae": "iwae", "rws": "rws"}

#: method -> what its guide update minimises: the label of tables and figures
METHODS = {
    "elbo": "Trace_ELBO: reverse KL(q||p)",
    "iwae": "RenyiELBO α=0 (IWAE)",
    "rws": "RWS wake-φ: inclusive KL(p||q)",
}


@dataclass
class GuideResult:
    """One trained VAE and its test-set numbers (means over the evaluated points, nats)."""

    method: str  # "elbo", "iwae" or "rws"
    vae: VAE  # the trained model
    history: History  # pyrovae.fit's per-epoch record
    train_seconds: float  # wall time of training
    elbo: float  # mean ELBO (analytic KL)
    log_px: float  # mean IS log p(x)
    log_px_sem: float  # standard error of the mean over data points
    reverse_gap: float  # log p(x) - ELBO ≈ KL(q || p(z|x))
    inclusive_kl: float  # SNIS KL(p(z|x) || q), capped at log S
    ess: float  # mean IS effective sample size, out of S
    per_point: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)  # (n,) elbo, log_px

    def to_dict(self) -> dict:
        keep = ("method", "train_seconds", "elbo", "log_px", "log_px_sem", "reverse_gap", "inclusive_kl", "ess")
        return {**{k: getattr(self, k) for k in keep}, "estimator": METHODS[self.method],
                "history": self.history.to_dict()}


@dataclass
class Comparison:
    """The three trainings and the settings they shared."""

    results: dict[str, GuideResult]  # by method
    settings: dict  # epochs, z_dim, hidden, particles, ... (JSON-able)
    test_x: torch.Tensor  # (n, *x_shape) the binarised evaluation points
    extra: dict = field(default_factory=dict)

    def paired(self, baseline: str = "elbo") -> dict[str, dict[str, float]]:
        """Per-test-point differences against ``baseline`` (same digits, so much tighter than
        the across-digit standard errors): mean and standard error of Δ ELBO and Δ log p(x)."""
        if baseline not in self.results:
            return {}
        base = self.results[baseline].per_point
        out = {}
        for m, r in self.results.items():
            if m == baseline:
                continue
            out[m] = {}
            for key in ("elbo", "log_px"):
                d = r.per_point[key] - base[key]  # (n,)
                out[m][f"d_{key}"] = float(d.mean())
                out[m][f"d_{key}_sem"] = float(d.std() / math.sqrt(len(d)))
        return out

    def to_dict(self) -> dict:
        return {"settings": self.settings, "results": {m: r.to_dict() for m, r in self.results.items()},
                "paired_vs_elbo": self.paired()}

    def table(self) -> str:
        """The results table in Markdown."""
        s = self.settings["eval_samples"]
        rows = [f"| guide trained by | test ELBO | IS log p(x) | gap log p(x) − ELBO | SNIS KL(p‖q) | ESS (of {s}) |",
                "|---|---|---|---|---|---|"]
        for r in self.results.values():
            rows.append(f"| {METHODS[r.method]} | {r.elbo:.2f} | {r.log_px:.2f} ± {r.log_px_sem:.2f} | "
                        f"{r.reverse_gap:.2f} | {r.inclusive_kl:.2f} | {r.ess:.1f} |")
        return "\n".join(rows)


def compare_guides(
    train_x: torch.Tensor,
    test_x: torch.Tensor,
    *,
    epochs: int,
    methods: Sequence[str] = tuple(METHODS),
    z_dim: int = 2,
    hidden: Sequence[int] = (200,),
    particles: int = 5,
    batch_size: int = 100,
    lr: float = 1e-3,
    seed: int = 0,
    eval_samples: int = 1000,
    device: str = "cpu",
    progress: bool = False,
) -> Comparison:
    """Train the same VAE with each method and evaluate every guide on ``test_x``.

    :param train_x: ``(N, 1, 28, 28)`` grey levels in [0, 1] (binarised dynamically).
    :param test_x: ``(n, 1, 28, 28)`` grey levels; binarised once with seed 0.
    :param epochs: passes over ``train_x`` per method.
    :param methods: a subset of ``("elbo", "iwae", "rws")``.
    :param z_dim: latent size (2 allows :func:`posterior_grids`).
    :param hidden: MLP widths (the decoder mirrors them).
    :param particles: K, samples of z per data point per step, for every method.
    :param batch_size: examples per step.
    :param lr: Adam learning rate.
    :param seed: seeds the initialisation (identical across methods) and training.
    :param eval_samples: S, importance samples per test point.
    :param device: where to train.
    :param progress: show progress bars.
    :returns: a :class:`Comparison`.
    :raises TypeError: for data that are not tensors.
    :raises ValueError: for bad data (checked once, before any training) or settings.
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ValueError(f"methods must be a non-empty subset of {list(METHODS)}, got {list(methods)}")
    at_least("particles", particles, 2, " (importance weighting)")
    positive_int("batch_size", batch_size)
    x_eval = None
    results: dict[str, GuideResult] = {}
    for method in methods:
        pyro.clear_param_store()
        pyro.set_rng_seed(seed)  # the same initial weights for every method
        vae = build_vae(z_dim=z_dim, hidden=tuple(hidden))
        if x_eval is None:  # the data, checked against the first model before any training
            train_x = check_data(vae, train_x, "train_x", binarize="dynamic")
            test_x = check_data(vae, test_x, "test_x", binarize="static")
            x_eval = _data.binarize(test_x, "static", seed=0)
        t0 = time.perf_counter()
        loss = make_loss(LOSS_NAMES[method], particles)
        history = fit(vae, train_x, test_x, epochs=epochs, batch_size=batch_size, loss=loss,
                      lr=lr, device=device, seed=seed, progress=progress)
        seconds = time.perf_counter() - t0
        pyro.set_rng_seed(seed + 1)  # the same evaluation draws for every method
        elbo = _elbo(vae, x_eval, num_samples=10)  # (n,)
        stats = importance_stats(vae, x_eval, eval_samples)
        log_px = stats["log_px"]
        results[method] = GuideResult(
            method, vae, history, seconds, float(elbo.mean()), float(log_px.mean()),
            float(log_px.std() / math.sqrt(len(log_px))), float((log_px - elbo.cpu()).mean()),
            float(stats["inclusive_kl"].mean()), float(stats["ess"].mean()),
            per_point={"elbo": elbo.cpu(), "log_px": log_px},
        )
    settings = {"epochs": epochs, "methods": list(methods), "z_dim": z_dim, "hidden": list(hidden),
                "particles": particles, "batch_size": batch_size, "lr": lr, "seed": seed,
                "eval_samples": eval_samples, "num_train": len(train_x), "num_test": len(test_x)}
    return Comparison(results, settings, x_eval)


def posterior_grids(vae: VAE, x: torch.Tensor, size: int = 121) -> list[PosteriorGrid]:
    """The true posterior against the guide on a grid, for each row of ``x`` (2-D latent).

    A batch wrapper over :func:`pyrovae.inspect.posterior_grid`, which also gives both
    KL directions by quadrature: a check on the importance-sampling numbers above.

    :param vae: a model with ``z_dim == 2``.
    :param x: ``(R, *x_shape)`` data points, as the model sees them (binarised).
    :param size: grid points per axis.
    :returns: one :class:`~pyrovae.inspect.PosteriorGrid` per data point.
    :raises TypeError: for data that are not a tensor.
    :raises ValueError: for data the model cannot score (checked once), or a model whose latent is not 2-D.
    """
    x = check_data(vae, x)
    return [posterior_grid(vae, xi, n=size) for xi in x]
