"""``pyrovae kl-demo`` and ``pyrovae kl-compare``: the KL-direction studies from the command line.

``kl-demo`` fits one Gaussian to the bimodal toy target in each direction
(:func:`pyrovae.kl.toy.run_toy`); ``kl-compare`` trains the same VAE with Trace_ELBO, IWAE
and reweighted wake-sleep on MNIST (:func:`pyrovae.kl.guides.compare_guides`). Each writes
its figure and a JSON of the numbers to ``--out``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from .._util.files import atomic_write_bytes, write_json
from . import args as cli_args
from . import outdir
from .loading import load_mnist

DEMO_HELP = "fit one Gaussian to a bimodal toy in each KL direction; write kl_toy.png/.json"
COMPARE_HELP = "train a VAE with Trace_ELBO, IWAE and RWS; compare guides both KL ways; write figure/JSON"


def _common(p: argparse.ArgumentParser, out: str) -> None:
    cli_args.add_out(p, Path(out), "output folder")
    cli_args.add_seed(p)
    cli_args.add_threads(p)


def add_demo_args(p: argparse.ArgumentParser) -> None:
    _common(p, "runs/kl-demo")
    p.add_argument("--steps", type=cli_args.positive_int, default=600, help="SVI steps per fit (default %(default)s)")
    p.add_argument("--alphas", type=float, nargs="*", default=None, help="Rényi orders to sweep (default 0.5 0 -1)")


def run_demo(args: argparse.Namespace) -> dict:
    """Fit the toy in every direction; write ``kl_toy.png`` and ``kl_toy.json``."""
    from .. import plots
    from ..kl import toy as kl_toy

    outdir.check_folder(args.out)
    if args.threads:
        torch.set_num_threads(args.threads)
    alphas = kl_toy.DEFAULT_ALPHAS if args.alphas is None else tuple(args.alphas)
    result = kl_toy.run_toy(seed=args.seed, alphas=alphas, steps=args.steps)
    out = Path(args.out)
    plots.kl_fits(result, path=out / "kl_toy.png")
    numbers = result.to_dict()
    write_json(out / "kl_toy.json", numbers)
    print(result.table())
    print(f"wrote {out}/kl_toy.png and kl_toy.json")
    return numbers


def add_compare_args(p: argparse.ArgumentParser) -> None:
    _common(p, "runs/kl-compare")
    cli_args.add_flags(p, cli_args.MODEL_FLAGS, ("z_dim", "hidden"), {"z_dim": 2, "hidden": (200,)})
    cli_args.add_flags(p, cli_args.TRAINING_FLAGS, ("epochs", "num_particles", "batch_size", "lr"),
                       {"epochs": 5, "num_particles": 5, "batch_size": 100, "lr": 1e-3})
    p.add_argument("--eval-samples", type=cli_args.positive_int, default=1000,
                   help="S, importance samples per test point (default %(default)s)")
    p.add_argument("--methods", nargs="+", choices=("elbo", "iwae", "rws"), default=["elbo", "iwae", "rws"],
                   help="the guides' objectives to compare (default: all three)")
    cli_args.add_subset(p, what="use the first N training images only (quick runs)")
    cli_args.add_subset(p, "--test-subset", "evaluate on the first N test images only")
    p.add_argument("--digits", type=cli_args.nonnegative_int, default=6,
                   help="test digits in the posterior figure (default %(default)s)")
    cli_args.add_device(p, "cpu")
    cli_args.add_data(p, sources=False)


def run_compare(args: argparse.Namespace) -> dict:
    """Train and measure each guide; write ``kl_compare.json``, ``kl_compare.md`` and, for a 2-D
    latent, ``posterior_vs_guides.png``."""
    from .. import plots
    from ..kl import guides as kl_compare

    outdir.check_folder(args.out)
    if args.threads:
        torch.set_num_threads(args.threads)
    train, test = load_mnist(args.data_root)
    x_train = train.images[: args.subset] if args.subset else train.images
    x_test = test.images[: args.test_subset] if args.test_subset else test.images
    t0 = time.perf_counter()
    comp = kl_compare.compare_guides(
        x_train, x_test, epochs=args.epochs, methods=args.methods, z_dim=args.z_dim, hidden=args.hidden,
        particles=args.num_particles, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
        eval_samples=args.eval_samples, device=args.device,
    )
    wall = time.perf_counter() - t0
    out = Path(args.out)
    numbers = {**comp.to_dict(), "wall_seconds": wall}
    table = comp.table()
    if args.z_dim == 2 and args.digits > 0:
        digits = comp.test_x[: args.digits]
        grids = [kl_compare.posterior_grids(r.vae, digits) for r in comp.results.values()]
        names = [kl_compare.METHODS[m] for m in comp.results]
        plots.posterior_vs_guides(digits, grids, names, path=out / "posterior_vs_guides.png")
    write_json(out / "kl_compare.json", numbers)
    atomic_write_bytes(out / "kl_compare.md", (table + "\n").encode())
    print(table)
    print(f"{args.epochs} epochs on {len(x_train)} images, {wall:.0f}s; wrote {out}/")
    return numbers
