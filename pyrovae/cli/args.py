"""Argument groups shared by the ``pyrovae`` commands: model, training, data, device, output.

Each flag is defined once, in :data:`MODEL_FLAGS` or :data:`TRAINING_FLAGS` (named by the
:class:`~pyrovae.models.recipes.Recipe` field it sets) or in one of the small ``add_*``
functions; a command picks the flags it needs and their defaults. ``pyrovae train`` gives its
recipe flags the default ``None``, so that an explicit flag can be told from a default and
override only that field of the recipe (:func:`recipe_changes`).

Bad numbers are argparse errors (exit code 2) before anything runs, except where a command
builds a :class:`~pyrovae.models.recipes.Recipe` from the flags (``pyrovae train``): the
recipe checks its own fields, first thing, with the same exit code.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from .. import flows, likelihoods
from ..infer.losses import LOSSES
from ..models.config import NETS, PRIORS
from ..nets.functional import _ACTIVATIONS
from .errors import UsageError

ACTIVATIONS = tuple(_ACTIVATIONS)


def _number(kind: Callable[[str], Any], test: Callable[[Any], bool], what: str) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not test(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    parse.__name__ = what  # argparse names the type in some messages
    parse.base = kind  # type: ignore[attr-defined]  # the unchecked parse, for add_flags(check=False)
    return parse


positive_int = _number(int, lambda v: v >= 1, "a positive integer")
nonnegative_int = _number(int, lambda v: v >= 0, "an integer >= 0")
positive_float = _number(float, lambda v: v > 0 and v != float("inf"), "a positive number")
nonnegative_float = _number(float, lambda v: 0 <= v < float("inf"), "a number >= 0")


def hidden_widths(text: str) -> tuple[int, ...]:
    """``"512,512"`` -> ``(512, 512)``: the one ``--hidden`` format of every command."""
    try:
        widths = tuple(int(w) for w in text.split(",") if w.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--hidden takes comma-separated integers like 512,512, got {text!r}"
        ) from None
    if not widths or any(w < 1 for w in widths):
        raise argparse.ArgumentTypeError(f"--hidden widths must be positive integers like 512,512, got {text!r}")
    return widths


def device_name(text: str) -> str:
    """``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``, checked against this machine."""
    if text == "auto":
        return text
    try:
        device = torch.device(text)
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"unknown device {text!r}; expected auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise argparse.ArgumentTypeError(f"{text!r} was asked for but this machine has no usable CUDA GPU; "
                                             "use --device cpu (or auto)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise argparse.ArgumentTypeError(f"{text!r}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                                             f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise argparse.ArgumentTypeError("'mps' was asked for but this machine has no Apple GPU; use --device cpu")
    elif device.type != "cpu":
        raise argparse.ArgumentTypeError(f"device {text!r} is not supported; expected auto, cpu, cuda, cuda:N or mps")
    return text


#: Recipe field -> (flag, argparse keywords, help). The model part of a recipe.
MODEL_FLAGS: dict[str, tuple[str, dict[str, Any], str]] = {
    "z_dim": ("--z-dim", {"type": positive_int}, "latent dimension; 2 draws the latent map directly"),
    "hidden": ("--hidden", {"type": hidden_widths, "metavar": "W1,W2"},
               "MLP hidden widths, comma-separated (the decoder mirrors them)"),
    "activation": ("--activation", {"choices": ACTIVATIONS}, "MLP non-linearity"),
    "prior": ("--prior", {"choices": PRIORS}, "prior p(z)"),
    "num_components": ("--num-components", {"type": positive_int},
                       "components of the mog prior / pseudo-inputs of vamp"),
    "likelihood": ("--likelihood", {"choices": sorted(likelihoods.REGISTRY)},
                   "observation model p(x|z); bernoulli needs --binarize dynamic/static"),
    "net": ("--net", {"choices": NETS}, "encoder/decoder kind"),
    "beta": ("--beta", {"type": nonnegative_float}, "KL weight; 1 is the true ELBO"),
    "guide_flows": ("--guide-flows", {"type": nonnegative_int}, "IAF steps on top of the Normal guide q(z|x)"),
    "prior_flows": ("--prior-flows", {"type": positive_int}, "autoregressive steps of the flow prior"),
    "flow_kind": ("--flow-kind", {"choices": flows.FLOW_KINDS}, "step of the flow prior"),
}

#: Recipe field -> (flag, argparse keywords, help). The training part of a recipe.
TRAINING_FLAGS: dict[str, tuple[str, dict[str, Any], str]] = {
    "epochs": ("--epochs", {"type": positive_int}, "passes over the training set"),
    "batch_size": ("--batch-size", {"type": positive_int}, "examples per step"),
    "lr": ("--lr", {"type": nonnegative_float}, "Adam learning rate (0: the weights stay as they are)"),
    "final_lr": ("--final-lr", {"type": positive_float},
                 "decay the learning rate geometrically to this value at the last epoch; none: constant"),
    "loss": ("--loss", {"choices": LOSSES}, ("objective: Trace_ELBO, TraceMeanField_ELBO (analytic KL), "
             "JitTrace_ELBO, or the per-data-point IWAE bound (pyrovae.iwae.IWAE_ELBO)")),
    "num_particles": ("--particles", {"type": positive_int},
                      "samples of z per example; none: 1, and 5 for --loss iwae"),
    "warmup_epochs": ("--warmup", {"type": nonnegative_float}, "epochs of linear KL warm-up from beta=0"),
    "binarize": ("--binarize", {"choices": ("dynamic", "static", "none")}, "binarisation of the pixels"),
    "seed": ("--seed", {"type": int}, "random seed"),
}


def _shown(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value)
    return str(value)


def add_flags(group: Any, specs: Mapping[str, tuple[str, dict[str, Any], str]], names: Iterable[str] | None = None,
              defaults: Mapping[str, Any] | None = None, shown: Any = None, check: bool = True) -> None:
    """Add the flags ``names`` (all of ``specs`` when ``None``) to a parser or group.

    :param defaults: ``dest -> default``; a flag not named here defaults to ``None``.
    :param shown: an object (a recipe) whose attribute of the same name the help shows as the
        default, for flags whose real default is ``None`` (the recipe's value).
    :param check: range-check numbers in argparse; ``False`` where the recipe they build checks them.
    """
    defaults = defaults or {}
    for dest in names if names is not None else specs:
        flag, keywords, text = specs[dest]
        default = defaults.get(dest)
        value = default if dest in defaults or shown is None else getattr(shown, dest)
        if not check and hasattr(keywords.get("type"), "base"):
            keywords = {**keywords, "type": keywords["type"].base}
        if "choices" not in keywords:
            keywords = {"metavar": flag.lstrip("-").upper().replace("-", "_"), **keywords}
        group.add_argument(flag, dest=dest, default=default, help=f"{text} (default {_shown(value)})", **keywords)


def recipe_changes(args: argparse.Namespace) -> dict[str, Any]:
    """The recipe fields the command line set explicitly (``--binarize none`` becomes ``None``)."""
    changes = {dest: getattr(args, dest) for dest in (*MODEL_FLAGS, *TRAINING_FLAGS)
               if getattr(args, dest, None) is not None}
    if changes.get("binarize") == "none":
        changes["binarize"] = None
    return changes


def image_size(text: str) -> tuple[int, int]:
    """``"28"`` -> ``(28, 28)``; ``"32x24"`` or ``"32,24"`` -> ``(32, 24)`` (height, width)."""
    parts = text.lower().replace("x", ",").split(",")
    try:
        size = tuple(int(p) for p in parts)
    except ValueError:
        size = ()
    if len(size) == 1:
        size = size * 2
    if len(size) != 2 or min(size) < 1:
        raise argparse.ArgumentTypeError(f"expected a size like 28 or 32x24 (height x width), got {text!r}")
    return size


def check_data_folder(path: Path | None, flag: str = "--data-root") -> None:
    """Refuse a data folder that is a file.

    :raises UsageError: naming the path and what it should be.
    """
    if path is not None and Path(path).exists() and not Path(path).is_dir():
        raise UsageError(f"{flag} {path} is a file; it must be a folder (the one that holds MNIST/raw/ and the "
                         "other named data sets, or an empty one to download into)")


def add_data(group: Any, sources: bool = True) -> None:
    """``--data SOURCE`` (with ``sources``), ``--data-root DIR`` and ``--image-size``."""
    if sources:
        group.add_argument("--data", default=None, metavar="SOURCE",
                           help="mnist (default), fashion-mnist, kmnist, cifar10, a .npy/.npz/.pt file of images "
                                "(N, C, H, W) / (N, H, W) or a table (N, D), or a folder of PNG/JPEG images")
        group.add_argument("--image-size", type=image_size, default=None, metavar="H[xW]",
                           help="resize the images to this size (needed for a folder of mixed sizes)")
    group.add_argument("--data-root", type=Path, default=None, metavar="DIR",
                       help="folder of MNIST and the other named data sets (default $PYROVAE_DATA or ~/.cache/pyrovae)")


def add_subset(group: Any, flag: str = "--subset", what: str = "train on the first N points only (quick runs)") -> None:
    group.add_argument(flag, type=positive_int, default=None, metavar="N", help=what)


def add_device(group: Any, default: str = "auto") -> None:
    group.add_argument("--device", type=device_name, default=default,
                       help="auto (CUDA if available), cpu, cuda, cuda:N or mps (default %(default)s)")


def add_seed(group: Any) -> None:
    group.add_argument("--seed", type=int, default=0, help="random seed (default %(default)s)")


def add_threads(group: Any) -> None:
    group.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: torch's choice)")


#: ``--lr-scheduler`` NAME -> a factory ``(optimizer, epochs) -> torch LR scheduler``
LR_SCHEDULERS: dict[str, Callable[[torch.optim.Optimizer, int], Any]] = {
    "cosine": lambda opt, epochs: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs),
    # fit steps a plateau scheduler on the negative held-out ELBO (lower is better)
    "plateau": lambda opt, epochs: torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=2),
}


def add_conveniences(group: Any) -> None:
    """``--clip-grad-norm``, ``--patience``, ``--lr-scheduler`` and ``--tensorboard``: fit's
    training conveniences (:func:`conveniences` turns them into its keywords)."""
    group.add_argument("--clip-grad-norm", type=positive_float, default=None, metavar="C",
                       help="clip the gradients' global 2-norm to C before each step (default: no clipping)")
    group.add_argument("--patience", type=positive_int, default=None, metavar="N",
                       help="stop after N epochs without a better held-out ELBO, keeping OUT/best.pt (default: no "
                            "early stopping)")
    group.add_argument("--lr-scheduler", choices=tuple(LR_SCHEDULERS), default=None,
                       help="a torch LR scheduler over the epochs: cosine annealing to 0, or halve the rate when the "
                            "held-out ELBO stalls for 2 epochs (replaces the recipe's --final-lr decay)")
    group.add_argument("--tensorboard", type=Path, default=None, metavar="DIR",
                       help="also write TensorBoard scalars (ELBO, reconstruction, KL, beta, lr) to DIR; needs "
                            "pip install 'pyrovae[tensorboard]'")


def conveniences(args: argparse.Namespace, epochs: int) -> dict[str, Any]:
    """fit's keywords for :func:`add_conveniences`' flags.

    :raises UsageError: for ``--tensorboard`` without the package, or ``--lr-scheduler`` with an
        explicit ``--final-lr``.
    """
    if args.tensorboard is not None:
        import importlib.util

        if importlib.util.find_spec("tensorboard") is None:
            raise UsageError("--tensorboard needs the tensorboard package: pip install 'pyrovae[tensorboard]'")
    if args.lr_scheduler is not None and getattr(args, "final_lr", None) is not None:
        raise UsageError("give --lr-scheduler or --final-lr, not both (each sets the learning-rate schedule)")
    make = LR_SCHEDULERS.get(args.lr_scheduler)
    return {
        "clip_grad_norm": args.clip_grad_norm,
        "patience": args.patience,
        "lr_scheduler": (lambda opt: make(opt, epochs)) if make else None,
        "tensorboard": args.tensorboard,
    }


def add_out(group: Any, default: Path | None, what: str, required: bool = False) -> None:
    shown = f" (default {default})" if default is not None else ""
    group.add_argument("--out", type=Path, default=default, required=required, help=what + shown)
