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
from . import outdir
from .errors import Interrupted, UsageError
from .loading import load_mnist
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
    output.add_argument("--resume", action="store_true",
                        help="continue from OUT/checkpoint.pt (of the same model configuration) if it exists")
    output.add_argument("--overwrite", action="store_true",
                        help="replace a checkpoint already in OUT (without it, or --resume, such a run is refused)")
    output.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def recipe_from_args(args: argparse.Namespace) -> Recipe:
    """``--recipe`` with the explicitly given flags applied.

    :raises UsageError: for a value the recipe refuses (``--epochs 0``, ``--lr -1``, ...).
    """
    changes = cli_args.recipe_changes(args)
    try:
        return get_recipe(args.recipe, **changes)
    except ValueError as e:  # name the flag: "--epochs: epochs must be a positive integer, got 0"
        flags = {dest: spec[0] for dest, spec in {**cli_args.MODEL_FLAGS, **cli_args.TRAINING_FLAGS}.items()}
        field = next((dest for dest in changes if str(e).startswith(dest + " ")), None)
        raise UsageError(f"{flags[field]}: {e}" if field else str(e)) from None


def fit_recipe(vae: VAE, recipe: Recipe, x_train: torch.Tensor, x_test: torch.Tensor | None = None, **keywords: Any):
    """:func:`pyrovae.fit` with a recipe's training settings (``final_lr`` as an exponential
    schedule); ``keywords`` are fit's other arguments (device, checkpoint, callbacks, ...)."""
    from ..train import exponential_lr, fit

    settings = recipe.training()
    final_lr = settings.pop("final_lr")
    schedule = exponential_lr(recipe.lr, final_lr, recipe.epochs) if final_lr else None
    return fit(vae, x_train, x_test, **settings, lr_schedule=schedule, **keywords)


def run(args: argparse.Namespace) -> dict:
    """Check the flags and ``--out``, take the folder's lock, then train (:func:`train`).

    :raises UsageError: for bad flags or paths, before any training.
    :raises Interrupted: on Ctrl-C, saying which checkpoint is kept and how to resume it.
    """
    recipe = recipe_from_args(args)
    out = Path(args.out)
    outdir.check_folder(out, "--out")
    cli_args.check_data_folder(args.data)
    out.mkdir(parents=True, exist_ok=True)
    with outdir.RunLock(out) as lock:
        if lock.took_over:
            print(f"note: took over {lock.path} from PID {lock.took_over}, which is no longer running")
        checkpoint = out / "checkpoint.pt"
        _, notes = outdir.check_checkpoint(checkpoint, recipe.model_config().to_dict(), recipe.training(),
                                           resume=args.resume, overwrite=args.overwrite)
        for note in notes:
            print(note)
        try:
            return train(args, recipe, out)
        except KeyboardInterrupt:
            raise Interrupted(outdir.interrupted_message(checkpoint, getattr(args, "argv", ["train"]))) from None


def train(args: argparse.Namespace, recipe: Recipe, out: Path) -> dict:
    """Train ``recipe`` on MNIST and write checkpoint, metrics and figures to ``out``."""
    from .. import data

    train_set, test_set = load_mnist(args.data)
    x_train = train_set.images[: args.subset] if args.subset else train_set.images
    x_test, y_test = test_set.images[: args.subset], test_set.labels[: args.subset]
    pyro.set_rng_seed(recipe.seed)  # the initial weights too, so a run is repeatable
    vae = build_vae(recipe)
    init_from_data(vae, x_train)
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
