"""What the commands report about a trained model: numbers (:func:`evaluation_summary`) and
figures (:func:`inspection_figures`). ``pyrovae train`` draws a few of the figures,
``pyrovae inspect`` all that apply, ``pyrovae evaluate`` writes the numbers.

Each figure is one small function in :data:`FIGURES`; it draws from a :class:`_Figures`
context that encodes the data once, and either writes its PNG or returns why it was skipped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import torch

from .. import evaluate, inspect, plots
from ..models import VAE, HierarchicalVAE

#: figures that need a 2-D latent
TWO_D_ONLY = ("manifold", "true_posterior")

#: the figures ``pyrovae train`` writes next to its checkpoint
TRAIN_FIGURES = ("samples", "reconstructions", "latent")

#: the figures that apply to a table (data points that are not images)
TABLE_FIGURES = ("latent", "bubbles", "unit_activity")


def evaluation_summary(vae: VAE, x: torch.Tensor, num_samples: int = 5000, batch_size: int = 100) -> dict:
    """All evaluation numbers for ``x`` as a JSON-able dict (means over the data points).

    :param vae: the model.
    :param x: ``(N, *x_shape)`` as the model sees data.
    :param num_samples: K for log p(x).
    :param batch_size: data points per batch of the log p(x) computation.
    """
    terms = evaluate.elbo_terms(vae, x)
    t0 = time.perf_counter()
    log_px, se = evaluate.log_likelihood(vae, x, num_samples=num_samples, batch_size=batch_size, progress=True)
    seconds = time.perf_counter() - t0
    info = evaluate.aggregate_posterior(vae, x)
    activity = evaluate.unit_activity(vae, x)
    n = len(x)
    layers = {}
    if hasattr(vae, "kl_per_layer"):  # a hierarchical VAE: the collapse diagnostics of each layer, z1 first
        layers = {"z_dims": list(vae.z_dims), "active_units_per_layer": list(vae.active_units(x)),
                  "kl_per_layer": vae.kl_per_layer(x).mean(0).tolist()}
    return {
        "n": n,
        "elbo": float(terms.elbo.mean()),
        "recon": float(terms.recon.mean()),
        "kl": float(terms.kl.mean()),
        "kl_method": terms.kl_method,
        "log_px": float(log_px.mean()),
        # standard error of the mean over points from the per-point IS errors (sampling only)
        "log_px_stderr": float(se.pow(2).sum().sqrt() / n),
        "log_px_samples": num_samples,
        "log_px_seconds": seconds,
        "elbo_gap": float(log_px.mean()) - float(terms.elbo.mean()),
        "active_units": int((activity > 0.01).sum()),
        "z_dim": len(activity),
        "unit_activity": [float(a) for a in activity],
        "mutual_information": info.mutual_information,
        "aggregate_kl": info.aggregate_kl,
        "collapse_report": evaluate.collapse_report(vae, x),
        **layers,
    }


def _first_of(labels: torch.Tensor | None, digit: int, default: int) -> int:
    if labels is None:
        return default
    hits = (labels == digit).nonzero()
    return int(hits[0, 0]) if len(hits) else default


@dataclass
class _Figures:
    """The inputs every figure draws from, each computed once."""

    vae: VAE
    x: torch.Tensor  # (N, *x_shape) on the model's device
    labels: torch.Tensor | None  # (N,), or None for unlabelled data
    out: Path
    seed: int
    label_name: str = "digit"
    label_names: list[str] | None = None  # the name of each class index, for the legends
    paths: dict[str, Path] = field(default_factory=dict)

    def path(self, name: str) -> Path:
        self.paths[name] = self.out / f"{name}.png"
        return self.paths[name]

    @cached_property
    def codes(self) -> inspect.LatentCodes:
        return inspect.encode_dataset(self.vae, self.x, self.labels)

    @property
    def z_dim(self) -> int:
        return self.codes.loc.shape[1]

    @property
    def map_dims(self) -> tuple[int, int]:
        """The two latent dimensions of the 2-D maps: the two most active, in order."""
        return tuple(sorted(self.top[:2])) if self.z_dim > 1 else (0, 0)  # type: ignore[return-value]

    @cached_property
    def prior_grid(self) -> inspect.DensityGrid | None:
        """The prior's density over :attr:`map_dims`, on a grid that covers the prior and the codes."""
        return inspect.prior_density(self.vae, self.map_dims, codes=self.codes.loc) if self.z_dim > 1 else None

    @cached_property
    def activity(self) -> torch.Tensor:
        """Each latent dimension's activity, ``(z_dim,)``; a hierarchical VAE's layer by layer,
        z1 first, as its active-unit counts (:meth:`~pyrovae.models.HierarchicalVAE.unit_activity`)."""
        if isinstance(self.vae, HierarchicalVAE):
            return torch.cat(self.vae.unit_activity(self.x))
        return evaluate.unit_activity(self.vae, self.x)

    @cached_property
    def top(self) -> list[int]:
        """The (up to 8) most active latent dimensions, most active first."""
        return [int(d) for d in self.activity.argsort(descending=True)[: min(8, self.z_dim)]]


def _samples(f: _Figures) -> None:
    plots.labelled_grid(
        f.vae.sample(64), ncol=8, title="samples from the prior (mean of p(x|z))", path=f.path("samples")
    )


def _posterior_decodes(f: _Figures) -> None:
    some = f.x[:6]
    decodes = inspect.posterior_decodes(f.vae, some, 8)  # (6, 8, *x_shape)
    plots.labelled_grid(torch.cat([some[:, None], decodes], 1).flatten(0, 1), ncol=9,
                        col_labels=["input"] + [f"z~q #{i + 1}" for i in range(8)],
                        title="the same input decoded through different z ~ q(z|x)", path=f.path("posterior_decodes"))


def _reconstructions(f: _Figures) -> None:
    rows = 2 if len(f.x) >= 20 else 1  # pairs of rows (input, reconstruction) of up to 10
    ncol = min(10, len(f.x))
    x = f.x[: rows * ncol]
    recon = f.vae.reconstruct(x)
    grid = torch.cat([t for r in range(rows) for t in (x[r * ncol:(r + 1) * ncol], recon[r * ncol:(r + 1) * ncol])])
    plots.labelled_grid(
        grid,
        ncol=ncol,
        row_labels=["input", "reconstruction"] * rows,
        title="inputs and their reconstructions (decoded posterior means)",
        path=f.path("reconstructions"),
    )


def _latent(f: _Figures) -> None:
    big = f.z_dim > 2
    plots.latent_scatter(inspect.project_2d(f.codes.loc), f.codes.labels, xlabel="PC 1" if big else "z[0]",
                         ylabel="PC 2" if big else "z[1]", label_name=f.label_name, label_names=f.label_names,
                         prior=f.prior_grid if f.z_dim == 2 else None,  # projected codes have no prior to match
                         title="latent means" + (f" (PCA of {f.z_dim}-D)" if big else ""), path=f.path("latent"))


def _bubbles(f: _Figures) -> None:
    title = "posterior bubbles: ellipse radii = sd of q(z|x)" + (
        "" if f.z_dim <= 2 else f"\n(the two most active of {f.z_dim} dims)")
    plots.latent_bubbles(f.codes.loc, f.codes.scale, f.codes.labels, dims=f.map_dims, title=title,
                         prior=f.prior_grid, label_name=f.label_name, label_names=f.label_names, path=f.path("bubbles"))


def _interpolation(f: _Figures, steps: int = 10) -> None:
    i3, i8 = _first_of(f.labels, 3, 0), _first_of(f.labels, 8, 1)
    digits = f.labels is not None and int(f.labels[i3]) == 3 and int(f.labels[i8]) == 8
    strips = [inspect.interpolate_inputs(f.vae, f.x[i3], f.x[i8], steps, m) for m in ("linear", "spherical")]
    plots.labelled_grid(torch.cat(strips), ncol=steps, row_labels=["linear", "spherical"],
                        col_labels=[f"t={t:.2f}" for t in torch.linspace(0, 1, steps).tolist()],
                        title=f"morphing {'a 3 into an 8' if digits else f'input {i3} into input {i8}'} through the "
                              "latent space", path=f.path("interpolation"))


def _traversal(f: _Figures) -> None:
    dims, names = f.top, [f"z[{d}]" for d in f.top]
    if isinstance(f.vae, HierarchicalVAE):  # p(x|z1) reads z1 alone: a unit of a higher layer would change nothing
        z1 = f.activity[: f.vae.z_dims[0]]  # (z_dims[0],)
        dims = [int(d) for d in z1.argsort(descending=True)[: min(8, len(z1))]]
        names = [f"z1[{d}]" for d in dims]
    images, values = inspect.traversal(f.vae, f.x[0], dims=dims, n=9)
    plots.labelled_grid(images, ncol=9, row_labels=names,
                        col_labels=[f"{v:+.1f}" for v in values.tolist()],
                        title="traversal: one latent dimension at a time around q's mean",
                        xlabel="value of the varied dimension", path=f.path("traversal"))


def _attribute_thickness(f: _Figures, amounts: tuple[float, ...] = (-2.0, -1.0, 0.0, 1.0, 2.0)) -> str | None:
    try:
        vec = inspect.thickness_vector(f.codes.loc.to(f.x.device), f.x, f.labels)
    except ValueError as e:  # too few images per class to split into thin and thick
        return f"the data are too few for it ({e})"
    plots.labelled_grid(inspect.apply_attribute(f.vae, f.x[:6], vec, amounts), ncol=len(amounts),
                        col_labels=[f"{a:+g}×v" for a in amounts],
                        row_labels=None if f.labels is None else [str(int(v)) for v in f.labels[:6]],
                        title="stroke-thickness vector v added to each code", path=f.path("attribute_thickness"))
    return None


def _class_vector(f: _Figures, amounts: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)) -> str | None:
    if f.labels is None:
        return "the data has no labels"
    threes = (f.labels == 3).nonzero()[:6, 0]
    if not len(threes) or not (f.labels == 8).any():
        return "the data has no 3s or no 8s"
    cv = inspect.class_vector(f.codes.loc.to(f.x.device), f.labels, 3, 8)
    plots.labelled_grid(inspect.apply_attribute(f.vae, f.x[threes.to(f.x.device)], cv, amounts), ncol=len(amounts),
                        col_labels=[f"{a:g}×v" for a in amounts],
                        title="class vector v = mean code(8) - mean code(3), added to 3s", path=f.path("class_vector"))
    return None


def _needs_2d(f: _Figures) -> str | None:
    return None if f.z_dim == 2 else f"they need a 2-D latent (this model has z_dim={f.z_dim})"


def _manifold(f: _Figures) -> str | None:
    if _needs_2d(f):
        return _needs_2d(f)
    # the union of the prior's and the codes' 1%-99% spans: every cluster the codes or the prior cover
    grid = inspect.manifold_grid(f.vae, n=15, codes=f.codes.loc, source="both")
    plots.manifold(grid, path=f.path("manifold"))
    return None


def _true_posterior(f: _Figures) -> str | None:
    if _needs_2d(f):
        return _needs_2d(f)
    # the first 0, 1, 3, 5, 7 and 8 (or the first six inputs), each once, however few the inputs
    idx = list(dict.fromkeys(_first_of(f.labels, d, k % len(f.x)) for k, d in enumerate((0, 1, 3, 5, 7, 8))))
    grids = [inspect.posterior_grid(f.vae, f.x[i], n=81) for i in idx]
    plots.posterior_contours(grids, f.x[idx], path=f.path("true_posterior"))
    return None


def _unit_activity(f: _Figures) -> None:
    if isinstance(f.vae, HierarchicalVAE):  # no per-dimension KL across layers: the activity, layer by layer
        plots.unit_activity(f.activity, layers=f.vae.z_dims, title="latent units of each layer: activity",
                            path=f.path("unit_activity"))
        return
    kl_dim = None
    try:
        kl_dim = evaluate.kl_per_dim(f.vae, f.x).mean(0)
    except ValueError:  # no analytic KL for this prior: draw the activity alone
        pass
    plots.unit_activity(f.activity, kl_dim, path=f.path("unit_activity"))


def _anomalies(f: _Figures) -> None:
    scores = inspect.anomaly_scores(f.vae, f.x).neg_elbo
    k = min(10, len(f.x))  # a row each: the k highest and the k lowest
    worst, best = inspect.rank(scores, k), inspect.rank(scores, k, descending=False)
    plots.labelled_grid(torch.cat([f.x[worst], f.x[best]]), ncol=k, row_labels=["highest", "lowest"],
                        col_labels=[f"{float(s):.0f}" for s in scores[worst]],
                        title="anomaly ranking by -ELBO (nats above the top row)", path=f.path("anomalies"))


def _denoise(f: _Figures) -> None:
    k = min(10, len(f.x))
    noisy = inspect.corrupt(f.x[:k], "flip", 0.1, seed=f.seed)
    plots.labelled_grid(
        torch.cat([f.x[:k], noisy, inspect.denoise(f.vae, noisy)]),
        ncol=k,
        row_labels=["clean", "10% flipped", "denoised"],
        title="denoising: reconstruct from corrupted input",
        path=f.path("denoise"),
    )


def _top_layer(f: _Figures, rows: int = 6, columns: int = 8) -> str | None:
    if not isinstance(f.vae, HierarchicalVAE):
        return "it needs a hierarchical VAE (two or more latent layers)"
    top = f"z{len(f.vae.z_dims)}"
    plots.labelled_grid(inspect.top_layer_grid(f.vae, rows, columns), ncol=columns,
                        row_labels=[f"{top} #{i + 1}" for i in range(rows)],
                        col_labels=[f"noise #{j + 1}" for j in range(columns)],
                        title=f"rows: one {top} ~ p({top}) each; columns: the noise of the layers below held fixed",
                        path=f.path("top_layer"))
    return None


#: figure name -> function that writes it, or returns why it does not apply
FIGURES: dict[str, Callable[[_Figures], str | None]] = {
    "samples": _samples, "posterior_decodes": _posterior_decodes, "reconstructions": _reconstructions,
    "latent": _latent, "bubbles": _bubbles, "interpolation": _interpolation, "traversal": _traversal,
    "attribute_thickness": _attribute_thickness, "class_vector": _class_vector, "manifold": _manifold,
    "true_posterior": _true_posterior, "unit_activity": _unit_activity, "anomalies": _anomalies, "denoise": _denoise,
    "top_layer": _top_layer,
}


def label_name(spec: dict) -> str:
    """What a data source's labels are, for the legends: ``"digit"`` for MNIST, else ``"class"``
    (a folder's sub-folders, a file's ``y``, a torchvision data set's classes)."""
    return "digit" if spec.get("source") == "mnist" else "class"


@torch.no_grad()
def inspection_figures(vae: VAE, x: torch.Tensor, labels: torch.Tensor | None, out: str | Path, seed: int = 0,
                       names: Iterable[str] | None = None,
                       label_name: str = "digit",
                       label_names: list[str] | None = None) -> tuple[dict[str, Path], list[str]]:
    """Write every figure that applies to ``vae`` (or only ``names``) into ``out``.

    :param vae: the model.
    :param x: inputs ``(N, *x_shape)`` as the model sees data (N ≥ 100 is sensible).
    :param labels: ``(N,)`` class labels (digits for MNIST), or ``None``.
    :param out: the folder.
    :param seed: RNG seed for the sampled figures.
    :param names: the figures to draw, a subset of :data:`FIGURES` (default: all).
    :param label_name: what the labels are, for the legends (``"digit"``, ``"class"``).
    :param label_names: the name of each class index, for the legends (a folder's sub-folders).
    :returns: ``({name: path}, notes)``; notes say which figures were skipped and why.
    :raises ValueError: for an unknown figure name.
    """
    wanted = list(FIGURES) if names is None else list(names)
    unknown = sorted(set(wanted) - set(FIGURES))
    if unknown:
        raise ValueError(f"unknown figures {unknown}; expected names from {list(FIGURES)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    vae.eval()
    torch.manual_seed(seed)
    f = _Figures(vae, x.to(next(vae.parameters()).device), labels, out, seed, label_name, label_names)
    skipped: dict[str, list[str]] = {}  # reason -> figures
    for name in wanted:
        reason = FIGURES[name](f)
        if reason:
            skipped.setdefault(reason, []).append(name)
    notes = [f"{', '.join(group)}: skipped, {reason}" for reason, group in skipped.items()]
    if names is None:
        notes.append("latent_snapshots: needs a training run; pass inspect.LatentSnapshots to fit(callbacks=[...])")
    return f.paths, notes
