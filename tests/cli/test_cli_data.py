"""`pyrovae train --data SOURCE` on your own data, then `evaluate` and `inspect` on the
checkpoint: a folder of PNGs, a .npy of binary images and a table, each generated here.

Set PYROVAE_FIGURES=/some/dir to keep the figures for looking at them.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from pyrovae.cli import main
from pyrovae.cli.report import TABLE_FIGURES, TRAIN_FIGURES
from pyrovae.train.checkpoint import read_checkpoint

FAST = ["--prior", "standard_normal", "--hidden", "64", "--z-dim", "2", "--batch-size", "16", "--lr", "3e-3",
        "--no-progress", "--device", "cpu"]


def _out(tmp_path: Path, name: str) -> Path:
    keep = os.environ.get("PYROVAE_FIGURES")
    return Path(keep) / name if keep else tmp_path / name


def _png_folder(root: Path, n: int = 120, side: int = 12) -> Path:
    """Grey discs and squares of random place and size, in sub-folders disc/ and square/."""
    from PIL import Image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:side, 0:side]
    for i in range(n):
        kind = ("disc", "square")[i % 2]
        cx, cy, r = [*rng.uniform(4, side - 4, size=2).tolist(), rng.uniform(2, 3.5)]
        dist = np.hypot(xx - cx, yy - cy) if kind == "disc" else np.maximum(abs(xx - cx), abs(yy - cy))
        (root / kind).mkdir(parents=True, exist_ok=True)
        Image.fromarray((np.clip(1.2 - dist / r, 0, 1) * 255).astype(np.uint8)).save(root / kind / f"{i:03d}.png")
    return root


def _bars(path: Path, n: int = 240, side: int = 12) -> Path:
    """Binary (N, H, W) images of one horizontal or vertical bar."""
    x = np.zeros((n, side, side), dtype=np.uint8)
    for i, k in enumerate(np.random.default_rng(0).integers(0, side, n)):
        if i % 2:
            x[i, k, :] = 1
        else:
            x[i, :, k] = 1
    np.save(path, x)
    return path


def _table(path: Path, n: int = 300) -> Path:
    """(N, 6): two latent factors seen through a linear map, in very different units."""
    rng = np.random.default_rng(0)
    z = rng.normal(size=(n, 2))
    w = rng.normal(size=(2, 6)) * [1, 10, 100, 0.1, 1, 5]
    np.save(path, (z @ w + 0.05 * rng.normal(size=(n, 6)) * [1, 10, 100, 0.1, 1, 5] + 7).astype(np.float32))
    return path


def _check_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    assert len(data) > 5000, f"{path} is only {len(data)} bytes"


def _train_evaluate_inspect(source: Path, out: Path, epochs: int, capsys) -> tuple[dict, dict, str]:
    assert main(["train", "--data", str(source), "--epochs", str(epochs), *FAST, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    config = read_checkpoint(out / "checkpoint.pt")["config"]
    assert config["extra"]["data"] == metrics["data"]  # the checkpoint records its data
    assert metrics["data"]["source"] == str(source.resolve())
    assert main(["evaluate", str(out), "--samples", "50", "--n", "100"]) == 0
    evaluation = json.loads((out / "evaluation.json").read_text())
    assert evaluation["data"] == metrics["data"]
    # log p(x) is a tighter bound than the ELBO, up to its Monte Carlo error
    assert evaluation["log_px"] >= evaluation["elbo"] - 3 * evaluation["log_px_stderr"] - 0.05
    assert main(["inspect", str(out), "--out", str(out / "figures"), "--n", "100"]) == 0
    return metrics, evaluation, printed


def test_a_folder_of_pngs(tmp_path, capsys):
    folder = _png_folder(tmp_path / "shapes")
    out = _out(tmp_path, "pngs")
    metrics, evaluation, printed = _train_evaluate_inspect(folder, out, 40, capsys)
    assert "grey 1x12x12 images, 108 training and 12 test points" in printed
    assert "picked for grey levels in [0, 1]: binarize none, likelihood continuous_bernoulli" in printed
    assert metrics["config"]["likelihood"] == "continuous_bernoulli" and metrics["config"]["x_shape"] == [1, 12, 12]
    elbo = metrics["history"]["test_elbo"]
    assert elbo[-1] > elbo[0] + 30  # it learned the shapes, not just the mean image
    assert evaluation["n"] == 12  # the held-out split
    for name in TRAIN_FIGURES:
        _check_png(out / f"{name}.png")
    for name in ("samples", "reconstructions", "latent", "manifold", "traversal", "interpolation", "true_posterior"):
        _check_png(out / "figures" / f"{name}.png")


def test_a_npy_of_binary_images(tmp_path, capsys):
    source = _bars(tmp_path / "bars.npy")
    out = _out(tmp_path, "bars")
    metrics, evaluation, printed = _train_evaluate_inspect(source, out, 40, capsys)
    assert "binary 1x12x12 images" in printed and "likelihood bernoulli" in printed
    assert metrics["config"]["likelihood"] == "bernoulli" and metrics["train"]["binarize"] is None
    # the pixel-wise marginal (every pixel on with p = 1/12) scores 144 h(1/12) = 41.3 nats;
    # a model that uses z to place the bar does much better
    marginal = 144 * -(1 / 12 * math.log(1 / 12) + 11 / 12 * math.log(11 / 12))
    assert metrics["final_test_elbo"] > -marginal + 8, metrics["final_test_elbo"]
    assert evaluation["log_px"] > -marginal + 8
    for name in TRAIN_FIGURES:
        _check_png(out / f"{name}.png")


def test_a_table(tmp_path, capsys):
    source = _table(tmp_path / "table.npy")
    out = _out(tmp_path, "table")
    metrics, evaluation, printed = _train_evaluate_inspect(source, out, 40, capsys)
    assert "table of 6 columns, 270 training and 30 test points" in printed
    assert "likelihood gaussian, net mlp" in printed and "standardised" in printed
    assert metrics["config"]["x_shape"] == [6] and metrics["config"]["likelihood"] == "gaussian"
    # standardised columns scored one by one as N(0, 1) give 6 * -0.5 log(2 pi e) = -8.51 nats;
    # two latent factors explain the six columns, so the VAE must beat that
    independent = 6 * -0.5 * math.log(2 * math.pi * math.e)
    assert evaluation["log_px"] > independent + 1.0, evaluation["log_px"]
    assert sorted(p.stem for p in (out / "figures").glob("*.png")) == sorted(TABLE_FIGURES)
    _check_png(out / "latent.png")


def test_evaluate_refuses_data_of_another_shape(tmp_path, capsys):
    out = tmp_path / "bars"
    assert main(["train", "--data", str(_bars(tmp_path / "bars.npy", n=40)), "--epochs", "1", *FAST,
                 "--out", str(out)]) == 0
    capsys.readouterr()
    table = _table(tmp_path / "table.npy", n=20)
    assert main(["evaluate", str(out), "--samples", "4", "--data", str(table)]) == 2
    err = capsys.readouterr().err
    assert re.search(r"has shape \(\d+, 6\) but this VAE expects \(batch, \*x_shape\) = \(batch, 1, 12, 12\)", err), err
    assert "pass the --data the checkpoint was trained on" in err
    # and a resumed run on other data is another configuration
    assert main(["train", "--data", str(table), "--epochs", "2", *FAST, "--out", str(out), "--resume"]) == 2
    assert "holds a checkpoint of another configuration" in capsys.readouterr().err


@pytest.mark.parametrize("flags, match", [
    (["--data", "kmnist", "--data-root", "{tmp}/root"], "no internet"),
    (["--data", "{tmp}/nothing-here"], "no such file or folder"),
    (["--data", "{tmp}/imgs", "--epochs", "1"], "sizes"),
])
def test_data_errors_are_one_line(tmp_path, capsys, monkeypatch, flags, match):
    import torchvision
    from PIL import Image

    from tests.data.test_data_sources import _OfflineKMNIST

    monkeypatch.setattr(torchvision.datasets, "KMNIST", _OfflineKMNIST)
    (tmp_path / "imgs").mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "imgs" / "a.png")
    Image.fromarray(np.zeros((9, 8), np.uint8)).save(tmp_path / "imgs" / "b.png")
    argv = ["train", *[f.format(tmp=tmp_path) for f in flags], "--out", str(tmp_path / "run"), "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pyrovae: error: --data") and match in err[0], err


def test_inspect_on_a_few_labelled_images_skips_what_they_cannot_show(tmp_path, capsys):
    from pyrovae.cli.report import label_name

    folder = _png_folder(tmp_path / "few", n=40)  # 36 train, 4 test images in 2 classes
    out = tmp_path / "few_run"
    assert main(["train", "--data", str(folder), "--epochs", "1", *FAST, "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["inspect", str(out), "--out", str(out / "figures")]) == 0
    printed = capsys.readouterr().out
    assert "attribute_thickness: skipped, the data are too few for it (too few inputs" in printed
    assert (out / "figures" / "latent.png").exists()
    assert label_name({"source": "mnist"}) == "digit" and label_name({"source": str(folder)}) == "class"


def test_legends_name_a_folders_classes(tmp_path):
    from pyrovae.data.sources import load_source
    from pyrovae.plots.latent import label_colours

    src = load_source(_png_folder(tmp_path / "shapes", n=20))
    assert src.classes == ["disc", "square"] and set(src.train_labels.tolist()) == {0, 1}
    _, _, names = label_colours(src.train_labels, src.classes)
    assert names == ["disc", "square"]
    assert label_colours(torch.tensor([0, 2]), ["a", "b"])[2] == ["a", "2"]  # an index without a name keeps its value
