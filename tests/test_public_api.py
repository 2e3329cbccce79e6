"""Every name and import path of the public contract (``shared/DESIGN.md``, the README) works.

The contract changes only by addition, so this list only grows.
"""

from __future__ import annotations

import importlib
import inspect as pyinspect
import subprocess
import sys

import pytest

#: (module path, names that must be importable from it)
CONTRACT: list[tuple[str, tuple[str, ...]]] = [
    ("pyrovae", ("VAE", "fit", "nets", "priors", "likelihoods", "data", "evaluate", "inspect", "kl", "__version__")),
    ("pyrovae.nets", ("MLPEncoder", "MLPDecoder", "ConvEncoder", "ConvDecoder")),
    ("pyrovae.priors", ("StandardNormal", "LearnedGaussian", "MixtureOfGaussians", "VampPrior")),
    ("pyrovae.likelihoods", ("Bernoulli", "ContinuousBernoulli", "Gaussian", "Laplace", "Categorical")),
    ("pyrovae.data", ("load_mnist", "binarize", "InMemoryLoader", "ImageSet")),
    ("pyrovae.evaluate", ("elbo_terms", "log_likelihood", "active_units", "mutual_information", "collapse_report",
                          "elbo_gap", "aggregate_kl")),
    ("pyrovae.inspect", ("encode_dataset", "interpolate", "manifold_grid", "posterior_grid", "LatentSnapshots")),
    ("pyrovae.kl", ("kl_both", "fit_gaussian")),
    ("pyrovae.train", ("fit",)),
    # module paths the README shows users, kept as thin re-exports
    ("pyrovae.flows", ("FlowPrior", "IAFGuide", "context_dim_of")),
    ("pyrovae.iwae", ("IWAE_ELBO",)),
    ("pyrovae.builder", ("VAEConfig", "build_vae")),
    ("pyrovae.distributed", ("spawn_local", "main")),
    ("pyrovae.plots", ("image_grid", "reconstructions", "latent_scatter")),
    ("pyrovae.cli", ("main",)),
]


@pytest.mark.parametrize("module, names", CONTRACT, ids=[m for m, _ in CONTRACT])
def test_contract_names_import(module, names):
    mod = importlib.import_module(module)
    missing = [n for n in names if not hasattr(mod, n)]
    assert not missing, f"{module} lacks {missing}"


def test_fit_is_one_function_under_both_paths():
    import pyrovae
    import pyrovae.train

    assert pyrovae.fit is pyrovae.train.fit
    assert callable(pyrovae.train.fit) and not pyinspect.ismodule(pyrovae.train.fit)


def test_contract_signatures():
    from pyrovae import data, evaluate, kl, likelihoods, nets, priors

    def params(f):
        return list(pyinspect.signature(f).parameters)

    assert params(nets.MLPEncoder)[:3] == ["x_shape", "hidden", "z_dim"]
    assert params(nets.MLPDecoder)[:3] == ["z_dim", "hidden", "x_shape"]
    assert params(nets.ConvEncoder)[:2] == ["x_shape", "z_dim"]
    assert params(nets.ConvDecoder)[:2] == ["z_dim", "x_shape"]
    assert params(priors.StandardNormal)[:1] == ["z_dim"]
    assert params(priors.MixtureOfGaussians)[:2] == ["z_dim", "num_components"]
    assert params(priors.VampPrior)[:3] == ["encoder", "num_components", "x_shape"]
    assert params(likelihoods.Gaussian)[:1] == ["scale"]
    assert params(likelihoods.Categorical)[:1] == ["num_classes"]
    assert params(data.load_mnist)[:1] == ["root"]
    assert params(data.binarize)[:3] == ["images", "mode", "seed"]
    assert params(evaluate.log_likelihood)[:3] == ["vae", "x", "num_samples"]
    assert pyinspect.signature(evaluate.log_likelihood).parameters["num_samples"].default == 5000
    assert params(kl.kl_both)[:2] == ["p", "q"]
    assert params(kl.fit_gaussian)[:2] == ["target", "direction"]
    from pyrovae import fit

    sig = pyinspect.signature(fit).parameters
    assert list(sig)[:3] == ["vae", "train_images", "test_images"]
    for kw in ("epochs", "batch_size", "binarize", "loss", "optim", "device"):
        assert sig[kw].kind is pyinspect.Parameter.KEYWORD_ONLY, kw
    assert sig["binarize"].default == "dynamic" and sig["device"].default == "auto"


def test_sites_and_plate_names():
    import pyro
    import torch
    from pyro import poutine

    from pyrovae import VAE, likelihoods, nets, priors

    vae = VAE(encoder=nets.MLPEncoder(x_shape=(1, 4, 4), hidden=(8,), z_dim=3),
              decoder=nets.MLPDecoder(z_dim=3, hidden=(8,), x_shape=(1, 4, 4)),
              prior=priors.StandardNormal(3), likelihood=likelihoods.Bernoulli())
    x = torch.bernoulli(torch.full((5, 1, 4, 4), 0.5))
    guide = poutine.trace(vae.guide).get_trace(x, num_data=50)
    model = poutine.trace(poutine.replay(vae.model, trace=guide)).get_trace(x, num_data=50)
    assert model.nodes["z"]["value"].shape == (5, 3) and model.nodes["z"]["fn"].event_dim == 1
    assert model.nodes["x"]["is_observed"] and model.nodes["x"]["fn"].event_shape == (1, 4, 4)
    frames = {f.name: f for f in model.nodes["x"]["cond_indep_stack"]}
    assert frames["data"].size == 5 and frames["data"].full_size == 50  # subsampled: scaled by 50 / 5
    pyro.clear_param_store()


@pytest.mark.parametrize("argv", [["-m", "pyrovae", "--help"], ["-m", "pyrovae.cli", "--help"],
                                  ["-m", "pyrovae.distributed", "--help"]])
def test_module_entry_points(argv):
    out = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "usage" in out.stdout.lower()
