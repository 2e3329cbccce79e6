"""``pyrovae train``: train a VAE from a named recipe and write a checkpoint, ``metrics.json``
and figures to an output folder.

The run starts from ``--recipe`` (default ``default``, see :mod:`pyrovae.models.recipes`);
every flag given explicitly overrides that one field of the recipe, and ``pyrovae train``
with no flags is the default recipe as it stands.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import pyro
import torch

from .._util.files import write_json
from ..models import VAE, build_vae
from ..models.recipes import RECIPES, Recipe, get_recipe, init_from_data
from . import args as cli_args
from .report import TRAIN_FIGURES, inspection_figures

HELP = "train a VAE on MNIST from a recipe; write checkpoint, metrics.json and figures"


def add_args(p: argparse.ArgumentParser) -> None:
    shown = RECIPES["default"]
    p.add_argument("--recipe", choices=tuple(RECIPES), default="default", metavar="NAME",
                   help=f"named recipe to start from: {', '.join(RECIPES)} (`pyrovae recipes` describes them). "
                        "Explicit flags override its fields; the defaults shown below are the default recipe's.")
    cli_args.add_flags(p.add_argument_group("model"), cli_args.MODEL_FLAGS, shown=shown, check=False)
    training = p.add_argument_group("training")
    cli_args.add_flags(training, cli_args.TRAINING_FLAGS, shown=shown, check=False)
    cli_args.add_device(training)
    data = p.add_argument_group("data")
    cli_args.add_data(data)
    cli_args.add_subset(data)
    output = p.add_argument_group("output")
    cli_args.add_out(output, Path("runs/mnist"), "output folder")
    output.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt if it exists")
    output.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def recipe_from_args(args: argparse.Namespace) -> Recipe:
    """``--recipe`` with the explicitly given flags applied."""
    return get_recipe(args.recipe, **cli_args.recipe_changes(args))


def fit_recipe(vae: VAE, recipe: Recipe, x_train: torch.Tensor, x_test: torch.Tensor | None = None, **keywords: Any):
    """:func:`pyrovae.fit` with a recipe's training settings (``final_lr`` as an exponential
    schedule); ``keywords`` are fit's other arguments (device, checkpoint, callbacks, ...)."""
    from ..train import exponential_lr, fit

    settings = recipe.training()
    final_lr = settings.pop("final_lr")
    schedule = exponential_lr(recipe.lr, final_lr, recipe.epochs) if final_lr else None
    return fit(vae, x_train, x_test, **settings, lr_schedule=schedule, **keywords)


def run(args: argparse.Namespace) -> dict:
    """Train on MNIST and write checkpoint, metrics and figures to ``args.out``."""
    from .. import data

    recipe = recipe_from_args(args)
    train, test = data.load_mnist(args.data)
    x_train = train.images[: args.subset] if args.subset else train.images
    x_test, y_test = (test.images[: args.subset], test.labels[: args.subset]) if args.subset else (test.images, test.labels)
    pyro.set_rng_seed(recipe.seed)  # the initial weights too, so a run is repeatable
    vae = build_vae(recipe)
    init_from_data(vae, x_train)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    history = fit_recipe(vae, recipe, x_train, x_test, device=args.device, checkpoint=out / "checkpoint.pt",
                         resume=args.resume, progress=not args.no_progress)
    wall = time.perf_counter() - t0
    metrics = {
        "recipe": args.recipe,
        "config": recipe.model_config().to_dict(),
        "train": {**recipe.training(), "subset": args.subset},
        "device": str(next(vae.parameters()).device),
        "wall_seconds": wall,
        "final_test_elbo": history.test_elbo[-1] if len(history) else None,
        "history": history.to_dict(),
    }
    write_json(out / "metrics.json", metrics)
    if recipe.binarize is not None:
        x_test = data.binarize(x_test, "static", seed=0)  # as fit scores it
    inspection_figures(vae, x_test, y_test, out, seed=recipe.seed, names=TRAIN_FIGURES)
    print(f"test ELBO {metrics['final_test_elbo']:.2f} nats after {recipe.epochs} epochs ({wall:.0f}s); wrote {out}/")
    return metrics
