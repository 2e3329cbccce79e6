"""The `pyrovae train` command on a tiny run, and its argument errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pyrovae.cli import main
from pyrovae.train import checkpoint as ckpt


def test_train_writes_checkpoint_metrics_and_figures(tmp_path, mnist):
    out = tmp_path / "run"
    code = main(["train", "--epochs", "1", "--subset", "500", "--z-dim", "2", "--hidden", "32",
                 "--batch-size", "50", "--out", str(out), "--no-progress", "--device", "cpu", "--final-lr", "1e-4"])
    assert code == 0
    for name in ("checkpoint.pt", "metrics.json", "samples.png", "reconstructions.png", "latent.png"):
        assert (out / name).is_file(), name
        assert (out / name).stat().st_size > 1000, name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["z_dim"] == 2
    assert metrics["train"]["final_lr"] == 1e-4
    assert len(metrics["history"]["test_elbo"]) == 1
    assert -550 < metrics["final_test_elbo"] < -100
    vae, payload = ckpt.load_checkpoint(out / "checkpoint.pt")
    assert payload["epoch"] == 1 and vae.z_dim == 2


def test_help_explains_every_flag():
    text = subprocess.run([sys.executable, "-m", "pyrovae.cli", "train", "--help"], capture_output=True, text=True,
                          check=True).stdout
    for flag in ("--epochs", "--batch-size", "--z-dim", "--prior", "--likelihood", "--net", "--beta", "--device",
                 "--seed", "--out", "--final-lr"):
        assert flag in text


def test_unknown_prior_is_rejected():
    with pytest.raises(SystemExit) as e:
        main(["train", "--prior", "cauchy"])
    assert e.value.code == 2


def test_bad_z_dim_is_a_clean_error(tmp_path, capsys):
    assert main(["train", "--z-dim", "0", "--out", str(tmp_path)]) == 2
    assert "z_dim must be a positive integer" in capsys.readouterr().err
