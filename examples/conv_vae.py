"""Convolutional VAE against an MLP VAE with about the same number of parameters.

The convolutional encoder (two stride-2 convolutions, then a dense layer) and decoder (the
mirror image with transposed convolutions) come from :mod:`pyrovae.nets`. The MLP's hidden
width is chosen so that both models have about the same parameter count; everything else
(prior, Bernoulli likelihood, optimiser, epochs, data) is shared. The script reports the
test ELBO, the parameter counts and the training time per epoch, and draws samples and
reconstructions of both.

Run::

    python examples/conv_vae.py --epochs 10
    python examples/conv_vae.py --epochs 1 --subset 500 --test-subset 200 --out /tmp/x

References:

1. Kingma, D. P. and Welling, M. (2014). Auto-Encoding Variational Bayes. ICLR.
2. Radford, A., Metz, L. and Chintala, S. (2016). Unsupervised Representation Learning with
   Deep Convolutional Generative Adversarial Networks. ICLR.
3. Seed articles 000 and 002: the convolutional encoder and decoder of a VAE.
"""

from __future__ import annotations

import argparse
import math

import torch

from pyrovae import VAE, data, nets, plots
from pyrovae.cli import experiment
from pyrovae.train import fit

X_SHAPE = (1, 28, 28)


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def matching_mlp_width(target: int, z_dim: int) -> int:
    """Hidden width h of a one-hidden-layer MLP encoder + decoder with about ``target`` parameters.

    Encoder D*h + h + h*2z + 2z, decoder z*h + h + h*D + D, with D = prod(X_SHAPE).
    """
    d = math.prod(X_SHAPE)
    return max(1, round((target - d - 2 * z_dim) / (2 * d + 3 * z_dim + 2)))


def main(args: argparse.Namespace) -> dict:
    run = experiment.start(args)
    train, test = experiment.mnist_subset(args)
    conv = VAE(nets.ConvEncoder(X_SHAPE, args.z_dim), nets.ConvDecoder(args.z_dim, X_SHAPE))
    width = matching_mlp_width(count(conv), args.z_dim)
    mlp = VAE(nets.MLPEncoder(X_SHAPE, (width,), args.z_dim), nets.MLPDecoder(args.z_dim, (width,), X_SHAPE))
    x_test = data.binarize(test.images, "static", seed=0)[:10]  # (10, 1, 28, 28) for the picture
    results, rows, labels = {}, [x_test], ["input"]
    for name, vae in {"conv": conv, f"MLP (hidden {width})": mlp}.items():
        history = fit(vae, train, test, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                      progress=False, device="cpu")
        results[name] = {"parameters": count(vae), "test_elbo": history.test_elbo[-1] if len(history) else None,
                         "test_elbo_per_epoch": history.test_elbo,
                         "seconds_per_epoch": sum(history.seconds) / max(1, len(history))}
        print(f"{name}: {results[name]['parameters']} parameters, test ELBO {results[name]['test_elbo']}")
        rows += [vae.reconstruct(x_test), vae.sample(10)]
        labels += [f"{name.split(' ')[0]} recon", f"{name.split(' ')[0]} sample"]
    plots.image_grid(torch.cat(rows), nrow=10, row_labels=labels, path=run.path("conv_vae.png"),
                     title="test inputs, reconstructions and prior samples")
    gap = results["conv"]["test_elbo"] - results[f"MLP (hidden {width})"]["test_elbo"] if args.epochs else None
    return run.finish("conv_vae", {"epochs": args.epochs, "z_dim": args.z_dim, "results": results,
                                   "conv_minus_mlp_elbo": gap}, key="conv_minus_mlp_elbo")


def _parser() -> argparse.ArgumentParser:
    p = experiment.parser(__doc__, epochs=10, z_dim=20)
    return p


if __name__ == "__main__":
    main(_parser().parse_args())
