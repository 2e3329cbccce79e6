r"""Test log-likelihood on binarised MNIST, the field's standard comparison.

Trains a named recipe (:data:`pyrovae.models.recipes.RECIPES`; ``pyrovae recipes`` lists them,
``--config`` is the old name of ``--recipe``; any recipe field can be overridden by its flag,
as in ``pyrovae train``), then estimates :math:`-\log p(x)` on the test set with the
importance-weighted estimator of Burda et al. (2016) (``evaluate.log_likelihood``, K = 5000
samples from the guide per test image) and writes a JSON record: configuration, epochs,
wall time, NLL ± standard error.

The benchmark's recipes (one stochastic layer, z = 50, Bernoulli likelihood; batch 100, Adam 1e-3,
optionally decayed geometrically to ``--final-lr``). The first five use Burda et al.'s
network, 784-200-200-50 with tanh; the ``-large`` ones a wider 784-512-512-50 with GELU,
which learns more per epoch, for a CPU budget of a few hundred epochs, not 3280:

========== =====================================================================
vae-burda  diagonal Normal guide, N(0, I) prior, ELBO (TraceMeanField_ELBO)
vampprior  VampPrior with 500 pseudo-inputs (Tomczak & Welling 2018), ELBO
iaf        guide = Normal + 2 IAF steps (Kingma et al. 2016), ELBO (Trace_ELBO)
iwae       IWAE bound with ``--particles`` K (default 50) per data point
best       IAF guide + affine flow prior, trained with the IWAE bound (K = 5)
vae-large  the plain VAE (as ``vae-burda``) on the wider network, ELBO (Trace_ELBO)
vamp-large VampPrior (500 pseudo-inputs) on the wider network, ELBO
iwae-large the plain model on the wider network, trained with the IWAE bound (K = 5)
best-large IAF guide (2 steps) + affine flow prior (2 steps), wider network, ELBO
best-large-iwae  ``best-large`` trained with the IWAE bound (K = 5); with ``--init-from``
           a ``best-large`` checkpoint it fine-tunes that model (Burda et al.: the IWAE
           bound trains a better decoder than the ELBO)
========== =====================================================================

Three hierarchical recipes (:func:`pyrovae.models.build_hierarchical_vae`, latent layers z1 of 100
and z2 of 50, trained with :func:`pyrovae.fit` on the IWAE bound, K = 5, for 300 epochs with
the learning rate decayed to 1e-4; log p(x) is importance-sampled over both layers). Only the
training flags apply to them (``--epochs``, ``--particles``, ``--loss``, ``--lr``, ...):

============ =====================================================================
hvae-burda   Burda et al.'s two-layer network: 784-200-200-z1, z1-100-100-z2, tanh, bottom-up guide
hvae-wide    784-512-512-z1, z1-256-256-z2, GELU, bottom-up guide, 10 epochs of KL warm-up
hvae-ladder  ``hvae-wide`` with the top-down guide and the residual (NVAE) posterior
============ =====================================================================

``hvae-ladder``'s top layer collapses: after 30 epochs z2 held 0 of 50 active units and
0.02 nats of KL. On 20k training images for 10 epochs the bottom-up guide kept 4.8 nats
in z2 against 0.08 for the residual top-down one, at the same log p(x) and 12% less time,
so ``hvae-wide`` has the bottom-up guide.

``vampprior`` on Burda's tanh network stays at the pixel marginals (test ELBO about -199):
the VampPrior leaves the location of z free, z drifts to where the decoder's tanh units
saturate, and the decoder ignores it (see :class:`pyrovae.priors.VampPrior`). ``vamp-large``
has GELU units and trains.

Binarisation: ``dynamic`` draws fresh binary training images every epoch; ``static`` draws
them once, ``data.binarize(train, "static", seed=SEED)`` with ``SEED = --seed`` (0). The
test images are always binarised once with ``data.binarize(test, "static", seed=0)``
(``STATIC_TEST_SEED``), so every row scores the same binary test set. (This is not
Larochelle's fixed binarised-MNIST file, which most "static" papers use.)

Example (tiny)::

    python benchmarks/likelihood.py --recipe vae-burda --epochs 1 --subset 500 --samples 50

References:

1. Burda, Y., Grosse, R. and Salakhutdinov, R. (2016). Importance Weighted Autoencoders. ICLR.
2. Kingma, D. P. et al. (2016). Improved Variational Inference with Inverse Autoregressive
   Flow. NeurIPS.
3. Tomczak, J. M. and Welling, M. (2018). VAE with a VampPrior. AISTATS.
4. Rezende, D. J. and Mohamed, S. (2015). Variational Inference with Normalizing Flows. ICML.
5. Papamakarios, G. et al. (2021). Normalizing Flows for Probabilistic Modeling and
   Inference. JMLR.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import pyro
import torch

#: Seed of the one binarisation of the test set that every row is scored on.
STATIC_TEST_SEED = 0

#: recipe name -> (published NLL, source) it is compared with; the recipes themselves are
#: pyrovae.models.recipes.RECIPES
PUBLISHED: dict[str, tuple[float, str]] = {
    "vae-burda": (86.76, "Burda et al. 2016, VAE 1 layer, 3280 epochs, dynamic"),
    "vampprior": (85.57, "Tomczak & Welling 2018, VampPrior 1 layer, static"),
    "iaf": (79.10, "Kingma et al. 2016, IAF with a ResNet VAE (different network)"),
    "iwae": (84.78, "Burda et al. 2016, IWAE k=50 1 layer, dynamic"),
    "best": (84.78, "target: beat Burda et al.'s IWAE k=50 (84.78)"),
    "vae-large": (86.76, "Burda et al. 2016, VAE 1 layer (200-200), 3280 epochs, dynamic"),
    "vamp-large": (85.57, "Tomczak & Welling 2018, VampPrior 1 layer, static"),
    "iwae-large": (85.54, "Burda et al. 2016, IWAE k=5 1 layer, dynamic"),
    "best-large": (84.78, "target: beat Burda et al.'s IWAE k=50 (84.78)"),
    "best-large-iwae": (84.78, "target: beat Burda et al.'s IWAE k=50 (84.78)"),
    "hvae-burda": (83.89, "Burda et al. 2016, IWAE k=5 2 layers, 3280 epochs, dynamic"),
    "hvae-wide": (82.90, "target: beat Burda et al.'s IWAE k=50 2 layers (82.90)"),
    "hvae-ladder": (82.90, "target: beat Burda et al.'s IWAE k=50 2 layers (82.90)"),
}

#: hierarchical recipe name -> (HierarchicalConfig fields, training fields over ``vae-burda``'s)
_IWAE5 = {"epochs": 300, "loss": "iwae", "num_particles": 5, "final_lr": 1e-4}
HIERARCHICAL: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "hvae-burda": ({}, _IWAE5),
    "hvae-wide": ({"activation": "gelu", "hidden": [[512, 512], [256, 256]]}, {**_IWAE5, "warmup_epochs": 10.0}),
    "hvae-ladder": ({"guide": "top_down", "combine": "residual", "activation": "gelu",
                     "hidden": [[512, 512], [256, 256]]}, {**_IWAE5, "warmup_epochs": 10.0}),
}


class _TimeUp(Exception):
    """Raised by the epoch callback to end training at the time limit."""


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Train ``args.recipe``, score the test set, write and return the JSON record."""
    from pyrovae import data, evaluate
    from pyrovae.cli.train import fit_recipe
    from pyrovae.models import build_vae
    from pyrovae.models.recipes import init_from_data

    recipe, vae = _model(args)
    torch.set_num_threads(args.threads)
    pyro.set_rng_seed(recipe.seed)
    pyro.clear_param_store()
    train, test = data.load_mnist(args.data)
    x_train = train.images[: args.subset] if args.subset else train.images
    x_test = test.images[: args.subset] if args.subset else test.images
    if args.test_subset:
        x_test = x_test[: args.test_subset]
    x_test_bin = data.binarize(x_test, "static", seed=STATIC_TEST_SEED)
    vae = build_vae(recipe.model_config()) if vae is None else vae
    init_from_data(vae, x_train)  # a VampPrior's pseudo-inputs start at training images
    init = _init_from(vae, args) if args.init_from else None
    out = Path(args.out)
    record = _new_record(args, recipe, dict(vae.config), n_test=len(x_test))
    if init is not None:
        record["init_from"] = init
    t0 = time.perf_counter()

    def on_epoch(epoch: int, model: Any, history: Any) -> None:
        _record_history(record, history, train_seconds=time.perf_counter() - t0)
        _write(out, record)
        if args.time_limit and time.perf_counter() - t0 > 60 * args.time_limit:
            raise _TimeUp

    try:
        history = fit_recipe(vae, recipe, x_train, x_test, device="cpu", callbacks=[on_epoch], progress=False,
                             checkpoint=args.checkpoint, resume=args.checkpoint is not None)
        record["stopped_by"] = "epochs"
        if "history" not in record and len(history):
            # the checkpoint held a finished run, so nothing was trained here: score that
            # run as it is, with the training time its epochs took then
            _record_history(record, history, train_seconds=sum(history.seconds))
            record["scored_from_checkpoint"] = str(args.checkpoint)
    except _TimeUp:
        record["stopped_by"] = "time limit"
    record.setdefault("epochs", 0)
    record.setdefault("train_seconds", time.perf_counter() - t0)
    record["status"] = "evaluating"
    _write(out, record)

    vae.eval()
    torch.set_num_threads(args.eval_threads or args.threads)
    t1 = time.perf_counter()
    with torch.no_grad():
        log_px, stderr = evaluate.log_likelihood(vae, x_test_bin, num_samples=args.samples, batch_size=args.eval_batch,
                                                progress=True)
    n = len(log_px)
    record.update(
        nll=float(-log_px.mean()),
        nll_se_mc=float(stderr.pow(2).sum().sqrt() / n),  # Monte Carlo error of the K-sample estimate
        nll_se_data=float(log_px.std() / math.sqrt(n)) if n > 1 else None,  # spread over test images
        eval_seconds=time.perf_counter() - t1,
        status="done",
    )
    record["wall_seconds"] = record["train_seconds"] + record["eval_seconds"]
    _write(out, record)
    print(f"{args.recipe}: NLL {record['nll']:.2f} ± {record['nll_se_mc']:.2f} nats after {record['epochs']} epochs "
          f"({record['wall_seconds']:.0f}s); wrote {out}")
    return record


def _model(args: argparse.Namespace) -> tuple[Any, Any]:
    """The recipe of ``args`` (with its flags applied), and the hierarchical VAE it names (``None``
    for a one-layer recipe, built from the recipe's model config once the seed is set).

    :raises ValueError: for a model flag given with a hierarchical recipe.
    """
    from pyrovae.cli.args import MODEL_FLAGS, recipe_changes
    from pyrovae.models import build_hierarchical_vae
    from pyrovae.models.recipes import get_recipe

    changes = recipe_changes(args)
    if args.recipe not in HIERARCHICAL:
        return get_recipe(args.recipe, **changes), None
    model_flags = sorted(MODEL_FLAGS[k][0] for k in changes if k in MODEL_FLAGS)
    if model_flags:
        raise ValueError(f"{', '.join(model_flags)} do not apply to the hierarchical recipe {args.recipe}: its network "
                         "is fixed (see this script's docstring); only the training flags apply")
    model_fields, training = HIERARCHICAL[args.recipe]
    recipe = get_recipe("vae-burda", **{**training, **changes})
    torch.manual_seed(recipe.seed)  # the initial weights, as pyro.set_rng_seed does for the others
    return recipe, build_hierarchical_vae(**model_fields)


def _new_record(args: argparse.Namespace, recipe: Any, model: dict[str, Any], n_test: int) -> dict[str, Any]:
    """The JSON record of a run before training: what is trained (``model``, the model's config),
    how, and how it is scored."""
    published = PUBLISHED.get(args.recipe, (None, "no published number for this recipe"))
    record: dict[str, Any] = {
        "config_name": args.recipe,
        "model": model,
        "train": {"loss": recipe.loss, "particles": recipe.num_particles, "epochs_requested": recipe.epochs,
                  "batch_size": recipe.batch_size, "lr": recipe.lr, "final_lr": recipe.final_lr,
                  "warmup_epochs": recipe.warmup_epochs, "binarize": recipe.binarize, "seed": recipe.seed,
                  "subset": args.subset, "time_limit_min": args.time_limit, "threads": args.threads},
        "eval": {"num_samples": args.samples, "test_points": n_test, "test_binarize_seed": STATIC_TEST_SEED,
                 "threads": args.eval_threads or args.threads},
        "published": dict(zip(("nll", "source"), published)),
        "command": "python benchmarks/likelihood.py " + " ".join(sys.argv[1:]),
        "status": "training",
    }
    return record


def _record_history(record: dict[str, Any], history: Any, train_seconds: float) -> None:
    """Put a fit :class:`~pyrovae.train.History` (epochs, test ELBO per epoch) into the record."""
    record.update(epochs=history.epoch[-1], train_seconds=train_seconds, test_elbo=history.test_elbo[-1],
                  history={"epoch": history.epoch, "test_elbo": history.test_elbo, "seconds": history.seconds})


def _init_from(vae: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Start from a trained checkpoint's weights (same model config); returns what it was."""
    from pyrovae.train import checkpoint as ckpt

    if args.checkpoint is not None and Path(args.checkpoint).resolve() == Path(args.init_from).resolve():
        raise ValueError("--init-from and --checkpoint must be different files (the run writes its own checkpoint)")
    payload = ckpt.read_checkpoint(args.init_from)
    ckpt.load_into(vae, payload, path=args.init_from)
    return {"path": str(args.init_from), "epochs": int(payload["epoch"]), "fit": payload.get("fit_config")}


def _write(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1))
    tmp.replace(path)


def build_parser() -> argparse.ArgumentParser:
    from pyrovae.cli import args as cli_args
    from pyrovae.models.recipes import RECIPES

    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    names = (*RECIPES, *HIERARCHICAL)
    p.add_argument("--recipe", "--config", dest="recipe", required=True, choices=names, metavar="NAME",
                   help=f"named recipe (--config is the old name): {', '.join(names)}")
    # every recipe field can be overridden; the defaults shown are vae-burda's
    cli_args.add_flags(p.add_argument_group("model"), cli_args.MODEL_FLAGS, shown=RECIPES["vae-burda"], check=False)
    p.add_argument("--components", dest="num_components", type=int, default=None, help="the same as --num-components")
    cli_args.add_flags(p.add_argument_group("training"), cli_args.TRAINING_FLAGS, shown=RECIPES["vae-burda"],
                       check=False)
    p.add_argument(
        "--time-limit", type=float, default=None, help="stop training after the epoch that passes this many minutes"
    )
    p.add_argument(
        "--samples", type=int, default=5000, help="importance samples K per test image (default %(default)s)"
    )
    p.add_argument("--subset", type=int, default=None, help="use the first N training and test images (tiny runs)")
    p.add_argument("--test-subset", type=int, default=None, help="score only the first N test images")
    p.add_argument("--eval-batch", type=int, default=100, help="test images per importance-sampling batch")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default %(default)s)")
    p.add_argument(
        "--eval-threads", type=int, default=None, help="torch CPU threads for the evaluation (default: --threads)"
    )
    p.add_argument("--checkpoint", type=Path, default=None, help="checkpoint file to write and resume from")
    p.add_argument("--init-from", type=Path, default=None,
                   help="start from this checkpoint's weights (a run of the same model config), e.g. to fine-tune")
    p.add_argument("--data", type=Path, default=None, help="MNIST folder (default: the library's cache)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/likelihood.json"), help="JSON output")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
