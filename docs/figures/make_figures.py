"""Regenerate the committed figures in ``docs/figures/``.

Three groups, each a command::

    python docs/figures/make_figures.py                       # priors + likelihood (about 5 min, 1 thread)
    python docs/figures/make_figures.py --only priors         # the 2-D latent figures of three priors
    python docs/figures/make_figures.py --only likelihood     # likelihood_curves.png from benchmarks/results
    python docs/figures/make_figures.py --only reference      # long: two 10-epoch trainings on all of MNIST

- ``priors``: a tiny VAE with a 2-D latent for each of a learned mixture of Gaussians, a
  VampPrior and N(0, I) (a 784-512-256-2 GELU MLP, 12 epochs on 20,000 training images, under
  two minutes each on one CPU thread). For each: the test-set latent means over the prior's
  highest-density regions (``latent_<prior>.png``), the manifold over the union of the
  prior's and the codes' 1%-99% spans (``manifold_<prior>.png``), the posterior bubbles over
  the prior's contours (``bubbles_<prior>.png``); for the mixture, the true posterior
  against the guide (``true_posterior_mog.png``). The numbers behind the figures (test
  ELBO, the share of each digit's codes inside the manifold, and inside the fixed N(0, 1)
  5%-95% quantile grid drawn before) go to ``priors_2d.json``.
- ``likelihood``: ``benchmarks/plot_likelihood.py`` over the finished runs in
  ``benchmarks/results`` (no training).
- ``reference``: ``pyrovae train`` with the default recipe (``samples.png``,
  ``reconstructions.png``, ``latent.png``) and the reference recipe, then ``pyrovae
  inspect`` on the latter (``unit_activity.png``, ``interpolation.png``). ``--ref-epochs``
  and ``--ref-subset`` shorten these runs for a smoke test (then use ``--out`` elsewhere).

MNIST comes from :func:`pyrovae.data.load_mnist`, which works offline.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from pyrovae import data, evaluate, inspect, plots  # noqa: E402
from pyrovae.models import build_vae  # noqa: E402
from pyrovae.models.recipes import init_from_data  # noqa: E402
from pyrovae.train import fit  # noqa: E402

GROUPS = ("priors", "likelihood", "reference")
#: prior name -> (build_vae keywords, a title)
PRIORS = {
    "mog": ({"prior": "mog", "num_components": 10}, "learned mixture of 10 Gaussians"),
    "vamp": ({"prior": "vamp", "num_components": 50}, "VampPrior, 50 pseudo-inputs"),
    "standard_normal": ({"prior": "standard_normal"}, "N(0, I)"),
}
#: the runs drawn in likelihood_curves.png
LIKELIHOOD_RUNS = ("vae-large", "vamp-large-55-full", "iwae-large-full", "best-large", "best-large-iwae")


def coverage(codes: torch.Tensor, labels: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> dict:
    """Per digit: the share of its codes ``(N, 2)`` inside the box ``[lo, hi]`` and whether
    its median code is inside."""
    inside = ((codes >= lo) & (codes <= hi)).all(1)  # (N,)
    out = {}
    for d in sorted({int(v) for v in labels}):
        mine = labels == d
        median = codes[mine].median(0).values
        out[str(d)] = {"share_inside": round(float(inside[mine].float().mean()), 4),
                       "median_inside": bool(((median >= lo) & (median <= hi)).all())}
    return out


def prior_figures(args: argparse.Namespace, out: Path) -> dict:
    """Train the three tiny 2-D VAEs and draw their latent maps, manifolds and bubbles."""
    train, test = data.load_mnist()
    x_train = train.images[: args.subset]
    x_test = data.binarize(test.images[: args.test_points], "static", seed=0)
    y_test = test.labels[: args.test_points]
    old = inspect.prior_quantiles(15, 0.05, 0.95)  # (15,) the old manifold's values, ±1.64
    results = {}
    for name, (keywords, title) in PRIORS.items():
        torch.manual_seed(args.seed)
        vae = build_vae(z_dim=2, hidden=tuple(args.hidden), activation="gelu", **keywords)
        init_from_data(vae, x_train)  # a VampPrior starts at training images
        t0 = time.perf_counter()
        fit(vae, x_train, epochs=args.epochs, batch_size=128, lr=3e-3, device="cpu", seed=args.seed, progress=False)
        seconds = time.perf_counter() - t0
        vae.eval()
        codes = inspect.encode_dataset(vae, x_test, y_test)
        prior = inspect.prior_density(vae, codes=codes.loc)  # over the prior's mass and every code
        plots.latent_scatter(codes.loc, y_test, prior=prior, title=f"test-set latent means, prior: {title}",
                             path=out / f"latent_{name}.png")
        grid = inspect.manifold_grid(vae, n=args.grid, codes=codes.loc, source="both")
        plots.manifold(grid, title=f"{title}: decodes over the 1%-99% spans of the prior and the codes",
                       path=out / f"manifold_{name}.png")
        plots.latent_bubbles(codes.loc, codes.scale, y_test, prior=prior,
                             title=f"posterior bubbles (radii = sd of q(z|x)), prior: {title}",
                             path=out / f"bubbles_{name}.png")
        if name == "mog":
            idx = [int((y_test == d).nonzero()[0, 0]) for d in (0, 1, 3, 5, 7, 8)]
            grids = [inspect.posterior_grid(vae, x_test[i], n=81) for i in idx]
            plots.posterior_contours(grids, x_test[idx], path=out / "true_posterior_mog.png")
        results[name] = {
            "prior": title, "train_seconds": round(seconds, 1), "epochs": args.epochs, "train_images": len(x_train),
            "test_points": len(x_test), "test_elbo": round(float(evaluate.elbo_terms(vae, x_test).elbo.mean()), 2),
            "manifold_box": [[round(float(grid.z0[0]), 3), round(float(grid.z0[-1]), 3)],
                             [round(float(grid.z1[0]), 3), round(float(grid.z1[-1]), 3)]],
            "codes_box": [[round(float(v), 3) for v in codes.loc[:, k].aminmax()] for k in (0, 1)],
            "coverage": coverage(codes.loc, y_test, torch.stack([grid.z0[0], grid.z1[0]]).float(),
                                 torch.stack([grid.z0[-1], grid.z1[-1]]).float()),
            # the fixed grid inspection drew before: N(0, 1) quantiles at 5%-95% on both axes
            "coverage_of_the_old_n01_grid": coverage(codes.loc, y_test, old.min().repeat(2), old.max().repeat(2)),
        }
        print(f"{name}: {seconds:.0f} s, test ELBO {results[name]['test_elbo']}; manifold box "
              f"{results[name]['manifold_box']}, codes box {results[name]['codes_box']}")
    (out / "priors_2d.json").write_text(json.dumps(results, indent=1) + "\n")
    return results


def likelihood_figure(out: Path) -> None:
    """``likelihood_curves.png`` from the recorded benchmark runs."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import plot_likelihood

    plot_likelihood.main(["--results", str(ROOT / "benchmarks" / "results"), "--names", *LIKELIHOOD_RUNS,
                          "--out", str(out / "likelihood_curves.png")])


def reference_figures(args: argparse.Namespace, out: Path) -> None:
    """The figures of the default and the reference recipe (``pyrovae train`` / ``inspect``)."""
    from pyrovae.cli.app import main as pyrovae

    runs = Path(args.runs)
    short = [*(["--epochs", str(args.ref_epochs)] if args.ref_epochs else []),
             *(["--subset", str(args.ref_subset)] if args.ref_subset else [])]
    pyrovae(["train", "--out", str(runs / "mnist"), "--overwrite", "--no-progress", *short])
    for name in ("samples", "reconstructions", "latent"):
        shutil.copyfile(runs / "mnist" / f"{name}.png", out / f"{name}.png")
    pyrovae(["train", "--hidden", "400", "--z-dim", "50", "--activation", "softplus", "--prior", "standard_normal",
             "--batch-size", "128", "--loss", "trace", "--out", str(runs / "reference"), "--overwrite",
             "--no-progress", *short])
    pyrovae(["inspect", str(runs / "reference" / "checkpoint.pt"), "--out", str(runs / "reference" / "figures")])
    for name in ("unit_activity", "interpolation"):
        shutil.copyfile(runs / "reference" / "figures" / f"{name}.png", out / f"{name}.png")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", nargs="+", choices=GROUPS, default=["priors", "likelihood"],
                   help="the groups of figures to make (default: priors likelihood; reference is long)")
    p.add_argument("--out", type=Path, default=HERE, help="folder for the PNGs (default: docs/figures)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--subset", type=int, default=20000, help="training images of the 2-D VAEs")
    p.add_argument("--epochs", type=int, default=12, help="epochs of the 2-D VAEs")
    p.add_argument("--hidden", type=int, nargs="+", default=[512, 256], help="MLP widths of the 2-D VAEs")
    p.add_argument("--test-points", type=int, default=2000, help="test images encoded for the 2-D figures")
    p.add_argument("--grid", type=int, default=20, help="manifold cells per axis")
    p.add_argument("--runs", default="runs", help="folder for the reference runs' checkpoints")
    p.add_argument("--ref-epochs", type=int, default=None, help="shorten the reference runs (smoke test)")
    p.add_argument("--ref-subset", type=int, default=None, help="train the reference runs on fewer images")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    if "priors" in args.only:
        prior_figures(args, args.out)
    if "likelihood" in args.only:
        likelihood_figure(args.out)
    if "reference" in args.only:
        reference_figures(args, args.out)
    print(f"wrote the figures of {', '.join(args.only)} to {args.out}")


if __name__ == "__main__":
    main()
