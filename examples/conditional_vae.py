"""Conditional VAE on MNIST: generate the digit you ask for, and move one handwriting across digits.

The label y enters both p(x|z, y) and q(z|x, y) (:mod:`pyrovae.models.conditional`), so z only has
to hold the style. The script

- generates each digit 0-9 from fresh prior draws and checks with a small digit classifier
  that the generated image shows the digit that was asked for (accuracy);
- shows style transfer: test digits are encoded with their own label, and the same z is
  decoded with every label 0-9.

Run::

    python examples/conditional_vae.py --epochs 10
    python examples/conditional_vae.py --epochs 1 --subset 500 --test-subset 200 --out /tmp/x

References:

1. Sohn, K., Lee, H. and Yan, X. (2015). Learning Structured Output Representation using
   Deep Conditional Generative Models. NeurIPS.
2. Kingma, D. P. et al. (2014). Semi-Supervised Learning with Deep Generative Models. NeurIPS.
3. Seed article 000 ("Intuitively Understanding Variational Autoencoders"): conditional
   generation as the next step after the plain VAE.
"""

from __future__ import annotations

import argparse

import torch

from pyrovae import data, plots
from pyrovae.cli import experiment
from pyrovae.evaluate import sample_quality
from pyrovae.models import ConditionalVAE
from pyrovae.nets import ConditionalMLPDecoder, ConditionalMLPEncoder
from pyrovae.train import fit_conditional

NUM_CLASSES = 10  # digits


def main(args: argparse.Namespace) -> dict:
    run = experiment.start(args)
    train, test = experiment.mnist_subset(args)
    hidden = tuple(args.hidden)
    cvae = ConditionalVAE(
        ConditionalMLPEncoder((1, 28, 28), NUM_CLASSES, hidden, args.z_dim),
        ConditionalMLPDecoder(args.z_dim, NUM_CLASSES, tuple(reversed(hidden)), (1, 28, 28)),
    )
    train_elbo = fit_conditional(cvae, train.images, train.labels, epochs=args.epochs, batch_size=args.batch_size,
                                 seed=args.seed)
    x_test = data.binarize(test.images, "static", seed=0)  # (N_test, 1, 28, 28)
    test_elbo = float(cvae.elbo(x_test, test.labels).mean())

    # generate: every digit, args.per_digit times, from fresh z ~ p(z)
    wanted = torch.arange(NUM_CLASSES).repeat_interleave(args.per_digit)  # (10 * per_digit,)
    generated = cvae.generate(wanted)  # (10 * per_digit, 1, 28, 28)
    classifier = sample_quality.train_digit_classifier(
        train.images, train.labels, epochs=args.classifier_epochs, seed=args.seed
    )
    hits = classifier(generated).argmax(-1) == wanted
    shown = generated.reshape(NUM_CLASSES, args.per_digit, 1, 28, 28)[:, :10].flatten(0, 1)
    plots.image_grid(shown, nrow=min(10, args.per_digit), row_labels=[f"y={d}" for d in range(NUM_CLASSES)],
                     title="generated on request: row y, z ~ p(z)", path=run.path("conditional_generate.png"))

    # style transfer: the same z (one test digit's style) decoded with every label
    sources = x_test[: args.styles]
    transfer = cvae.style_transfer(sources, test.labels[: args.styles], torch.arange(NUM_CLASSES))  # (n, 10, 1, 28, 28)
    grid = torch.cat([sources.unsqueeze(1), transfer], dim=1).flatten(0, 1)  # input, then y = 0..9
    plots.image_grid(grid, nrow=NUM_CLASSES + 1, row_labels=[f"style {i + 1}" for i in range(len(sources))],
                     title="style transfer: input (left), then its z decoded with y = 0..9",
                     path=run.path("conditional_style_transfer.png"))
    return run.finish("conditional_vae", {
        "epochs": args.epochs, "z_dim": args.z_dim, "train_elbo_per_epoch": train_elbo, "test_elbo": test_elbo,
        "requested_digit_accuracy": float(hits.float().mean()),
        "requested_digit_accuracy_per_digit": [float(h.float().mean()) for h in hits.reshape(NUM_CLASSES, -1)],
    }, key="requested_digit_accuracy")


def _parser() -> argparse.ArgumentParser:
    p = experiment.parser(__doc__, epochs=10, z_dim=4, hidden=(512, 256))
    p.add_argument("--per-digit", type=int, default=100, help="generated images per digit (for the accuracy)")
    p.add_argument("--styles", type=int, default=6, help="test digits whose style is transferred")
    p.add_argument("--classifier-epochs", type=int, default=2, help="epochs of the checking classifier")
    return p


if __name__ == "__main__":
    main(_parser().parse_args())
