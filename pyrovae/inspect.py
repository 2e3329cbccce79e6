"""Posterior inspection: latent codes of a data set and their 2-D projections.

Computation only; :mod:`pyrovae.plots` draws the results.

References:

1. Kingma, D. P. and Welling, M. (2014). Auto-Encoding Variational Bayes. ICLR (Fig. 4,
   the learned 2-D manifold).
2. Pearson, K. (1901). On lines and planes of closest fit to systems of points in space.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import torch

from .evaluate import _batches, model_device
from .model import VAE


@dataclass
class LatentCodes:
    """The guide's output for a data set."""

    loc: torch.Tensor  # (N, z_dim) posterior means
    scale: torch.Tensor  # (N, z_dim) posterior standard deviations
    labels: torch.Tensor | None  # (N,) or None


@torch.no_grad()
def encode_dataset(
    vae: VAE, x: torch.Tensor | Iterable, labels: torch.Tensor | None = None, batch_size: int = 1000
) -> LatentCodes:
    """Encode a data set to the means and scales of q(z|x), in batches on the model's device.

    :param vae: the model.
    :param x: ``(N, *x_shape)`` or an iterable of batches.
    :param labels: optional ``(N,)`` labels, kept alongside.
    :param batch_size: batch size.
    :returns: :class:`LatentCodes` on the CPU.
    """
    device = model_device(vae)
    locs, scales = [], []
    for xb in _batches(x, batch_size):
        loc, scale = vae.encoder(xb.to(device))  # each (b, z_dim)
        locs.append(loc.cpu())
        scales.append(scale.cpu())
    return LatentCodes(torch.cat(locs), torch.cat(scales), None if labels is None else labels.cpu())


def pca(z: torch.Tensor, k: int = 2) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Project rows of ``z`` onto their top ``k`` principal components.

    :param z: ``(N, D)``.
    :param k: number of components.
    :returns: ``(projected (N, k), components (k, D), mean (D,))``.
    """
    if z.shape[1] <= k:
        return z, torch.eye(z.shape[1], dtype=z.dtype), torch.zeros(z.shape[1], dtype=z.dtype)
    mean = z.mean(0)  # (D,)
    centred = z - mean
    _, _, vt = torch.linalg.svd(centred, full_matrices=False)  # vt: (D, D)
    components = vt[:k]  # (k, D)
    return centred @ components.T, components, mean


def project_2d(z: torch.Tensor, method: str = "pca") -> torch.Tensor:
    """Map latent means ``(N, D)`` to 2-D for a picture: as is for D = 2, else PCA or t-SNE.

    :param z: ``(N, D)``.
    :param method: ``"pca"`` or ``"tsne"`` (needs scikit-learn).
    """
    if z.shape[1] <= 2:
        return z
    if method == "pca":
        return pca(z, 2)[0]
    if method == "tsne":
        try:
            from sklearn.manifold import TSNE
        except ImportError as e:  # pragma: no cover - optional dependency
            raise ImportError("method='tsne' needs scikit-learn: pip install scikit-learn") from e
        return torch.as_tensor(TSNE(2, init="pca", random_state=0).fit_transform(z.numpy()), dtype=z.dtype)
    raise ValueError(f"unknown projection {method!r}; expected 'pca' or 'tsne'")
