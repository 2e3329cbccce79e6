"""Batching in memory, on the device: no worker processes, no host-device copies per step."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import Tensor

from .._util.checks import positive_int
from .binarize import binarize, check_mode, check_unit_interval, seeded_generator
from .containers import ImageSet

__all__ = ["InMemoryLoader"]


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
        positive_int("batch_size", batch_size)
        check_mode(binarize)
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
            check_unit_interval(images)

        self.batch_size = batch_size
        self.shuffle = shuffle
        self.binarize = binarize
        self.drop_last = drop_last
        self.seed = seed
        self.labels = labels
        self.device = images.device
        # One generator for the loader's lifetime, so successive epochs differ but the
        # whole sequence of epochs is reproducible for a seed.
        self._generator = None if seed is None else seeded_generator(seed, images.device)
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
