"""``pyrovae evaluate`` and ``pyrovae inspect``: numbers and figures from a checkpoint.

``evaluate`` prints and saves the ELBO terms, the importance-sampled log p(x) and the
collapse diagnostics as JSON; ``inspect`` writes every figure that applies to the model to a
folder. Both are thin over testable functions (:func:`evaluation_summary`,
:func:`inspection_figures`).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from .. import evaluate, inspect, plots
from ..models import VAE

#: figures that need a 2-D latent
TWO_D_ONLY = ("manifold", "true_posterior")


def _test_data(vae: VAE, n: int | None, data_dir: Path | None, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    from .. import data

    _, test = data.load_mnist(data_dir)
    x, y = test.images[:n], test.labels[:n]
    if vae.x_shape is not None and tuple(x.shape[1:]) != vae.x_shape:
        raise ValueError(f"the checkpoint's model expects x_shape {vae.x_shape}; MNIST is {tuple(x.shape[1:])}")
    if getattr(vae.likelihood, "binary", False):
        x = data.binarize(x, "static", seed=seed)  # the fixed test binarisation fit uses
    return x, y


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
    }


def _most_active(vae: VAE, x: torch.Tensor, k: int) -> list[int]:
    return [int(d) for d in evaluate.unit_activity(vae, x).argsort(descending=True)[:k]]


def _first_of(labels: torch.Tensor, digit: int, default: int) -> int:
    hits = (labels == digit).nonzero()
    return int(hits[0, 0]) if len(hits) else default


@torch.no_grad()
def inspection_figures(vae: VAE, x: torch.Tensor, labels: torch.Tensor, out: str | Path, seed: int = 0) -> tuple[dict, list[str]]:
    """Write every figure that applies to ``vae`` into ``out``.

    :param vae: the model.
    :param x: inputs ``(N, *x_shape)`` as the model sees data (N ≥ 100 is sensible).
    :param labels: ``(N,)`` digit labels.
    :param out: the folder.
    :param seed: RNG seed for the sampled figures.
    :returns: ``({name: path}, notes)``; notes say which figures were skipped and why.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    vae.eval()
    device = next(vae.parameters()).device
    torch.manual_seed(seed)
    x = x.to(device)
    paths, notes = {}, []

    def path(name: str) -> Path:
        paths[name] = out / f"{name}.png"
        return paths[name]

    plots.labelled_grid(vae.sample(64), ncol=8, title="samples from the prior (mean of p(x|z))", path=path("samples"))
    some = x[:6]
    decodes = inspect.posterior_decodes(vae, some, 8)  # (6, 8, *x_shape)
    plots.labelled_grid(torch.cat([some[:, None], decodes], 1).flatten(0, 1), ncol=9,
                        col_labels=["input"] + [f"z~q #{i + 1}" for i in range(8)],
                        title="the same input decoded through different z ~ q(z|x)", path=path("posterior_decodes"))
    recon = vae.reconstruct(x[:20])
    plots.labelled_grid(torch.cat([x[:10], recon[:10], x[10:20], recon[10:20]]), ncol=10,
                        row_labels=["input", "reconstruction", "input", "reconstruction"],
                        title="inputs and their reconstructions (decoded posterior means)", path=path("reconstructions"))

    codes = inspect.encode_dataset(vae, x, labels)
    z_dim = codes.loc.shape[1]
    axis = ("z[0]", "z[1]") if z_dim <= 2 else ("PC 1", "PC 2")
    plots.latent_scatter(inspect.project_2d(codes.loc), codes.labels, xlabel=axis[0], ylabel=axis[1],
                         title="latent means" + ("" if z_dim <= 2 else f" (PCA of {z_dim}-D)"), path=path("latent"))
    top = _most_active(vae, x, min(8, z_dim))
    bubble_dims = tuple(sorted(top[:2])) if z_dim > 1 else (0, 0)
    bubble_title = "posterior bubbles: ellipse radii = sd of q(z|x)" + (
        "" if z_dim <= 2 else f"\n(the two most active of {z_dim} dims)")
    plots.latent_bubbles(codes.loc, codes.scale, codes.labels, dims=bubble_dims, title=bubble_title, path=path("bubbles"))

    i3, i8 = _first_of(labels, 3, 0), _first_of(labels, 8, 1)
    steps = 10
    strips = [inspect.interpolate_inputs(vae, x[i3], x[i8], steps, m) for m in ("linear", "spherical")]
    plots.labelled_grid(torch.cat(strips), ncol=steps, row_labels=["linear", "spherical"],
                        col_labels=[f"t={t:.2f}" for t in torch.linspace(0, 1, steps).tolist()],
                        title="morphing a 3 into an 8 through the latent space", path=path("interpolation"))
    images, values = inspect.traversal(vae, x[0], dims=top, n=9)
    plots.labelled_grid(images, ncol=9, row_labels=[f"z[{d}]" for d in top], col_labels=[f"{v:+.1f}" for v in values.tolist()],
                        title="traversal: one latent dimension at a time around q's mean",
                        xlabel="value of the varied dimension", path=path("traversal"))
    amounts = (-2.0, -1.0, 0.0, 1.0, 2.0)
    vec = inspect.thickness_vector(codes.loc.to(device), x, labels)
    plots.labelled_grid(inspect.apply_attribute(vae, x[:6], vec, amounts), ncol=len(amounts),
                        col_labels=[f"{a:+g}×v" for a in amounts], row_labels=[str(int(v)) for v in labels[:6]],
                        title="stroke-thickness vector v added to each code", path=path("attribute_thickness"))
    threes = (labels == 3).nonzero()[:6, 0]
    if len(threes) and (labels == 8).any():
        cv = inspect.class_vector(codes.loc.to(device), labels, 3, 8)
        amounts = (0.0, 0.25, 0.5, 0.75, 1.0)
        plots.labelled_grid(inspect.apply_attribute(vae, x[threes.to(x.device)], cv, amounts), ncol=len(amounts),
                            col_labels=[f"{a:g}×v" for a in amounts],
                            title="class vector v = mean code(8) - mean code(3), added to 3s", path=path("class_vector"))
    else:
        notes.append("class_vector: skipped, the data has no 3s or no 8s")

    if z_dim == 2:
        images, values = inspect.manifold_grid(vae, n=15)
        plots.manifold(images, values, title="decodes over a 15×15 grid of prior quantiles", path=path("manifold"))
        idx = [_first_of(labels, d, k) for k, d in enumerate((0, 1, 3, 5, 7, 8))]
        grids = [inspect.posterior_grid(vae, x[i], n=81) for i in idx]
        plots.posterior_contours(grids, x[idx], path=path("true_posterior"))
    else:
        notes.append(f"manifold, true_posterior: skipped, they need a 2-D latent (this model has z_dim={z_dim})")

    kl_dim = None
    try:
        kl_dim = evaluate.kl_per_dim(vae, x).mean(0)
    except ValueError:
        pass
    plots.unit_activity(evaluate.unit_activity(vae, x), kl_dim, path=path("unit_activity"))
    scores = inspect.anomaly_scores(vae, x)
    worst, best = inspect.rank(scores.neg_elbo, 10), inspect.rank(scores.neg_elbo, 10, descending=False)
    plots.labelled_grid(torch.cat([x[worst], x[best]]), ncol=10, row_labels=["highest", "lowest"],
                        col_labels=[f"{float(s):.0f}" for s in scores.neg_elbo[worst]],
                        title="anomaly ranking by -ELBO (nats above the top row)", path=path("anomalies"))
    noisy = inspect.corrupt(x[:10], "flip", 0.1, seed=seed)
    plots.labelled_grid(torch.cat([x[:10], noisy, inspect.denoise(vae, noisy)]), ncol=10,
                        row_labels=["clean", "10% flipped", "denoised"], title="denoising: reconstruct from corrupted input",
                        path=path("denoise"))
    notes.append("latent_snapshots: needs a training run; pass inspect.LatentSnapshots to fit(callbacks=[...])")
    return paths, notes


def add_evaluate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", type=Path, help="a checkpoint.pt written by pyrovae train")
    p.add_argument("--samples", type=int, default=5000, help="importance samples K for log p(x) (default %(default)s)")
    p.add_argument("--n", type=int, default=1000, help="test images to evaluate (default %(default)s; 10000 = all)")
    p.add_argument("--batch-size", type=int, default=100, help="data points per batch of log p(x) (default %(default)s)")
    p.add_argument("--out", type=Path, default=None, help="JSON file to write (default: next to the checkpoint)")
    p.add_argument("--data", type=Path, default=None, help="MNIST folder")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default %(default)s)")


def _load(args: argparse.Namespace) -> VAE:
    from .._util.device import resolve_device
    from ..train.checkpoint import load_checkpoint

    vae, _ = load_checkpoint(args.checkpoint, map_location=resolve_device(args.device))
    torch.manual_seed(args.seed)
    return vae.eval()


def run_evaluate(args: argparse.Namespace) -> dict:
    """Evaluate a checkpoint on the first ``--n`` MNIST test images; print and save JSON."""
    from .._util.files import write_json

    if args.samples < 2 or args.n < 2:
        raise ValueError(f"--samples and --n must be >= 2, got {args.samples} and {args.n}")
    vae = _load(args)
    x, _ = _test_data(vae, args.n, args.data, args.seed)
    summary = {"checkpoint": str(args.checkpoint), **evaluation_summary(vae, x, args.samples, args.batch_size)}
    out = args.out or Path(args.checkpoint).with_name("evaluation.json")
    write_json(out, summary)
    print(f"on {summary['n']} test images: ELBO {summary['elbo']:.2f} = recon {summary['recon']:.2f} - KL {summary['kl']:.2f} "
          f"({summary['kl_method']} KL)")
    print(f"log p(x) {summary['log_px']:.2f} ± {summary['log_px_stderr']:.2f} nats (K={args.samples}, "
          f"{summary['log_px_seconds']:.1f}s); ELBO gap {summary['elbo_gap']:.2f}")
    print(summary["collapse_report"])
    print(f"wrote {out}")
    return summary


def add_inspect_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", type=Path, help="a checkpoint.pt written by pyrovae train")
    p.add_argument("--out", type=Path, required=True, help="folder for the figures")
    p.add_argument("--n", type=int, default=2000, help="test images to encode (default %(default)s)")
    p.add_argument("--data", type=Path, default=None, help="MNIST folder")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default %(default)s)")


def run_inspect(args: argparse.Namespace) -> dict:
    """Write every applicable figure for a checkpoint to ``--out``."""
    if args.n < 20:
        raise ValueError(f"--n must be >= 20 (figures show up to 20 inputs), got {args.n}")
    vae = _load(args)
    x, y = _test_data(vae, args.n, args.data, args.seed)
    paths, notes = inspection_figures(vae, x, y, args.out, seed=args.seed)
    for p in paths.values():
        print(f"wrote {p}")
    for note in notes:
        print(f"note: {note}")
    return {k: str(v) for k, v in paths.items()}
