"""The 2-D latent manifold, and the latent means moving into place epoch by epoch.

A VAE with a 2-D latent is trained on MNIST. A :class:`pyrovae.inspect.LatentSnapshots`
callback records the posterior means of a fixed set of test digits before training and
after every epoch (seed 001, Fig. 8); afterwards the decoder is evaluated on a grid of
standard-normal quantiles, which tiles the whole learned manifold (seed 003, Fig. 4;
Kingma & Welling 2014, Fig. 4). A small digit classifier reads every cell of the grid, so
the script can report how many of the ten digits the manifold contains (cells the
classifier gives more than 50% to one digit).

Run::

    python examples/manifold.py --epochs 10
    python examples/manifold.py --epochs 1 --subset 500 --test-subset 200 --out /tmp/x

References:

1. Kingma, D. P. and Welling, M. (2014). Auto-Encoding Variational Bayes. ICLR, Fig. 4.
2. Seed articles 001 (latent means during training), 003 (the 2-D manifold grid) and 004.
"""

from __future__ import annotations

import argparse
import math

from pyrovae import data, inspect, plots
from pyrovae.cli import experiment
from pyrovae.evaluate import sample_quality
from pyrovae.models import build_vae
from pyrovae.train import fit


def main(args: argparse.Namespace) -> dict:
    run = experiment.start(args)
    train, test = experiment.mnist_subset(args)
    vae = build_vae(z_dim=2, hidden=tuple(args.hidden))
    shown = test.images[: args.points]
    snapshots = inspect.LatentSnapshots(data.binarize(shown, "static", seed=0), test.labels[: args.points])
    snapshots.record(0, vae)  # before training
    history = fit(vae, train, test, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, progress=False,
                  device="cpu", callbacks=[snapshots])
    plots.latent_snapshots(snapshots, path=run.path("manifold_epochs.png"))

    # Kingma & Welling's grid: the prior's 5%-95% quantiles at evenly spaced probabilities
    grid = inspect.manifold_grid(vae, n=args.grid, low=0.05, high=0.95, spacing="quantile")
    images = grid.images  # (grid*grid, 1, 28, 28)
    plots.manifold(grid, title=f"decodes over a {args.grid}x{args.grid} grid of prior quantiles",
                   path=run.path("manifold_grid.png"))
    classifier = sample_quality.train_digit_classifier(
        train.images, train.labels, epochs=args.classifier_epochs, seed=args.seed
    )
    confident = sample_quality.classifier_log_prob(classifier, images) > math.log(0.5)  # a majority reading
    digits = sorted(set(classifier(images[confident]).argmax(-1).tolist()))
    return run.finish("manifold", {
        "epochs": args.epochs, "test_elbo_per_epoch": history.test_elbo,
        "test_elbo": history.test_elbo[-1] if len(history) else None,
        "digits_on_manifold": digits, "num_digits_on_manifold": len(digits),
        "confident_cells": float(confident.float().mean()),
    }, key="num_digits_on_manifold")


def _parser() -> argparse.ArgumentParser:
    p = experiment.parser(__doc__, epochs=10, hidden=(512, 256))
    p.add_argument("--grid", type=int, default=15, help="grid points per axis")
    p.add_argument("--points", type=int, default=2000, help="test digits tracked per epoch")
    p.add_argument("--classifier-epochs", type=int, default=2, help="epochs of the reading classifier")
    return p


if __name__ == "__main__":
    main(_parser().parse_args())
