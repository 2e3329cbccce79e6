"""Data sources by name or path: what ``pyrovae train --data SOURCE`` reads.

:func:`load_source` turns a SOURCE into a :class:`DataSource`: float32 training and test
tensors ``(N, *x_shape)``, labels where the source has them, and a JSON-able ``spec`` that
loads the same data again (the checkpoint keeps it, so ``pyrovae evaluate`` scores the same
test set). A SOURCE is

- ``mnist`` (the default; :func:`~pyrovae.data.load_mnist`, offline-capable);
- ``fashion-mnist``, ``kmnist`` or ``cifar10``: torchvision's data sets, read from
  ``root`` or downloaded there; offline, the error names the files and the folder;
- a ``.npy``, ``.npz`` or ``.pt`` file: images ``(N, C, H, W)``, ``(N, H, W)`` or
  ``(N, H, W, C)`` (``uint8`` is scaled to [0, 1]), or a table ``(N, D)``; ``.npz`` and
  ``.pt`` may hold a dict with ``x_train``/``x_test`` (and ``y_train``/``y_test``) for a given
  split, or ``x``/``images`` and ``y``/``labels``;
- a folder of PNG/JPEG images (:mod:`pyrovae.data.image_folder`), of one size or resized to
  ``image_size``; images in sub-folders are labelled by sub-folder.

A source without a split of its own is split at random, ``test_fraction`` of it held out,
with a fixed ``split_seed``. Tables are standardised per column with the training split's
mean and standard deviation (kept in the spec), unless they are binary.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .errors import DataSourceError
from .image_folder import IMAGE_SUFFIXES, read_image_folder

__all__ = ["NAMED", "TENSOR_SUFFIXES", "DataSource", "load_source"]

#: file suffixes read as tensors
TENSOR_SUFFIXES = (".npy", ".npz", ".pt", ".pth")

_IDX_FILES = ("train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and "
              "t10k-labels-idx1-ubyte.gz")

#: torchvision data sets by name: (class, where its files go under root, which files)
TORCHVISION = {
    "fashion-mnist": ("FashionMNIST", "FashionMNIST/raw", _IDX_FILES),
    "kmnist": ("KMNIST", "KMNIST/raw", _IDX_FILES),
    "cifar10": ("CIFAR10", ".", "cifar-10-python.tar.gz (or the cifar-10-batches-py/ folder it unpacks to)"),
}

#: every SOURCE that is a name, not a path
NAMED = ("mnist", *TORCHVISION)


@dataclasses.dataclass(eq=False, repr=False)
class DataSource:
    """A data set split into training and test data."""

    train: Tensor  # (N, *x_shape) float32
    test: Tensor  # (M, *x_shape) float32
    train_labels: Tensor | None  # (N,) int64, or None when the source has no labels
    test_labels: Tensor | None  # (M,)
    kind: str  # "images" ((C, H, W) points) or "table" ((D,) points)
    spec: dict[str, Any]  # JSON-able keywords of load_source that load this data again
    notes: list[str] = dataclasses.field(default_factory=list)  # what was read and inferred
    classes: list[str] | None = None  # the name of each label index (a folder's sub-folders), if known

    @property
    def x_shape(self) -> tuple[int, ...]:
        return tuple(self.train.shape[1:])

    @property
    def binary(self) -> bool:
        """Every value of the training data is 0 or 1."""
        return bool(((self.train == 0) | (self.train == 1)).all())

    @property
    def unit_interval(self) -> bool:
        """Every training value lies in [0, 1]."""
        return bool(self.train.min() >= 0) and bool(self.train.max() <= 1)

    def describe(self) -> str:
        what = (
            "binary" if self.binary else ("grey" if self.x_shape[0] == 1 else "colour") if self.kind == "images" else ""
        )
        shape = "x".join(map(str, self.x_shape))
        kind = f"{what} {shape} images" if self.kind == "images" else f"table of {self.x_shape[0]} columns"
        return f"{self.spec['source']}: {kind}, {len(self.train)} training and {len(self.test)} test points"


def _images(x: Tensor, name: str, notes: list[str]) -> Tensor:
    """``(N, H, W)``, ``(N, C, H, W)`` or ``(N, H, W, C)`` -> float ``(N, C, H, W)`` in its own range."""
    if x.dim() == 3:
        x = x[:, None]  # (N, 1, H, W)
    elif x.shape[1] not in (1, 3) and x.shape[-1] in (1, 3):
        notes.append(f"{name}: read {tuple(x.shape)} as channels-last images")
        x = x.permute(0, 3, 1, 2)  # (N, C, H, W)
    if x.shape[1] not in (1, 3):
        raise DataSourceError(f"{name}: images need 1 (grey) or 3 (colour) channels, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        lo, hi = int(x.min()), int(x.max())
        if lo < 0 or hi > 255:
            raise DataSourceError(f"{name}: integer images must hold 0..255 grey levels (or 0/1), got {lo}..{hi}")
        return x.float() if hi <= 1 else x.float() / 255.0  # 0/1 stays binary; else 8-bit grey levels
    x = x.float()
    if float(x.min()) >= 0 and 1 < float(x.max()) <= 255:
        notes.append(f"{name}: values up to {float(x.max()):.0f}, read as 0..255 grey levels")
        x = x / 255.0
    return x


def as_data(array: Any, name: str, notes: list[str]) -> tuple[Tensor, str]:
    """An array of images or a table as float32 ``(N, *x_shape)`` and its kind.

    :raises DataSourceError: for a shape that is neither, too few points, or NaN/inf.
    """
    x = torch.as_tensor(np.asarray(array)) if not isinstance(array, Tensor) else array.detach().cpu()
    if x.dim() not in (2, 3, 4) or len(x) < 2:
        raise DataSourceError(f"{name}: expected images (N, C, H, W) / (N, H, W) or a table (N, D) with N >= 2, "
                              f"got shape {tuple(x.shape)}")
    if x.dtype == torch.bool:
        x = x.float()
    x, kind = (x.float(), "table") if x.dim() == 2 else (_images(x, name, notes), "images")
    bad = ~torch.isfinite(x)
    if bad.any():
        raise DataSourceError(f"{name}: {int(bad.sum())} values are NaN or inf; the data must be finite")
    return x.contiguous(), kind


def _labels(y: Any, n: int, name: str) -> Tensor | None:
    if y is None:
        return None
    y = torch.as_tensor(np.asarray(y)).long().reshape(-1)
    if len(y) != n:
        raise DataSourceError(f"{name}: {len(y)} labels for {n} points")
    return y


_KEYS = {"x_train": ("x_train", "train", "images", "x", "data", "X"), "x_test": ("x_test", "test"),
         "y_train": ("y_train", "labels", "y", "targets"), "y_test": ("y_test",)}


def _pick(arrays: dict[str, Any], path: Path) -> dict[str, Any]:
    found = {role: next((arrays[k] for k in keys if k in arrays), None) for role, keys in _KEYS.items()}
    if found["x_train"] is None:
        if len(arrays) != 1:
            raise DataSourceError(f"{path}: which array is the data? It holds {sorted(arrays)}; name it x (or x_train "
                                  "and x_test), with labels y (or y_train and y_test)")
        found["x_train"] = next(iter(arrays.values()))
    return found


def _read_tensor_file(path: Path) -> dict[str, Any]:
    try:
        if path.suffix == ".npy":
            return {"x_train": np.load(path, allow_pickle=False)}
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                return _pick({k: z[k] for k in z.files}, path)
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, ValueError, RuntimeError, EOFError) as e:  # not an array file, truncated, pickled objects
        raise DataSourceError(f"{path} cannot be read as {path.suffix} data ({type(e).__name__}: {e})") from None
    if isinstance(obj, Tensor):
        return {"x_train": obj}
    if isinstance(obj, (tuple, list)) and len(obj) == 2:
        return {"x_train": obj[0], "y_train": obj[1]}
    if isinstance(obj, dict):
        return _pick(obj, path)
    raise DataSourceError(f"{path} holds a {type(obj).__name__}; expected a tensor, (x, y), or a dict of tensors")


def _torchvision(name: str, root: Path) -> dict[str, Any]:
    import torchvision

    cls_name, folder, files = TORCHVISION[name]
    cls = getattr(torchvision.datasets, cls_name)
    try:
        sets = [cls(str(root), train=train, download=False) for train in (True, False)]
    except RuntimeError:  # not there yet: download
        try:
            sets = [cls(str(root), train=train, download=True) for train in (True, False)]
        except Exception as e:  # no network, a mirror down, a bad archive: all say the same
            reason = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
            raise DataSourceError(
                f"cannot get {name}: torchvision could not download it ({reason}); this machine may have no "
                f"internet. Put {files} in {(root / folder).resolve()} (or pass another data root)") from None
    (tr, te) = sets
    classes = [str(c) for c in getattr(tr, "classes", [])] or None  # e.g. "T-shirt/top", ..., "Ankle boot"
    return {"x_train": tr.data, "y_train": tr.targets, "x_test": te.data, "y_test": te.targets, "classes": classes}


def _split(x: Tensor, y: Tensor | None, fraction: float, seed: int) -> tuple[Tensor, ...]:
    if not 0 < fraction < 1:
        raise DataSourceError(f"test_fraction must be in (0, 1), got {fraction}")
    n_test = min(len(x) - 1, max(1, round(fraction * len(x))))
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))  # (N,)
    test, train = order[:n_test], order[n_test:]
    return x[train], x[test], *((y[train], y[test]) if y is not None else (None, None))


def _resize(x: Tensor, size: tuple[int, int] | None) -> Tensor:
    if size is None or tuple(x.shape[-2:]) == tuple(size):
        return x
    return torch.nn.functional.interpolate(x, size=tuple(size), mode="bilinear", antialias=True,
                                           align_corners=False).clamp(0, 1)


def _standardise(src: DataSource, stats: dict[str, list[float]] | None) -> None:
    if stats is None:
        mean, std = src.train.mean(0), src.train.std(0)  # (D,) each
        std = torch.where(std > 1e-8, std, torch.ones_like(std))  # a constant column stays as it is
        stats = {"mean": mean.tolist(), "std": std.tolist()}
        src.notes.append("the table's columns are standardised with the training split's mean and sd")
    mean, std = torch.tensor(stats["mean"]), torch.tensor(stats["std"])
    src.train, src.test = (src.train - mean) / std, (src.test - mean) / std
    src.spec["standardise"] = stats


def _arrays(source: str, root: Path, image_size: tuple[int, int] | None, notes: list[str]) -> dict[str, Any]:
    """Read SOURCE: ``x_train`` (and ``x_test``, ``y_train``, ``y_test`` where it has them)."""
    if source in TORCHVISION:
        return _torchvision(source, root)
    path = Path(source).expanduser()
    if path.is_dir():
        return read_image_folder(path, image_size, notes)
    if path.is_file() and path.suffix.lower() in TENSOR_SUFFIXES:
        return _read_tensor_file(path)
    if path.is_file():
        raise DataSourceError(
            f"{path}: cannot read {path.suffix or 'suffix-less'} files; give a "
            f"{'/'.join(TENSOR_SUFFIXES)} tensor file or a folder of {'/'.join(IMAGE_SUFFIXES)} images"
        )
    raise DataSourceError(f"{source}: no such file or folder, and not a data set name ({', '.join(NAMED)})")


def load_source(source: str | os.PathLike | None = "mnist", *, root: str | os.PathLike | None = None,
                image_size: tuple[int, int] | None = None, test_fraction: float = 0.1, split_seed: int = 0,
                standardise: dict[str, list[float]] | None = None) -> DataSource:
    """Read a data source and split it into training and test data.

    :param source: ``"mnist"``, ``"fashion-mnist"``, ``"kmnist"``, ``"cifar10"``, a tensor file
        or a folder of images (see the module docstring); ``None`` is MNIST.
    :param root: folder of the named data sets (default ``$PYROVAE_DATA`` or ``~/.cache/pyrovae``).
    :param image_size: ``(H, W)`` to resize images to (needed for a folder of mixed sizes).
    :param test_fraction: share held out as test data where the source has no split.
    :param split_seed: seed of that split (fixed, so every run holds out the same points).
    :param standardise: a table's column ``mean``/``std`` to use (from a spec); default: the
        training split's.
    :returns: the :class:`DataSource`; its ``spec`` loads it again with ``load_source(**spec)``.
    :raises DataSourceError: naming what is wrong with the source and how to fix it.
    """
    from .mnist import default_data_root, load_mnist

    source = "mnist" if source is None else str(source)
    root_path = Path(root).expanduser() if root is not None else default_data_root()
    notes: list[str] = []
    if source == "mnist":
        tr, te = load_mnist(root)
        arrays = {"x_train": tr.images, "y_train": tr.labels, "x_test": te.images, "y_test": te.labels}
    else:
        arrays = _arrays(source, root_path, image_size, notes)
        if source not in TORCHVISION:
            source = str(Path(source).expanduser().resolve())  # the checkpoint's record works from anywhere
    x, kind = as_data(arrays["x_train"], source, notes)
    y = _labels(arrays.get("y_train"), len(x), source)
    if arrays.get("x_test") is None:
        x_train, x_test, y_train, y_test = _split(x, y, test_fraction, split_seed)
        notes.append(
            f"no test split in {source}: held out {len(x_test)} of {len(x)} points at random (seed {split_seed})"
        )
    else:
        x_train, y_train = x, y
        x_test, kind_test = as_data(arrays["x_test"], f"{source} (test)", notes)
        y_test = _labels(arrays.get("y_test"), len(x_test), f"{source} (test)")
        if kind_test != kind or x_test.shape[1:] != x_train.shape[1:]:
            raise DataSourceError(f"{source}: test points {tuple(x_test.shape[1:])} differ from training points "
                                  f"{tuple(x_train.shape[1:])}")
    if kind == "images":
        x_train, x_test = _resize(x_train, image_size), _resize(x_test, image_size)
    spec = {"source": source, "image_size": list(image_size) if image_size else None, "test_fraction": test_fraction,
            "split_seed": split_seed}
    src = DataSource(x_train, x_test, y_train, y_test, kind, spec, notes, arrays.get("classes"))
    if kind == "table" and not src.binary:
        _standardise(src, standardise)
    return src
