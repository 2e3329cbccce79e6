"""Named recipes: every one builds its model, the default is the old `pyrovae train` default,
flags override single fields, and the likelihood benchmark's recorded commands still resolve
to the configurations they recorded."""

from __future__ import annotations

import importlib.util
import json
import shlex
from pathlib import Path

import pytest
import torch

from pyrovae import evaluate
from pyrovae.cli import build_parser
from pyrovae.cli.args import recipe_changes
from pyrovae.cli.train import recipe_from_args
from pyrovae.models import HierarchicalConfig, VAEConfig, build_vae
from pyrovae.models.recipes import RECIPES, TRAINING_FIELDS, get_recipe, init_from_data

ROOT = Path(__file__).resolve().parents[2]

#: `pyrovae train`'s defaults before recipes existed (cli.DEFAULTS and the argparse defaults)
OLD_DEFAULTS = {
    "epochs": 10, "batch_size": 64, "z_dim": 32, "hidden": (512, 512), "activation": "gelu", "prior": "mog",
    "num_components": 10, "likelihood": "bernoulli", "net": "mlp", "beta": 1.0, "warmup_epochs": 0.0, "lr": 1e-3,
    "final_lr": None, "loss": "meanfield", "num_particles": None, "binarize": "dynamic", "seed": 0,
}


def _train_args(*flags: str):
    return build_parser().parse_args(["train", *flags])


def test_pyrovae_train_without_flags_is_the_old_default_run():
    recipe = recipe_from_args(_train_args())
    for name, value in OLD_DEFAULTS.items():
        assert getattr(recipe, name) == value, name
    # and the model it builds is the one the old defaults built (VAEConfig defaults for the rest)
    old = VAEConfig(z_dim=32, net="mlp", hidden=(512, 512), activation="gelu", prior="mog", num_components=10,
                    likelihood="bernoulli", beta=1.0)
    assert recipe.model_config() == old
    assert recipe_changes(_train_args()) == {}


def test_explicit_flags_override_only_their_fields():
    args = _train_args("--recipe", "reference", "--z-dim", "2", "--hidden", "64,32", "--binarize", "none",
                       "--lr", "0.01", "--particles", "3")
    recipe = recipe_from_args(args)
    changed = {"z_dim": 2, "hidden": (64, 32), "binarize": None, "lr": 0.01, "num_particles": 3}
    reference = RECIPES["reference"]
    for name in set(recipe.to_dict()):
        expected = changed.get(name, getattr(reference, name))
        assert getattr(recipe, name) == expected, name
    assert reference.z_dim == 50 and reference.binarize == "dynamic"  # the table itself is untouched


@pytest.mark.parametrize("name", list(RECIPES))
def test_every_recipe_builds_a_working_model(name):
    recipe = RECIPES[name]
    vae = build_vae(recipe).eval()
    assert vae.config == recipe.model_config().to_dict()  # the checkpoint keeps the model part only
    assert set(vae.config).isdisjoint(TRAINING_FIELDS)
    assert vae.z_dim == recipe.z_dim
    x = (torch.rand(3, *recipe.x_shape) < 0.2).float()
    terms = evaluate.elbo_terms(vae, x)
    assert terms.elbo.shape == (3,) and bool(torch.isfinite(terms.elbo).all())
    assert recipe.description, "every recipe says what it is"


def test_the_table_has_the_named_recipes_and_the_readme_models():
    assert {"default", "reference", "vae-burda", "vampprior", "iaf", "iwae", "best", "vae-large", "vamp-large",
            "iwae-large", "best-large", "best-large-iwae"} <= set(RECIPES)
    ref = RECIPES["reference"]
    assert (ref.hidden, ref.z_dim, ref.activation, ref.prior, ref.batch_size, ref.loss) == (
        (400,), 50, "softplus", "standard_normal", 128, "trace")
    with pytest.raises(TypeError):
        RECIPES["mine"] = ref  # read-only


def test_replace_and_get_recipe_check_names_and_values():
    with pytest.raises(ValueError, match=r"no field.*'epoch'"):
        RECIPES["default"].replace(epoch=3)
    with pytest.raises(ValueError, match="unknown recipe 'nope'"):
        get_recipe("nope")
    for field, bad, match in [("epochs", 0, "epochs must be a positive integer"),
                              ("batch_size", -1, "batch_size must be a positive integer"),
                              ("lr", -1.0, "lr must be a number >= 0"),
                              ("final_lr", 0.0, "final_lr must be a positive number"),
                              ("num_particles", 0, "num_particles must be >= 1"),
                              ("z_dim", 0, "z_dim must be a positive integer"),
                              ("num_components", 0, "num_components must be a positive integer")]:
        with pytest.raises(ValueError, match=match):
            get_recipe("default", **{field: bad})
    assert get_recipe("default", epochs=3).epochs == 3 and RECIPES["default"].epochs == 10


def test_vamp_pseudo_inputs_start_at_training_images():
    vae = build_vae(get_recipe("vamp-large", num_components=4))
    x = torch.rand(10, 1, 28, 28)
    torch.manual_seed(0)
    init_from_data(vae, x)
    torch.manual_seed(0)
    idx = torch.randperm(10)[:4]
    assert torch.allclose(vae.prior.pseudo_inputs, x[idx].clamp(0.05, 0.95), atol=1e-5)
    init_from_data(build_vae(RECIPES["default"]), x)  # a prior without pseudo-inputs: nothing to do


def _likelihood_benchmark():
    spec = importlib.util.spec_from_file_location("likelihood_benchmark", ROOT / "benchmarks" / "likelihood.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_recorded_benchmark_commands_resolve_to_their_recorded_configs():
    bench = _likelihood_benchmark()
    records = sorted((ROOT / "benchmarks" / "results").glob("likelihood_*.json"))
    assert len(records) >= 10
    for path in records:
        rec = json.loads(path.read_text())
        argv = shlex.split(rec["command"])[2:]  # after "python benchmarks/likelihood.py"
        args = bench.build_parser().parse_args(argv)
        if args.recipe in bench.HIERARCHICAL:  # a two-layer recipe: its fields over the default network
            fields, training = bench.HIERARCHICAL[args.recipe]
            assert HierarchicalConfig.from_dict({**HierarchicalConfig().to_dict(), **fields}).to_dict() == rec["model"]
            assert rec["train"]["epochs_requested"] == (args.epochs or training["epochs"]), path
            continue
        assert "--config" in argv, path  # the old flag still parses
        recipe = get_recipe(args.recipe, **recipe_changes(args))
        assert recipe.model_config() == VAEConfig.from_dict(rec["model"]), path
        train = rec["train"]
        assert (recipe.loss, recipe.num_particles, recipe.epochs, recipe.batch_size, recipe.lr, recipe.binarize) == (
            train["loss"], train["particles"], train["epochs_requested"], train["batch_size"], train["lr"],
            train["binarize"]), path
        assert recipe.final_lr == train.get("final_lr") and recipe.warmup_epochs == train.get("warmup_epochs", 0.0)
