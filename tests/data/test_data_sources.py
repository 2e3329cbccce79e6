"""Data sources: tensor files, image folders, tables and torchvision's data sets, each read
into float training and test tensors with a fixed split and a spec that loads them again."""

from __future__ import annotations

import urllib.error

import numpy as np
import pytest
import torch

from pyrovae.data.sources import DataSourceError, load_source


def _bars(n: int = 40, side: int = 8) -> np.ndarray:
    x = np.zeros((n, side, side), dtype=np.uint8)  # (N, H, W) 0/1: one bar each
    for i in range(n):
        if i % 2:
            x[i, i % side, :] = 1
        else:
            x[i, :, i % side] = 1
    return x


def test_npy_of_binary_images_is_split_at_random_with_a_fixed_seed(tmp_path):
    np.save(tmp_path / "bars.npy", _bars())
    src = load_source(tmp_path / "bars.npy")
    assert src.kind == "images" and src.x_shape == (1, 8, 8) and src.binary
    assert (len(src.train), len(src.test)) == (36, 4)  # 10% held out
    assert src.train_labels is None and src.test_labels is None
    again = load_source(**src.spec)
    assert torch.equal(again.test, src.test) and torch.equal(again.train, src.train)
    other = load_source(tmp_path / "bars.npy", split_seed=1)
    assert not torch.equal(other.test, src.test)
    # every point is in exactly one split
    both = torch.cat([src.train, src.test]).flatten(1)
    assert torch.equal(both.sum(0), torch.from_numpy(_bars()).float().flatten(1).sum(0))


def test_uint8_grey_levels_are_scaled_and_channels_last_is_read(tmp_path):
    rgb = np.arange(6 * 4 * 5 * 3, dtype=np.int64).reshape(6, 4, 5, 3) % 256  # (N, H, W, C)
    np.save(tmp_path / "rgb.npy", rgb.astype(np.uint8))
    src = load_source(tmp_path / "rgb.npy", test_fraction=0.5)
    assert src.x_shape == (3, 4, 5) and src.unit_interval and not src.binary
    assert any("channels-last" in n for n in src.notes)
    expected = torch.from_numpy(rgb).permute(0, 3, 1, 2).float() / 255  # (N, C, H, W)
    got = torch.cat([src.train, src.test])
    assert torch.allclose(got.sort(0).values, expected.sort(0).values)


def test_npz_and_pt_with_their_own_split_and_labels(tmp_path):
    x = np.random.default_rng(0).random((10, 1, 6, 6)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x_train=x[:8], x_test=x[8:], y_train=np.arange(8), y_test=[8, 9])
    src = load_source(tmp_path / "d.npz")
    assert len(src.train) == 8 and torch.equal(src.test, torch.from_numpy(x[8:]))
    assert src.test_labels.tolist() == [8, 9]
    torch.save((torch.from_numpy(x), torch.arange(10)), tmp_path / "d.pt")
    src = load_source(tmp_path / "d.pt", test_fraction=0.2)
    assert (len(src.train), len(src.test)) == (8, 2) and src.train_labels is not None
    torch.save({"a": torch.zeros(3, 4), "b": torch.zeros(3, 4)}, tmp_path / "two.pt")
    with pytest.raises(DataSourceError, match="which array is the data"):
        load_source(tmp_path / "two.pt")


def test_a_table_is_standardised_with_the_training_split(tmp_path):
    rng = np.random.default_rng(0)
    table = rng.normal(size=(200, 3)) * [1.0, 100.0, 0.01] + [5.0, -300.0, 2.0]
    np.save(tmp_path / "t.npy", table.astype(np.float32))
    src = load_source(tmp_path / "t.npy")
    assert src.kind == "table" and src.x_shape == (3,)
    assert torch.allclose(src.train.mean(0), torch.zeros(3), atol=1e-4)
    assert torch.allclose(src.train.std(0), torch.ones(3), atol=1e-4)
    again = load_source(**src.spec)  # the spec keeps the statistics
    assert torch.allclose(again.test, src.test)
    raw = torch.as_tensor(table, dtype=torch.float32)  # (200, 3)
    mean, std = torch.tensor(src.spec["standardise"]["mean"]), torch.tensor(src.spec["standardise"]["std"])
    undone = src.test * std + mean  # back to the original units: each is a row of the table
    nearest = (undone[:, None] - raw[None]).abs().amax(-1).min(1).values  # (40,) distance to the closest row
    assert float(nearest.max()) < 1e-3
    assert float(mean[1]) == pytest.approx(-300, abs=20) and float(std[1]) == pytest.approx(100, rel=0.2)


def _png_folder(root, sizes=((8, 8),), classes=("a", "b"), per_class=3, colour=False):
    from PIL import Image

    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            h, w = sizes[i % len(sizes)]
            grey = np.full((h, w), 40 * (i + 1) + 100 * c, dtype=np.uint8)
            image = np.stack([grey, grey // 2, grey], -1) if colour else grey
            Image.fromarray(image).save(root / name / f"{i}.png")


def test_a_folder_of_pngs_with_classes_in_sub_folders(tmp_path):
    _png_folder(tmp_path / "imgs")
    src = load_source(tmp_path / "imgs", test_fraction=1 / 3)
    assert src.x_shape == (1, 8, 8) and len(src.train) == 4 and len(src.test) == 2
    values = sorted(float(v) for v in torch.cat([src.train, src.test])[:, 0, 0, 0])
    assert values == pytest.approx(sorted((40 * (i + 1) + 100 * c) / 255 for c in range(2) for i in range(3)))
    labels = torch.cat([src.train_labels, src.test_labels]).sort().values.tolist()
    assert labels == [0, 0, 0, 1, 1, 1] and src.classes == ["a", "b"]
    _png_folder(tmp_path / "rgb", colour=True)
    assert load_source(tmp_path / "rgb").x_shape == (3, 8, 8)


def test_mixed_sizes_need_an_image_size(tmp_path):
    _png_folder(tmp_path / "mixed", sizes=((8, 8), (10, 6)))
    with pytest.raises(DataSourceError, match=r"2 sizes \(8x8, 10x6\).*--image-size 8"):
        load_source(tmp_path / "mixed")
    src = load_source(tmp_path / "mixed", image_size=(5, 7))
    assert src.x_shape == (1, 5, 7) and src.spec["image_size"] == [5, 7]


@pytest.mark.parametrize("name, make, match", [
    ("missing.npy", None, "no such file or folder, and not a data set name"),
    ("data.csv", lambda p: p.write_text("1,2,3"), "cannot read .csv files"),
    ("vector.npy", lambda p: np.save(p, np.zeros(5)), "expected images .* or a table"),
    ("nan.npy", lambda p: np.save(p, np.array([[0.0, np.nan], [1.0, 2.0]])), "NaN or inf"),
    ("objects.npy", lambda p: np.save(p, np.array([{"a": 1}, {"b": 2}], dtype=object), allow_pickle=True),
     "cannot be read as .npy data"),
    ("int16.npy", lambda p: np.save(p, np.full((3, 4, 4), 300, dtype=np.int16)), "must hold 0..255 grey levels"),
])
def test_bad_sources_say_what_is_wrong(tmp_path, name, make, match):
    path = tmp_path / name
    if make is not None:
        make(path)
    with pytest.raises(DataSourceError, match=match):
        load_source(path)


class _OfflineKMNIST:
    """torchvision's KMNIST on a machine without internet: no files, and the download fails."""

    def __init__(self, root, train=True, download=False):
        if download:
            raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\n<urlopen error [Errno -2] "
                               "Name or service not known>")
        raise RuntimeError("Dataset not found. You can use download=True to download it")


def test_torchvision_offline_names_the_folder_for_the_files(tmp_path, monkeypatch):
    import torchvision

    monkeypatch.setattr(torchvision.datasets, "KMNIST", _OfflineKMNIST)
    with pytest.raises(DataSourceError, match="cannot get kmnist.*no internet. Put train-images-idx3-ubyte.gz.*"
                                              + str(tmp_path.resolve() / "KMNIST" / "raw")):
        load_source("kmnist", root=tmp_path)


def test_torchvision_files_in_the_root_are_read(tmp_path, monkeypatch):
    import torchvision

    class FakeCIFAR:  # what torchvision.datasets.CIFAR10 holds: uint8 (N, 32, 32, 3) and a list of labels
        def __init__(self, root, train=True, download=False):
            n = 6 if train else 2
            self.data = np.full((n, 32, 32, 3), 255 if train else 0, dtype=np.uint8)
            self.targets = list(range(n))
            self.classes = ["airplane", "automobile", "bird", "cat", "deer", "dog"]

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCIFAR)
    src = load_source("cifar10", root=tmp_path)
    assert src.x_shape == (3, 32, 32) and (len(src.train), len(src.test)) == (6, 2)
    assert float(src.train.min()) == 1.0 and float(src.test.max()) == 0.0
    assert src.spec["source"] == "cifar10" and src.test_labels.tolist() == [0, 1]
    assert src.classes == ["airplane", "automobile", "bird", "cat", "deer", "dog"]  # the legends' names


def test_urlerror_is_reported_too(tmp_path, monkeypatch):
    import torchvision

    class Offline(_OfflineKMNIST):
        def __init__(self, root, train=True, download=False):
            if download:
                raise urllib.error.URLError("[Errno -2] Name or service not known")
            super().__init__(root, train, download)

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", Offline)
    with pytest.raises(DataSourceError, match=r"cannot get cifar10.*Name or service not known.*cifar-10-python\.tar"):
        load_source("cifar10", root=tmp_path)
