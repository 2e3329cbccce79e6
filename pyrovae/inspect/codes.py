"""Posterior inspection: latent codes of a data set, their 2-D projections, snapshots of
them during training, and decodes of samples and posterior draws.

Computation only; :mod:`pyrovae.plots` draws the results.

References:

1. Kingma, D. P. and Welling, M. (2014). Auto-Encoding Variational Bayes. ICLR (Fig. 4,
   the learned 2-D manifold).
2. Pearson, K. (1901). On lines and planes of closest fit to systems of points in space.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

from .._util.checks import one_of, positive_int
from ..evaluate.posterior import encode_all
from ..models import VAE
from ..models.validation import check_inputs

__all__ = ["PROJECTIONS", "LatentCodes", "LatentSnapshots", "encode_dataset", "pca", "posterior_decodes", "project_2d"]

#: The 2-D projections :func:`project_2d` knows.
PROJECTIONS = ("pca", "tsne")


@dataclass
class LatentCodes:
    """The guide's posterior means and standard deviations for a data set."""

    loc: torch.Tensor  # (N, z_dim) posterior means E_q[z|x]
    scale: torch.Tensor  # (N, z_dim) posterior standard deviations (0 for an autoencoder)
    labels: torch.Tensor | None  # (N,) or None
    kind: str = "normal"  # how loc and scale were obtained (pyrovae.evaluate.posterior.GUIDE_KINDS)


@torch.no_grad()
def encode_dataset(
    vae: VAE, x: torch.Tensor | Iterable, labels: torch.Tensor | None = None, batch_size: int = 1000
) -> LatentCodes:
    """Encode a data set to the means and standard deviations of q(z|x), in batches on the
    model's device (:func:`pyrovae.evaluate.posterior.encode_all`: a flow guide's own
    moments, an autoencoder's codes).

    :param vae: the model.
    :param x: ``(N, *x_shape)`` or an iterable of batches.
    :param labels: optional ``(N,)`` labels, kept alongside.
    :param batch_size: batch size.
    :returns: :class:`LatentCodes` on the CPU.
    :raises TypeError: for data that are not a tensor or an iterable of batches.
    :raises ValueError: for bad data (:func:`~pyrovae.models.validation.check_data`, for the
        encoder), labels of another length, or a bad ``batch_size``.
    """
    if labels is not None and isinstance(x, torch.Tensor) and len(labels) != len(x):
        raise ValueError(f"{len(x)} inputs but {len(labels)} labels; pass one label per input")
    summary = encode_all(vae, x, batch_size)
    return LatentCodes(summary.loc.cpu(), summary.scale.cpu(), None if labels is None else labels.cpu(), summary.kind)


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
    one_of("projection", method, PROJECTIONS)
    if z.shape[1] <= 2:
        return z
    if method == "pca":
        return pca(z, 2)[0]
    try:
        from sklearn.manifold import TSNE
    except ImportError as e:  # pragma: no cover - optional dependency
        raise ImportError("method='tsne' needs scikit-learn: pip install scikit-learn") from e
    return torch.as_tensor(TSNE(2, init="pca", random_state=0).fit_transform(z.numpy()), dtype=z.dtype)


class LatentSnapshots:
    """A :func:`pyrovae.fit` callback that stores the projected posterior means of a fixed
    set of inputs after every epoch (seed 001, Fig. 8).

    Example::

        snaps = LatentSnapshots(test.images[:2000], test.labels[:2000])
        snaps.record(0, vae)                    # before training
        fit(vae, train, epochs=5, batch_size=128, callbacks=[snaps])
        plots.latent_snapshots(snaps)

    Each epoch is projected on its own (PCA axes may flip sign between epochs).

    :param x: inputs ``(N, *x_shape)``, as the model sees data.
    :param labels: optional ``(N,)`` labels for colour.
    :param method: ``"pca"`` or ``"tsne"`` for ``z_dim > 2``.
    :param every: record every ``every`` epochs.
    """

    def __init__(
        self, x: torch.Tensor, labels: torch.Tensor | None = None, method: str = "pca", every: int = 1
    ) -> None:
        self.x, self.labels, self.method = x, labels, one_of("projection", method, PROJECTIONS)
        self.every = positive_int("every", every)
        self.epochs: list[int] = []
        self.points: list[torch.Tensor] = []  # each (N, 2)
        self.axis_labels = ("z[0]", "z[1]")  # becomes the projection's axes for z_dim > 2

    def record(self, epoch: int, vae: VAE) -> None:
        """Encode the inputs now and store their projected means under ``epoch``."""
        was_training = vae.training
        vae.eval()
        codes = encode_dataset(vae, self.x)
        vae.train(was_training)
        self.epochs.append(int(epoch))
        self.points.append(project_2d(codes.loc, self.method))
        if codes.loc.shape[1] > 2:
            self.axis_labels = ("PC 1", "PC 2") if self.method == "pca" else ("t-SNE 1", "t-SNE 2")

    def __call__(self, epoch: int, vae: VAE, history=None) -> None:
        if epoch % self.every == 0:
            self.record(epoch, vae)


@torch.no_grad()
def posterior_decodes(vae: VAE, x: torch.Tensor, num_samples: int = 8) -> torch.Tensor:
    """Decode several draws z ~ q(z|x) of the same inputs: "even for the same input … the
    encoding will somewhat vary" (seed 000).

    :param vae: the model.
    :param x: ``(b, *x_shape)`` or one input.
    :param num_samples: draws per input.
    :returns: ``(b, num_samples, *x_shape)`` decoded means.
    :raises ValueError: for bad inputs (:func:`~pyrovae.models.validation.check_inputs`) or ``num_samples``.
    """
    positive_int("num_samples", num_samples)
    z = vae.encode(check_inputs(vae, x)).sample((num_samples,))  # (S, b, z_dim)
    return vae.decode_mean(z).transpose(0, 1)
