"""The DataLoader path, for data that does not fit in memory: binarisation per item
(static, stable per index) or per batch (dynamic, in the collate function).

For data that fits in memory, prefer :class:`pyrovae.data.InMemoryLoader`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, default_collate, get_worker_info

from .._util.checks import positive_int
from .binarize import binarize, check_mode, check_unit_interval, seeded_generator

__all__ = ["BinarizedDataset", "make_dataloader"]



def _index_seed(seed: int, index: int) -> int:
    # A well-mixed 63-bit seed per (seed, index): stable across processes and runs, and
    # without the collisions of e.g. seed * K + index.
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(index)]).generate_state(
        1, np.uint64
    )
    return int(state[0] >> np.uint64(1))  # torch seeds must fit in int64


def _split_item(item: Any) -> tuple[Any, tuple]:
    if isinstance(item, (tuple, list)):
        return item[0], tuple(item[1:])
    return item, ()


class BinarizedDataset(Dataset):
    """
    Wrap a map-style dataset whose items are images, or tuples ``(image, label, ...)``,
    and binarise the image of every item.

    ``"static"`` draws are deterministic per index: item ``i`` is drawn with a generator
    seeded from ``(seed, i)``, so the binarised data set is fixed however it is shuffled
    or split across workers. ``"dynamic"`` draws from the global RNG (which the
    DataLoader seeds per worker). For dynamic binarisation of whole batches, prefer
    :func:`make_dataloader`, which draws in the collate function.

    :param dataset: a map-style dataset; images are float tensors in [0, 1].
    :param mode: ``"dynamic"``, ``"static"`` or ``None``.
    :param seed: seed for ``"static"`` (``0`` if ``None``).
    """

    def __init__(self, dataset: Dataset, mode: str | None = "static", seed: int | None = None):
        check_mode(mode)
        self.dataset = dataset
        self.mode = mode
        self.seed = 0 if seed is None else seed

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        item = self.dataset[index]
        image, rest = _split_item(item)
        image = torch.as_tensor(image)
        if self.mode == "static":
            check_unit_interval(image)
            gen = seeded_generator(_index_seed(self.seed, index), image.device)
            image = torch.bernoulli(image, generator=gen)
        else:
            image = binarize(image, self.mode)
        return (image, *rest) if isinstance(item, (tuple, list)) else image


class _BinarizingCollate:
    """Collate a batch, then draw a dynamic binarisation of the images, batch-wide."""

    def __init__(self, collate_fn: Callable[[list], Any], seed: int | None):
        self.collate_fn = collate_fn
        self.seed = seed
        self._generator: torch.Generator | None = None

    def __call__(self, batch: list) -> Any:
        out = self.collate_fn(batch)
        x, rest = _split_item(out)
        x = binarize(x, "dynamic", generator=self._main_process_generator(x.device))
        return (x, *rest) if isinstance(out, (tuple, list)) else x

    def _main_process_generator(self, device: torch.device) -> torch.Generator | None:
        # In a worker, torch has already seeded the global RNG from the DataLoader's
        # generator (seeded by make_dataloader), so the global RNG is reproducible and
        # differs across workers. In the main process, use our own seeded generator.
        if self.seed is None or get_worker_info() is not None:
            return None
        if self._generator is None:
            self._generator = seeded_generator(self.seed, device)
        return self._generator


def make_dataloader(
    dataset: Dataset,
    batch_size: int,
    *,
    shuffle: bool = True,
    binarize: str | None = "dynamic",
    num_workers: int = 0,
    seed: int | None = None,
    **kwargs: Any,
) -> DataLoader:
    """
    A :class:`torch.utils.data.DataLoader` over any map-style dataset of images (or of
    ``(image, label, ...)`` tuples) that binarises the images.

    ``"dynamic"`` binarisation is drawn per batch in the collate function (so in the
    workers, when ``num_workers > 0``); ``"static"`` is drawn per item, deterministically
    per index (see :class:`BinarizedDataset`); ``None`` leaves the images as they are.
    Batches stay on the CPU; move them to the device in the training loop (use
    ``pin_memory=True`` for faster copies to a GPU).

    :param dataset: map-style dataset; images are float tensors in [0, 1].
    :param int batch_size: batch size, at least 1.
    :param bool shuffle: reshuffle every epoch.
    :param binarize: ``"dynamic"``, ``"static"`` or ``None``.
    :param int num_workers: DataLoader worker processes.
    :param seed: seeds the shuffling and the binarisation; ``None`` uses the global RNG.
    :param kwargs: passed to :class:`~torch.utils.data.DataLoader` (e.g. ``drop_last``,
        ``pin_memory``, ``collate_fn``, which runs before the binarisation).
    """
    positive_int("batch_size", batch_size)
    check_mode(binarize)
    collate_fn = kwargs.pop("collate_fn", None) or default_collate
    if binarize == "static":
        dataset = BinarizedDataset(dataset, "static", seed)
    elif binarize == "dynamic":
        collate_fn = _BinarizingCollate(collate_fn, seed)
    if seed is not None and "generator" not in kwargs:
        kwargs["generator"] = seeded_generator(seed, "cpu")
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        collate_fn=collate_fn,
        **kwargs,
    )
