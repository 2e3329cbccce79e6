"""``pyrovae train``: train a VAE from a named recipe and write a checkpoint, ``metrics.json``
and figures to an output folder.

``--data SOURCE`` is MNIST (the default), a torchvision data set, a tensor file or a folder
of images (:mod:`pyrovae.data.sources`). The data decide the model's input shape and, unless
a flag says otherwise, its likelihood (:func:`data_settings`); the checkpoint records the
source, so ``pyrovae evaluate`` and ``inspect`` score the same test split.

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
from ..data.sources import DataSource
from ..models import VAE, build_vae
from ..models.recipes import RECIPES, Recipe, get_recipe, init_from_data
from . import args as cli_args
from . import outdir
from .errors import Interrupted, UsageError, user_errors
from .loading import load_data
from .report import TRAIN_FIGURES, inspection_figures, label_name

HELP = "train a VAE from a recipe on MNIST or your own data; write checkpoint, metrics.json and figures"


def add_args(p: argparse.ArgumentParser) -> None:
    shown = RECIPES["default"]
    p.add_argument("--recipe", choices=tuple(RECIPES), default="default", metavar="NAME",
                   help=f"named recipe to start from: {', '.join(RECIPES)} (`pyrovae recipes` describes them). "
                        "Explicit flags override its fields; the defaults shown below are the default recipe's.")
    cli_args.add_flags(p.add_argument_group("model"), cli_args.MODEL_FLAGS, shown=shown, check=False)
    training = p.add_argument_group("training")
    cli_args.add_flags(training, cli_args.TRAINING_FLAGS, shown=shown, check=False)
    cli_args.add_device(training)
    cli_args.add_conveniences(training)
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


def recipe_from_args(args: argparse.Namespace, base: dict[str, Any] | None = None) -> Recipe:
    """``--recipe`` with ``base`` (what the data imply) and then the explicit flags applied.

    :raises UsageError: for a value the recipe refuses (``--epochs 0``, ``--lr -1``, ...).
    """
    changes = cli_args.recipe_changes(args)
    try:
        return get_recipe(args.recipe, **{**(base or {}), **changes})
    except ValueError as e:  # name the flag: "--epochs: epochs must be a positive integer, got 0"
        flags = {dest: spec[0] for dest, spec in {**cli_args.MODEL_FLAGS, **cli_args.TRAINING_FLAGS}.items()}
        field = next((dest for dest in changes if str(e).startswith(dest + " ")), None)
        raise UsageError(f"{flags[field]}: {e}" if field else str(e)) from None


def data_settings(src: DataSource) -> tuple[dict[str, Any], str]:
    """The recipe fields a data source implies, and why: its shape, its record (so that the
    checkpoint knows its data), and a likelihood that fits its values (Bernoulli only for
    binary data; MNIST keeps the recipe's Bernoulli with binarisation)."""
    if src.spec["source"] == "mnist":
        resized = src.spec["image_size"] is not None
        return ({"x_shape": src.x_shape, "extra": {"data": src.spec}} if resized else {}), ""
    fields: dict[str, Any] = {"x_shape": src.x_shape, "extra": {"data": src.spec}, "binarize": None}
    if src.binary:
        fields["likelihood"], why = "bernoulli", "binary data"
    elif src.kind == "images" and src.unit_interval:
        fields["likelihood"], why = "continuous_bernoulli", "grey levels in [0, 1]"
    else:
        fields["likelihood"], why = "gaussian", "real values"
    if src.kind == "table":
        fields["net"] = "mlp"
    return fields, why


def fit_recipe(vae: VAE, recipe: Recipe, x_train: torch.Tensor, x_test: torch.Tensor | None = None, **keywords: Any):
    """:func:`pyrovae.fit` with a recipe's training settings (``final_lr`` as an exponential
    schedule); ``keywords`` are fit's other arguments (device, checkpoint, callbacks, ...)."""
    from ..train import exponential_lr, fit

    settings = recipe.training()
    final_lr = settings.pop("final_lr")
    scheduled = keywords.get("lr_scheduler") is not None  # a torch scheduler replaces the final_lr decay
    schedule = exponential_lr(recipe.lr, final_lr, recipe.epochs) if final_lr and not scheduled else None
    return fit(vae, x_train, x_test, **settings, lr_schedule=schedule, **keywords)


def run(args: argparse.Namespace) -> dict:
    """Check the flags, ``--out`` and ``--data``, take the folder's lock, then train.

    :raises UsageError: for bad flags, paths or data, before any training.
    :raises Interrupted: on Ctrl-C, saying which checkpoint is kept and how to resume it.
    """
    try:
        return _checked_run(args)
    except KeyboardInterrupt:
        checkpoint = Path(args.out) / "checkpoint.pt"
        raise Interrupted(outdir.interrupted_message(checkpoint, getattr(args, "argv", ["train"]))) from None


def _checked_run(args: argparse.Namespace) -> dict:
    recipe = recipe_from_args(args)  # the flags first, before any data is read
    cli_args.conveniences(args, recipe.epochs)
    out = Path(args.out)
    outdir.check_folder(out, "--out")
    src = load_data(args.data, args.data_root, args.image_size)
    fields, why = data_settings(src)
    recipe = recipe_from_args(args, fields)
    _report_data(src, fields, why, cli_args.recipe_changes(args))
    out.mkdir(parents=True, exist_ok=True)
    with outdir.RunLock(out) as lock:
        if lock.took_over:
            print(f"note: took over {lock.path} from PID {lock.took_over}, which is no longer running")
        _, notes = outdir.check_checkpoint(out / "checkpoint.pt", recipe.model_config().to_dict(), recipe.training(),
                                           resume=args.resume, overwrite=args.overwrite)
        for note in notes:
            print(note)
        return train(args, recipe, src, out)


def _report_data(src: DataSource, fields: dict[str, Any], why: str, explicit: dict[str, Any]) -> None:
    if not fields:
        return  # plain MNIST: the recipe as it stands
    print(f"data: {src.describe()}")
    for note in src.notes:
        print(f"  {note}")
    picked = {k: v for k, v in fields.items() if k in ("likelihood", "binarize", "net") and k not in explicit}
    if picked:
        shown = ", ".join(f"{k} {'none' if v is None else v}" for k, v in picked.items())
        flags = "/".join(f"--{k}" for k in picked)
        print(f"picked for {why}: {shown} (override with {flags})")


def train(args: argparse.Namespace, recipe: Recipe, src: DataSource, out: Path) -> dict:
    """Train ``recipe`` on ``src`` and write checkpoint, metrics and figures to ``out``."""
    from .. import data
    from ..train import check_training_data

    x_train, x_test = src.train[: args.subset], src.test[: args.subset]
    y_test = None if src.test_labels is None else src.test_labels[: args.subset]
    pyro.set_rng_seed(recipe.seed)  # the initial weights too, so a run is repeatable
    with user_errors("the model", ValueError):
        vae = build_vae(recipe)
    with user_errors(f"--data {src.spec['source']}", ValueError, TypeError):  # once per data set, before training
        x_train = check_training_data(vae, x_train, recipe.binarize, "the training data")
        x_test = check_training_data(vae, x_test, recipe.binarize, "the test data")
    init_from_data(vae, x_train)
    t0 = time.perf_counter()
    history = fit_recipe(vae, recipe, x_train, x_test, device=args.device, checkpoint=out / "checkpoint.pt",
                         resume=args.resume, progress=not args.no_progress,
                         **cli_args.conveniences(args, recipe.epochs))
    wall = time.perf_counter() - t0
    metrics = {
        "recipe": args.recipe,
        "config": recipe.model_config().to_dict(),
        "train": {**recipe.training(), "subset": args.subset},
        "data": src.spec,
        "device": str(next(vae.parameters()).device),
        "wall_seconds": wall,
        "final_test_elbo": history.test_elbo[-1] if len(history) else None,
        "history": history.to_dict(),
    }
    write_json(out / "metrics.json", metrics)
    if recipe.binarize is not None:
        x_test = data.binarize(x_test, "static", seed=0)  # as fit scores it
    names = TRAIN_FIGURES if src.kind == "images" else ("latent",)
    inspection_figures(vae, x_test, y_test, out, seed=recipe.seed, names=names, label_name=label_name(src.spec),
                       label_names=src.classes)
    print(f"test ELBO {metrics['final_test_elbo']:.2f} nats after {recipe.epochs} epochs ({wall:.0f}s); wrote {out}/")
    return metrics
