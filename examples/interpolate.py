"""Walk the latent space: morph a 3 into an 8, and add attribute vectors to digits.

A VAE is trained on MNIST; then

- **interpolation** (seed 001, Fig. 7): the posterior means of a test 3 and a test 8 are
  joined by a straight line and by a great-circle (spherical) path, and the codes along
  each are decoded. A small digit classifier reads each decode, so the switch from "3" to
  "8" along the path is measured, not just shown;
- **attribute vectors** (seed 000's "glasses" vector): the mean code of thick-stroked
  training digits minus that of thin-stroked ones (within each class), added in growing
  amounts to test digits' codes. The script reports how much ink the decodes gain and
  how often the classifier still reads the same digit.

Run::

    python examples/interpolate.py --epochs 10
    python examples/interpolate.py --epochs 1 --subset 500 --test-subset 200 --out /tmp/x

References:

1. White, T. (2016). Sampling Generative Networks. arXiv:1609.04468 (spherical
   interpolation, attribute vectors).
2. Seed article 001 ("Generative Models - Variational Autoencoders"), Fig. 7, and seed
   article 000 ("Intuitively Understanding Variational Autoencoders"), attribute vectors.
"""

from __future__ import annotations

import argparse

import torch

from pyrovae import data, inspect, plots
from pyrovae.cli import experiment
from pyrovae.evaluate import sample_quality
from pyrovae.models import build_vae
from pyrovae.train import fit

AMOUNTS = (-2.0, -1.0, 0.0, 1.0, 2.0, 3.0)  # multiples of the thickness vector


def main(args: argparse.Namespace) -> dict:
    run = experiment.start(args)
    train, test = experiment.mnist_subset(args)
    vae = build_vae(z_dim=args.z_dim, hidden=tuple(args.hidden))
    history = fit(vae, train, test, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, progress=False,
                  device="cpu")
    classifier = sample_quality.train_digit_classifier(
        train.images, train.labels, epochs=args.classifier_epochs, seed=args.seed
    )
    x_test = data.binarize(test.images, "static", seed=0)  # (N_test, 1, 28, 28)

    # morph a `source` digit into a `target` digit along two paths
    x0 = x_test[test.labels == args.source][0]
    x1 = x_test[test.labels == args.target][0]
    paths = {m: inspect.interpolate_inputs(vae, x0, x1, steps=args.steps, method=m) for m in ("linear", "spherical")}
    reads = {m: classifier(p).argmax(-1).tolist() for m, p in paths.items()}  # the digit seen at each step
    plots.labelled_grid(
        torch.cat(list(paths.values())),
        ncol=args.steps,
        row_labels=list(paths),
        col_labels=[f"'{d}'" for d in reads["linear"]],
        xlabel=f"t = 0 (a test {args.source}) ... 1 (a test {args.target}); above: the classifier's reading "
        "of the linear path",
        path=run.path("interpolate_morph.png"),
    )

    # the stroke-thickness attribute vector, from the training codes
    codes = inspect.encode_dataset(vae, data.binarize(train.images, "static", seed=0))
    vector = inspect.thickness_vector(codes.loc, train.images, train.labels)  # (z_dim,)
    shown = x_test[: args.attribute_digits]
    moved = inspect.apply_attribute(vae, shown, vector, AMOUNTS)  # (n * len(AMOUNTS), 1, 28, 28)
    ink = inspect.stroke_thickness(moved).reshape(len(shown), len(AMOUNTS))  # (n, A)
    kept = (classifier(moved).argmax(-1).reshape(len(shown), len(AMOUNTS)) == test.labels[: len(shown), None])
    plots.labelled_grid(moved[: 8 * len(AMOUNTS)], ncol=len(AMOUNTS), col_labels=[f"{a:+g} x thick" for a in AMOUNTS],
                        xlabel="test digits' codes plus multiples of the stroke-thickness vector, decoded",
                        path=run.path("interpolate_attribute.png"))
    zero = AMOUNTS.index(0.0)
    return run.finish(
        "interpolate",
        {
            "epochs": args.epochs,
            "z_dim": args.z_dim,
            "test_elbo": history.test_elbo[-1] if len(history) else None,
            "classifier_reading_along_path": reads,
            "ink_relative_to_unchanged": {
                f"{a:+g}": float((ink[:, i] / ink[:, zero]).mean()) for i, a in enumerate(AMOUNTS)
            },
            "same_digit_fraction": {f"{a:+g}": float(kept[:, i].float().mean()) for i, a in enumerate(AMOUNTS)},
        },
        key="ink_relative_to_unchanged",
    )


def _parser() -> argparse.ArgumentParser:
    p = experiment.parser(__doc__, epochs=10, z_dim=20, hidden=(512, 256))
    p.add_argument("--source", type=int, default=3, help="digit to start from")
    p.add_argument("--target", type=int, default=8, help="digit to end at")
    p.add_argument("--steps", type=int, default=10, help="decodes along each path")
    p.add_argument("--attribute-digits", type=int, default=100, help="test digits moved along the attribute vector")
    p.add_argument("--classifier-epochs", type=int, default=2, help="epochs of the reading classifier")
    return p


if __name__ == "__main__":
    main(_parser().parse_args())
