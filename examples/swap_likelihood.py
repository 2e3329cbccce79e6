"""Swap the likelihood p(x|z): Bernoulli, continuous Bernoulli, Gaussian (fixed and learned scale), Laplace.

One architecture, one line changed per run (``likelihood=...``):

- ``Bernoulli`` on binarised MNIST (a fresh binarisation every epoch, a fixed one for test);
- ``ContinuousBernoulli``, ``Gaussian(scale=0.1)``, ``Gaussian(scale=None)`` (learned) and
  ``Laplace(scale=None)`` on the grey levels themselves (``binarize=None``).

Each run reports its test ELBO **on its own scale**: a log-probability mass for the
Bernoulli (binary data, at most 0) and a log-density for the others (continuous data, where
densities can exceed 1 and the ELBO can be positive). They are not comparable with each
other; the README explains why. As a common yardstick the script also reports the mean
squared error between each model's mean reconstruction and the grey test image.

Run::

    python examples/swap_likelihood.py --epochs 10
    python examples/swap_likelihood.py --epochs 1 --subset 500 --test-subset 200 --out /tmp/x

References:

1. Kingma, D. P. and Welling, M. (2014). Auto-Encoding Variational Bayes. ICLR.
2. Loaiza-Ganem, G. and Cunningham, J. P. (2019). The continuous Bernoulli: fixing a
   pervasive error in variational autoencoders. NeurIPS.
3. Theis, L., van den Oord, A. and Bethge, M. (2016). A note on the evaluation of
   generative models. ICLR (why discrete and continuous likelihoods do not compare).
"""

from __future__ import annotations

import argparse

import torch

from pyrovae import data, evaluate, likelihoods, plots
from pyrovae.cli import experiment
from pyrovae.models import build_vae
from pyrovae.train import fit


def _settings(gaussian_scale: float) -> dict[str, tuple[likelihoods.Likelihood, str | None]]:
    # name -> (likelihood, binarisation of the training data)
    return {
        "Bernoulli (binarised)": (likelihoods.Bernoulli(), "dynamic"),
        "ContinuousBernoulli": (likelihoods.ContinuousBernoulli(), None),
        f"Gaussian (scale {gaussian_scale:g})": (likelihoods.Gaussian(scale=gaussian_scale), None),
        "Gaussian (learned scale)": (likelihoods.Gaussian(scale=None), None),
        "Laplace (learned scale)": (likelihoods.Laplace(scale=None), None),
    }


def main(args: argparse.Namespace) -> dict:
    run = experiment.start(args)
    train, test = experiment.mnist_subset(args)
    grey = test.images  # (N_test, 1, 28, 28) in [0, 1]
    shown = grey[:10]
    rows, labels, results = [shown], ["input"], {}
    for name, (likelihood, binarize) in _settings(args.gaussian_scale).items():
        vae = build_vae(z_dim=args.z_dim, hidden=tuple(args.hidden))
        vae.likelihood = likelihood  # the one line that changes between runs
        fit(vae, train, test, epochs=args.epochs, batch_size=args.batch_size, binarize=binarize, seed=args.seed,
            progress=False, device="cpu")
        x_eval = data.binarize(grey, "static", seed=0) if binarize else grey
        recon, kl = evaluate.elbo_terms(vae, x_eval)  # each (N_test,)
        mse = float(((vae.reconstruct(x_eval) - grey) ** 2).flatten(1).sum(1).mean())
        learned = getattr(likelihood, "learned", False)  # Gaussian/Laplace with scale=None
        results[name] = {
            "test_elbo": float((recon - kl).mean()),
            "scale": "log-probability mass (binary data)" if binarize else "log-density (continuous data)",
            "test_recon": float(recon.mean()),
            "test_kl": float(kl.mean()),
            "recon_squared_error": mse,  # sum over pixels of (mean reconstruction - grey)^2, per image
            "learned_scale": float(likelihood.scale_for(grey).detach()) if learned else None,
        }
        print(f"{name}: test ELBO {results[name]['test_elbo']:.1f} nats, squared error {mse:.2f}")
        rows.append(vae.reconstruct(x_eval[:10]).clamp(0, 1))
        labels.append(name)
    plots.image_grid(torch.cat(rows), nrow=10, row_labels=labels, cell=0.6,
                     title="mean reconstruction of the same test digits under each likelihood",
                     path=run.path("swap_likelihood.png"))
    best = min(results, key=lambda k: results[k]["recon_squared_error"])
    return run.finish("swap_likelihood", {"epochs": args.epochs, "z_dim": args.z_dim, "results": results,
                                          "lowest_squared_error": best}, key="lowest_squared_error")


def _parser() -> argparse.ArgumentParser:
    p = experiment.parser(__doc__, epochs=10, z_dim=20, hidden=(400,))
    p.add_argument("--gaussian-scale", type=float, default=0.1, help="the fixed Gaussian's standard deviation")
    return p


if __name__ == "__main__":
    main(_parser().parse_args())
