"""Autoencoder against VAE: the same 2-D bottleneck, with and without a distribution on the code.

The plain autoencoder is a Pyro model with a point-mass (``Delta``) guide and the ``"z"``
site masked, so it optimises reconstruction only (:class:`pyrovae.models.Autoencoder`).
The VAE is the same encoder and decoder with a Normal guide and the KL term. Both are
trained identically; then

- their latent maps (test-set codes coloured by digit) are drawn side by side, with random
  draws from each model's sampling distribution on top;
- random draws are decoded: from N(0, I) for the VAE, and for the autoencoder from a
  Gaussian fitted to its own training codes (the fairest Gaussian it could have);
- the gaps are measured: the fraction of draws farther from every training code than 99% of
  training codes are from their nearest neighbour, the log-probability a small digit
  classifier gives its most likely class for each decoded draw, and the distance from each
  decoded draw to its nearest training image.

Run::

    python examples/ae_vs_vae.py --epochs 10
    python examples/ae_vs_vae.py --epochs 1 --subset 500 --test-subset 200 --out /tmp/x

References:

1. Kingma, D. P. and Welling, M. (2014). Auto-Encoding Variational Bayes. ICLR.
2. Seed articles 000 ("Intuitively Understanding Variational Autoencoders") and 003
   ("Understanding Variational Autoencoders – for Mere Mortals"): the gaps in an AE's
   latent space, and the 2-D latent maps.
"""

from __future__ import annotations

import argparse

import pyro.distributions as dist
import torch

from pyrovae import VAE, data, evaluate, inspect, nets, plots
from pyrovae.cli import experiment
from pyrovae.evaluate import sample_quality
from pyrovae.models import Autoencoder
from pyrovae.train import fit

Z_DIM = 2  # a 2-D bottleneck, so the latent map needs no projection


def _pair(hidden: tuple[int, ...]) -> tuple[nets.MLPEncoder, nets.MLPDecoder]:
    return nets.MLPEncoder((1, 28, 28), hidden, Z_DIM), nets.MLPDecoder(Z_DIM, tuple(reversed(hidden)), (1, 28, 28))


def main(args: argparse.Namespace) -> dict:
    run = experiment.start(args)
    train, test = experiment.mnist_subset(args)
    hidden = tuple(args.hidden)
    models = {"autoencoder": Autoencoder(*_pair(hidden)), "VAE": VAE(*_pair(hidden))}
    classifier = sample_quality.train_digit_classifier(
        train.images, train.labels, epochs=args.classifier_epochs, seed=args.seed
    )
    x_test = data.binarize(test.images, "static", seed=0)  # (N_test, 1, 28, 28)
    reference = train.images[: args.reference]  # (M, 1, 28, 28) training images for nearest distances

    numbers: dict = {"epochs": args.epochs, "num_draws": args.draws}
    fig = plots.new_figure((11, 4.8))
    axes = fig.subplots(1, 2)
    samples = []
    for ax, (name, model) in zip(axes, models.items()):
        fit(model, train, test, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, progress=False,
            device="cpu")
        codes = inspect.encode_dataset(model, train.images[: args.reference]).loc  # (M, 2)
        if isinstance(model, Autoencoder):
            # the AE has no prior: give it the Gaussian that matches its own codes
            sampler = dist.MultivariateNormal(codes.mean(0), torch.cov(codes.T) + 1e-6 * torch.eye(Z_DIM))
        else:
            sampler = model.prior()
        draws = sampler.sample((args.draws,))  # (draws, 2)
        decoded = model.decode_mean(draws)  # (draws, 1, 28, 28)
        far, threshold = sample_quality.far_fraction(draws, codes)
        numbers[name] = {
            "test_recon_log_lik": float(evaluate.elbo_terms(model, x_test).recon.mean()),  # E_q[log p(x|z)]
            "far_fraction": far,
            "far_threshold": threshold,
            "classifier_log_prob": float(sample_quality.classifier_log_prob(classifier, decoded).mean()),
            "nearest_train_distance": float(sample_quality.nearest_distance(decoded, reference).mean()),
        }
        test_codes = inspect.encode_dataset(model, test.images, test.labels)
        plots.latent_scatter(test_codes.loc, test_codes.labels, ax=ax, max_points=5000,
                             title=f"{name}: test codes; x = draws ({100 * far:.0f}% far from data)")
        ax.scatter(draws[:200, 0], draws[:200, 1], marker="x", c="k", s=12, linewidths=0.8)
        samples.append(decoded[:16])
    plots.save(fig, run.path("ae_vs_vae_latent.png"), dpi=80)  # many points: keep the PNG small
    plots.image_grid(torch.cat(samples), nrow=16, row_labels=list(models), path=run.path("ae_vs_vae_samples.png"),
                     title="decoded random draws")
    numbers["classifier_note"] = "log-probability of the most likely class; 0 = a confident digit, -2.30 = uniform"
    return run.finish("ae_vs_vae", numbers, key="VAE")


def _parser() -> argparse.ArgumentParser:
    p = experiment.parser(__doc__, epochs=10, hidden=(512, 256))
    p.add_argument("--draws", type=int, default=2000, help="random draws decoded and measured")
    p.add_argument("--reference", type=int, default=10000, help="training images/codes to measure distances against")
    p.add_argument("--classifier-epochs", type=int, default=2, help="epochs of the digit classifier")
    return p


if __name__ == "__main__":
    main(_parser().parse_args())
