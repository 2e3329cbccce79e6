"""Two uses of a trained VAE beyond sampling: denoising and anomaly detection.

- **Denoising** (seeds 003 and 004). A denoising VAE (:class:`pyrovae.nets.NoisyEncoder`)
  sees inputs with a share of pixels flipped and is trained to reconstruct the clean digit.
  Noisy test digits are then reconstructed, by it and by a VAE trained on clean data only.
  The script reports the squared error to the clean digit before and after.
- **Anomaly detection** (seed 003). A VAE is trained without one digit class. The test set,
  all classes, is ranked by negative ELBO (and by reconstruction error); the ROC AUC says
  how well that ranking separates the held-out class from the digits the model knows.

Run::

    python examples/denoise_and_anomaly.py --epochs 10
    python examples/denoise_and_anomaly.py --epochs 1 --subset 500 --test-subset 300 --out /tmp/x

References:

1. Vincent, P. et al. (2008). Extracting and Composing Robust Features with Denoising
   Autoencoders. ICML.
2. Im, D. J. et al. (2017). Denoising Criterion for Variational Auto-Encoding Framework. AAAI.
3. An, J. and Cho, S. (2015). Variational Autoencoder based Anomaly Detection using
   Reconstruction Probability. SNU Data Mining Center.
4. Seed articles 003 ("Understanding Variational Autoencoders – for Mere Mortals") and 004.
"""

from __future__ import annotations

import argparse

import torch

from pyrovae import data, inspect, plots
from pyrovae.cli import experiment
from pyrovae.evaluate import sample_quality
from pyrovae.models import build_vae
from pyrovae.nets import NoisyEncoder
from pyrovae.train import fit


def _train(args, images, noisy: bool):
    vae = build_vae(z_dim=args.z_dim, hidden=tuple(args.hidden))
    if noisy:
        vae.encoder = NoisyEncoder(vae.encoder, "flip", args.noise)
    fit(vae, images, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, progress=False, device="cpu")
    return vae


def _squared_error(x: torch.Tensor, clean: torch.Tensor) -> float:
    return float((x - clean).flatten(1).pow(2).sum(1).mean())  # summed over pixels, mean over images


def main(args: argparse.Namespace) -> dict:
    run = experiment.start(args)
    train, test = experiment.mnist_subset(args)
    x_test = data.binarize(test.images, "static", seed=0)  # (N_test, 1, 28, 28)

    # denoising: flip a share of the pixels of binarised test digits
    noisy = inspect.corrupt(x_test, "flip", args.noise, seed=1)
    denoisers = {"denoising VAE": _train(args, train, noisy=True), "plain VAE": _train(args, train, noisy=False)}
    cleaned = {name: inspect.denoise(vae, noisy) for name, vae in denoisers.items()}  # each (N_test, 1, 28, 28)
    denoising = {"noise": f"flip {args.noise:.0%} of pixels", "error_noisy_input": _squared_error(noisy, x_test),
                 **{f"error_after_{name.replace(' ', '_')}": _squared_error(c, x_test) for name, c in cleaned.items()}}
    plots.image_grid(torch.cat([x_test[:10], noisy[:10], *(c[:10] for c in cleaned.values())]), nrow=10,
                     row_labels=["clean", "noisy", *cleaned], title="reconstructing noisy test digits",
                     path=run.path("denoise.png"))

    # anomaly detection: train without one class, score the whole test set
    known = train.labels != args.held_out
    detector = _train(args, train.images[known], noisy=False)
    scores = inspect.anomaly_scores(detector, x_test)
    is_anomaly = test.labels == args.held_out  # (N_test,)
    anomaly = {"held_out_digit": args.held_out, "auc_neg_elbo": sample_quality.roc_auc(scores.neg_elbo, is_anomaly),
               "auc_recon_error": sample_quality.roc_auc(scores.recon_error, is_anomaly),
               "held_out_share_of_test": float(is_anomaly.float().mean())}
    top = inspect.rank(scores.neg_elbo, k=20)
    anomaly["held_out_share_of_top_20"] = float(is_anomaly[top].float().mean())
    plots.image_grid(x_test[top], nrow=10, title=f"20 highest negative ELBOs (model never saw a {args.held_out})",
                     path=run.path("anomaly_top.png"))
    print(f"denoising: {denoising}")
    return run.finish("denoise_and_anomaly", {"epochs": args.epochs, "denoising": denoising, "anomaly": anomaly},
                      key="anomaly")


def _parser() -> argparse.ArgumentParser:
    p = experiment.parser(__doc__, epochs=10, z_dim=20, hidden=(512, 256))
    p.add_argument("--noise", type=float, default=0.1, help="share of pixels flipped")
    p.add_argument("--held-out", type=int, default=0, help="digit class left out of training (the anomaly)")
    return p


if __name__ == "__main__":
    main(_parser().parse_args())
