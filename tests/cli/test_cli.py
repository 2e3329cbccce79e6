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


@pytest.mark.parametrize("command", ["train", "evaluate", "inspect", "recipes", "kl-demo", "kl-compare"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: pyrovae {command}")
    if command in ("train", "kl-compare"):
        assert "--hidden W1,W2" in text and "comma-separated" in text  # one --hidden format


def test_train_help_shows_the_default_recipe_values(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for shown in ("--recipe NAME", "(default 32)", "(default 512,512)", "(default gelu)", "(default mog)",
                  "(default 64)", "(default meanfield)", "(default dynamic)"):
        assert shown in text, shown


def test_recipes_command_lists_every_recipe(capsys):
    from pyrovae.models.recipes import RECIPES

    assert main(["recipes"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines] == list(RECIPES)
    assert main(["recipes", "reference", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["reference"]["hidden"] == [400]
    assert main(["recipes", "nope"]) == 2
    assert "unknown recipe(s) nope" in capsys.readouterr().err


def test_train_from_a_recipe_records_it(tmp_path, mnist):
    out = tmp_path / "ref"
    assert main(["train", "--recipe", "reference", "--epochs", "1", "--subset", "300", "--hidden", "16", "--z-dim", "3",
                 "--out", str(out), "--no-progress", "--device", "cpu"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["recipe"] == "reference"
    assert metrics["config"]["activation"] == "softplus" and metrics["config"]["hidden"] == [16]
    assert metrics["train"]["batch_size"] == 128 and metrics["train"]["loss"] == "trace"
