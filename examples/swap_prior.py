"""Swap the prior p(z): standard normal, mixture of Gaussians, VampPrior, and your own.

The same encoder/decoder recipe is trained with four priors:

- ``priors.StandardNormal(z_dim)``;
- ``priors.MixtureOfGaussians(z_dim, 10)``, means, scales and weights learned;
- ``priors.VampPrior(encoder, K, x_shape)``, a mixture of the guide's posteriors at K
  learned pseudo-inputs;
- a **user-written** heavy-tailed prior, a Student-t built in this script from
  ``pyro.distributions``. Plugging in your own prior takes three lines::

      prior = dist.StudentT(3.0, torch.zeros(z_dim), torch.ones(z_dim)).to_event(1)
      vae = VAE(encoder, decoder, prior=prior)     # any distribution with event_shape (z_dim,)
      fit(vae, train, test, epochs=10, batch_size=100)

For each, the test ELBO and the importance-sampled log p(x) (Burda et al. 2016) are
reported, in nats per image. Where KL(q‖p) has no closed form (all but the standard
normal) the ELBO uses a Monte Carlo KL.

Run::

    python examples/swap_prior.py --epochs 10
    python examples/swap_prior.py --epochs 1 --subset 500 --test-subset 100 --ll-samples 20 --out /tmp/x

References:

1. Kingma, D. P. and Welling, M. (2014). Auto-Encoding Variational Bayes. ICLR.
2. Tomczak, J. M. and Welling, M. (2018). VAE with a VampPrior. AISTATS.
3. Dilokthanakul, N. et al. (2016). Deep Unsupervised Clustering with Gaussian Mixture
   Variational Autoencoders. arXiv:1611.02648.
4. Burda, Y., Grosse, R. and Salakhutdinov, R. (2016). Importance Weighted Autoencoders. ICLR.
"""

from __future__ import annotations

import argparse

import pyro.distributions as dist
import torch

from pyrovae import VAE, data, evaluate, nets, plots, priors
from pyrovae.cli import experiment
from pyrovae.train import fit

X_SHAPE = (1, 28, 28)


def _prior(name: str, encoder: nets.MLPEncoder, z_dim: int, vamp_components: int):
    if name == "StandardNormal":
        return priors.StandardNormal(z_dim)
    if name == "MixtureOfGaussians":
        return priors.MixtureOfGaussians(z_dim, 10)
    if name == "VampPrior":
        return priors.VampPrior(encoder, vamp_components, X_SHAPE)
    # the user-written prior: any Pyro distribution with event_shape (z_dim,)
    return dist.StudentT(3.0, torch.zeros(z_dim), torch.ones(z_dim)).to_event(1)


def main(args: argparse.Namespace) -> dict:
    run = experiment.start(args)
    train, test = experiment.mnist_subset(args)
    x_test = data.binarize(test.images, "static", seed=0)  # (N_test, 1, 28, 28)
    results, rows = {}, []
    names = ["StandardNormal", "MixtureOfGaussians", "VampPrior", "Student-t (user-written)"]
    for name in names:
        encoder = nets.MLPEncoder(X_SHAPE, tuple(args.hidden), args.z_dim)
        decoder = nets.MLPDecoder(args.z_dim, tuple(reversed(args.hidden)), X_SHAPE)
        vae = VAE(encoder, decoder, prior=_prior(name, encoder, args.z_dim, args.vamp_components))
        fit(vae, train, test, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, progress=False,
            device="cpu")
        recon, kl = evaluate.elbo_terms(vae, x_test, num_samples=args.kl_samples)  # each (N_test,)
        log_px, stderr = evaluate.log_likelihood(vae, x_test[: args.ll_examples], num_samples=args.ll_samples)
        results[name] = {
            "test_elbo": float((recon - kl).mean()),
            "test_recon": float(recon.mean()),
            "test_kl": float(kl.mean()),
            "kl_analytic": evaluate.kl_is_analytic(vae),
            "log_px": float(log_px.mean()),
            "log_px_is_stderr": float(stderr.mean()),
            "log_px_examples": len(log_px),
            "log_px_samples": args.ll_samples,
        }
        print(f"{name}: test ELBO {results[name]['test_elbo']:.2f}, log p(x) {results[name]['log_px']:.2f}")
        rows.append(vae.sample(12))
    plots.image_grid(torch.cat(rows), nrow=12, row_labels=names, title="samples z ~ p(z), decoded, for each prior",
                     path=run.path("swap_prior.png"))
    best = max(results, key=lambda k: results[k]["log_px"])
    return run.finish("swap_prior", {"epochs": args.epochs, "z_dim": args.z_dim, "results": results,
                                     "best_log_px": best}, key="best_log_px")


def _parser() -> argparse.ArgumentParser:
    p = experiment.parser(__doc__, epochs=10, z_dim=10, hidden=(400,))
    p.add_argument("--vamp-components", type=int, default=100, help="VampPrior pseudo-inputs")
    p.add_argument("--kl-samples", type=int, default=10, help="z draws per image for a Monte Carlo KL")
    p.add_argument("--ll-examples", type=int, default=1000, help="test images for log p(x)")
    p.add_argument("--ll-samples", type=int, default=500, help="importance samples per image for log p(x)")
    return p


if __name__ == "__main__":
    main(_parser().parse_args())
