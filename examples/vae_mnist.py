"""The basic VAE on MNIST, trained by a hand-written SVI loop over ``vae.model`` and ``vae.guide``.

``pyrovae.train.fit`` does this for you; this script shows that the model and guide are
ordinary Pyro functions that plain ``SVI`` + ``Trace_ELBO`` + ``pyro.optim.Adam`` trains.
It prints the test ELBO (per example, nats, statically binarised test set) after every
epoch and draws samples and reconstructions.

Run::

    python examples/vae_mnist.py --epochs 10            # full MNIST
    python examples/vae_mnist.py --epochs 1 --subset 500 --test-subset 200 --out /tmp/x

References:

1. Kingma, D. P. and Welling, M. (2014). Auto-Encoding Variational Bayes. ICLR.
2. Pyro's VAE tutorial, https://pyro.ai/examples/vae.html.
"""

from __future__ import annotations

import argparse

from pyro.infer import SVI, Trace_ELBO
from pyro.optim import Adam

from pyrovae import VAE, data, evaluate, likelihoods, nets, plots, priors
from pyrovae.cli import experiment


def main(args: argparse.Namespace) -> dict:
    run = experiment.start(args)
    train, test = experiment.mnist_subset(args)
    x_test = data.binarize(test.images, "static", seed=0)  # (N_test, 1, 28, 28), fixed draw

    vae = VAE(
        encoder=nets.MLPEncoder(x_shape=(1, 28, 28), hidden=(400,), z_dim=args.z_dim),
        decoder=nets.MLPDecoder(z_dim=args.z_dim, hidden=(400,), x_shape=(1, 28, 28)),
        prior=priors.StandardNormal(args.z_dim),
        likelihood=likelihoods.Bernoulli(),
    )
    svi = SVI(vae.model, vae.guide, Adam({"lr": args.lr}), Trace_ELBO())
    loader = data.InMemoryLoader(train.images, args.batch_size, binarize="dynamic", seed=args.seed)

    test_elbos = []
    for epoch in range(1, args.epochs + 1):
        total = 0.0
        for x in loader:  # (batch, 1, 28, 28), a fresh binarisation every epoch
            total += svi.step(x, num_data=loader.num_data) * len(x) / loader.num_data
        test_elbo = float(evaluate.elbo(vae, x_test).mean())
        test_elbos.append(test_elbo)
        print(f"epoch {epoch}: train ELBO {-total / loader.num_data:.2f}  test ELBO {test_elbo:.2f}")

    plots.image_grid(vae.sample(64), nrow=16, title="samples from p(z), decoded (mean of p(x|z))",
                     path=run.path("vae_mnist_samples.png"))
    plots.reconstructions(x_test[:10], vae.reconstruct(x_test[:10]), path=run.path("vae_mnist_reconstructions.png"))
    return run.finish("vae_mnist", {"epochs": args.epochs, "z_dim": args.z_dim, "test_elbo_per_epoch": test_elbos,
                                    "test_elbo": test_elbos[-1] if test_elbos else None}, key="test_elbo")


def _parser() -> argparse.ArgumentParser:
    p = experiment.parser(__doc__, epochs=10, z_dim=50)
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    return p


if __name__ == "__main__":
    main(_parser().parse_args())
