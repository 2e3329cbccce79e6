"""Every script in ``examples/`` runs end to end with flags that make it tiny, and writes its
figures and its numbers file.

The examples are imported and their ``main`` called in this process (one torch import for
all of them); ``vae_mnist.py`` also runs as a subprocess, to cover the ``__main__`` path.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from pyrovae.cli import experiment

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
TINY = {"epochs": 1, "subset": 300, "test_subset": 100}

# example -> (extra tiny flags, figures it must write)
CASES = {
    "vae_mnist": ({}, ["vae_mnist_samples.png", "vae_mnist_reconstructions.png"]),
    "ae_vs_vae": (
        {"draws": 100, "reference": 300, "classifier_epochs": 1},
        ["ae_vs_vae_latent.png", "ae_vs_vae_samples.png"],
    ),
    "loss_terms": ({"betas": [0.5, 2.0], "sweep_z_dim": 2}, ["loss_terms_latents.png", "loss_terms_beta_sweep.png"]),
    "conv_vae": ({}, ["conv_vae.png"]),
    "interpolate": (
        {"attribute_digits": 20, "classifier_epochs": 1, "steps": 4},
        ["interpolate_morph.png", "interpolate_attribute.png"],
    ),
    "manifold": ({"grid": 5, "points": 100, "classifier_epochs": 1}, ["manifold_epochs.png", "manifold_grid.png"]),
    "denoise_and_anomaly": ({}, ["denoise.png", "anomaly_top.png"]),
    "swap_prior": ({"vamp_components": 10, "ll_examples": 20, "ll_samples": 10, "kl_samples": 2}, ["swap_prior.png"]),
    "swap_likelihood": ({}, ["swap_likelihood.png"]),
    "sequence_vae": ({"samples": 50, "test_subset": 50}, ["sequence_vae.png"]),
    "conditional_vae": (
        {"per_digit": 5, "classifier_epochs": 1, "styles": 2},
        ["conditional_generate.png", "conditional_style_transfer.png"],
    ),
    "hierarchical_vae": (
        {"ll_samples": 10, "ll_examples": 20, "z_dims": [4, 2], "hidden": [(16,), (8,)], "loss": "iwae",
         "particles": 2, "final_lr": 1e-4},
        ["hierarchical_vae_samples.png", "hierarchical_vae_top_layer.png"],
    ),
    "semisupervised_m2": (
        {"labels": 100, "per_digit": 3, "styles": 2, "hidden": [32], "z_dim": 4},
        ["semisupervised_m2_generate.png", "semisupervised_m2_style_transfer.png"],
    ),
    "kl_direction": (
        {"steps": 30, "eval_samples": 20, "digits": 1, "subset": 200, "test_subset": 20},
        ["kl_toy.png", "kl_vae_posteriors.png"],
    ),
    "bayesian_decoder": ({"draws": 2, "eval_every": 1}, ["bayesian_decoder.png"]),
}


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _check_outputs(out: Path, name: str, figures: list[str]) -> dict:
    for fig in figures:
        path = out / fig
        assert path.is_file() and path.stat().st_size > 1000, f"{name} did not write {fig}"
    numbers = json.loads((out / f"{name}.json").read_text())
    assert numbers["seconds"] >= 0
    return numbers


def test_every_example_is_covered():
    assert {p.stem for p in EXAMPLES.glob("*.py")} == set(CASES)


@pytest.mark.parametrize("name", [n for n in CASES if n != "vae_mnist"])
def test_example_runs_tiny(name, tmp_path):
    extra, figures = CASES[name]
    module = _load(name)
    assert module.__doc__ and "References" in module.__doc__, f"{name} needs a docstring with references"
    args = experiment.defaults(module._parser(), **{**TINY, **extra, "out": tmp_path})
    returned = module.main(args)
    numbers = _check_outputs(tmp_path, name, figures)
    assert returned == numbers


def test_vae_mnist_command_line(tmp_path):
    """The ``__main__`` path: argparse, the hand-written SVI loop, the printed test ELBO."""
    cmd = [sys.executable, str(EXAMPLES / "vae_mnist.py"), "--epochs", "1", "--subset", "300", "--test-subset", "100",
           "--threads", "1", "--out", str(tmp_path)]
    done = subprocess.run(cmd, check=False, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "epoch 1:" in done.stdout and "test ELBO" in done.stdout
    numbers = _check_outputs(tmp_path, "vae_mnist", CASES["vae_mnist"][1])
    assert numbers["test_elbo"] < 0 and len(numbers["test_elbo_per_epoch"]) == 1


@pytest.mark.parametrize("bad", ["200,x", "0,10", ""])
def test_hierarchical_vae_refuses_bad_widths(bad, capsys):
    """``--hidden`` takes comma-separated positive widths, and says so."""
    with pytest.raises(SystemExit):
        _load("hierarchical_vae")._parser().parse_args(["--hidden", bad])
    assert "--hidden" in capsys.readouterr().err


@pytest.mark.parametrize(("name", "flag", "value", "says"), [
    ("hierarchical_vae", "--final-lr", "nan", "a positive number"),
    ("hierarchical_vae", "--free-bits", "-1", "a number >= 0"),
    ("hierarchical_vae", "--rows", "0", "a positive integer"),
    ("semisupervised_m2", "--labels", "ten", "a positive integer"),
    ("semisupervised_m2", "--lr", "0", "a positive number"),
    ("semisupervised_m2", "--alpha", "inf", "a number >= 0"),
])
def test_examples_refuse_bad_numbers_in_one_line(name, flag, value, says, capsys):
    """A bad number is a usage error that names the flag and what it takes, not a traceback later."""
    with pytest.raises(SystemExit) as exit_info:
        _load(name)._parser().parse_args([flag, value])
    assert exit_info.value.code == 2
    assert f"argument {flag}: expected {says}, got {value!r}" in capsys.readouterr().err


def test_hierarchical_vae_records_its_network(tmp_path):
    """The numbers file names the network and the objective it was trained with."""
    module = _load("hierarchical_vae")
    args = experiment.defaults(module._parser(), **{**TINY, **CASES["hierarchical_vae"][0], "out": tmp_path})
    numbers = module.main(args)
    assert numbers["config"]["hidden"] == [[16], [8]] and numbers["config"]["z_dims"] == [4, 2]
    assert numbers["loss"] == "iwae" and numbers["particles"] == 2 and numbers["train_seconds"] > 0


def test_semisupervised_m2_resumes_from_its_checkpoint(tmp_path):
    """Run again with more epochs, the example trains on from its checkpoint (the history continues)."""
    module = _load("semisupervised_m2")
    settings = {**TINY, **CASES["semisupervised_m2"][0], "checkpoint": str(tmp_path / "m2.pt")}
    first = module.main(experiment.defaults(module._parser(), **settings, out=tmp_path / "a"))
    second = module.main(experiment.defaults(module._parser(), **{**settings, "epochs": 2}, out=tmp_path / "b"))
    assert len(second["test_accuracy_per_epoch"]) == 2
    assert second["test_accuracy_per_epoch"][0] == first["test_accuracy_per_epoch"][0]
