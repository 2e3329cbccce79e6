"""Small MNIST VAEs trained once per test session, shared by the evaluation, inspection and
plot tests (a few seconds each on two CPU cores)."""

from __future__ import annotations

import functools

import torch

from pyrovae import data
from pyrovae.models import build_vae
from pyrovae.train import fit


@functools.cache
def trained_vae(z_dim: int = 2, n_train: int = 2000, epochs: int = 3, seed: int = 0):
    """(vae, x_test binarised (500, 1, 28, 28), y_test (500,)) for a 784-128-z_dim MLP VAE."""
    train, test = data.load_mnist()
    torch.manual_seed(seed)
    vae = build_vae(z_dim=z_dim, hidden=(128,))
    fit(vae, train.images[:n_train], epochs=epochs, batch_size=64, lr=3e-3, device="cpu", seed=seed, progress=False)
    x_test = data.binarize(test.images[:500], "static", seed=0)
    return vae.eval(), x_test, test.labels[:500]
