"""Plumbing shared by runnable experiments (the scripts in ``examples/``): common flags, a
data subset, seeding, and a JSON file of the numbers a run measured.

An experiment script stays thin::

    def main(args):
        run = experiment.start(args)                      # seeds, threads, output folder
        train, test = experiment.mnist_subset(args)
        ...                                               # library calls
        return run.finish("my_example", {"test_elbo": -101.2}, key="test_elbo")

    if __name__ == "__main__":
        main(experiment.parser(__doc__, epochs=10).parse_args())
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyro
import torch

from .. import data
from .._util.files import write_json


def parser(
    doc: str | None,
    epochs: int = 5,
    subset: int | None = None,
    test_subset: int | None = None,
    batch_size: int = 100,
    z_dim: int | None = None,
    hidden: Sequence[int] | None = None,
) -> argparse.ArgumentParser:
    """An ``ArgumentParser`` with the flags every experiment shares.

    ``--epochs``, ``--subset`` (training examples, default all), ``--test-subset``,
    ``--batch-size``, ``--seed``, ``--threads`` (torch CPU threads) and ``--out`` (folder for
    figures and the numbers file); ``--z-dim`` and ``--hidden`` (MLP widths) when given a
    default. The script adds its own flags to the returned parser.

    :param doc: the script's docstring; its first line becomes the description.
    :param z_dim: default of ``--z-dim`` (``None``: no such flag).
    :param hidden: default of ``--hidden`` (``None``: no such flag).
    """
    first = (doc or "").strip().splitlines()[0] if doc and doc.strip() else None
    p = argparse.ArgumentParser(description=first)
    p.add_argument("--epochs", type=int, default=epochs, help="training epochs")
    p.add_argument("--subset", type=int, default=subset, help="use the first N training examples (default: all)")
    p.add_argument("--test-subset", type=int, default=test_subset, help="use the first N test examples (default: all)")
    p.add_argument("--batch-size", type=int, default=batch_size, help="examples per step")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--out", type=Path, default=Path("results"), help="folder for figures and numbers")
    if z_dim is not None:
        p.add_argument("--z-dim", type=int, default=z_dim, help="latent dimension")
    if hidden is not None:
        p.add_argument("--hidden", type=int, nargs="+", default=list(hidden), help="MLP hidden widths")
    return p


def defaults(p: argparse.ArgumentParser, **overrides: Any) -> argparse.Namespace:
    """The parser's defaults as a namespace, with ``overrides``: to call ``main`` from Python."""
    args = p.parse_args([])
    for k, v in overrides.items():
        if not hasattr(args, k):
            raise ValueError(f"unknown argument {k!r}; known: {sorted(vars(args))}")
        setattr(args, k, v)
    return args


@dataclass
class Run:
    """An experiment in progress: its output folder and its start time."""

    out: Path  # folder for figures and numbers
    started: float = field(default_factory=time.perf_counter)  # for the wall time
    started_at: float = field(default_factory=time.time)  # for finding the PNGs this run wrote

    def path(self, name: str) -> Path:
        """A file in the output folder."""
        return self.out / name

    def finish(self, name: str, numbers: dict[str, Any], key: str | None = None) -> dict[str, Any]:
        """Add the wall time, write ``<out>/<name>.json`` and print the key number.

        PNGs written to the output folder during the run are re-encoded with a 256-colour
        palette (:func:`shrink_png`), so that figures stay small enough to commit.

        :param name: the experiment's name (the JSON file's stem).
        :param numbers: JSON-able results.
        :param key: the entry to print as the headline result.
        :returns: ``numbers`` with ``seconds`` added.
        """
        numbers = {**numbers, "seconds": round(time.perf_counter() - self.started, 1)}
        for png in self.out.glob("*.png"):
            if png.stat().st_mtime >= self.started_at - 1:
                shrink_png(png)
        numbers = json.loads(json.dumps(numbers, default=_jsonable))  # tensors -> lists, early errors
        write_json(self.out / f"{name}.json", numbers)
        if key is not None:
            print(
                f"{name}: {key} = {_fmt(numbers[key])}  ({numbers['seconds']} s; "
                f"numbers in {self.out / (name + '.json')})"
            )
        return numbers


def shrink_png(path: str | os.PathLike, colors: int = 256) -> int:
    """Re-encode a PNG with a palette of at most ``colors`` colours, in place, if that makes
    it smaller (figures of lines, points and grey digits lose nothing visible).

    :returns: the file's size in bytes afterwards.
    """
    from PIL import Image  # matplotlib's own dependency

    path = Path(path)
    before = path.stat().st_size
    with Image.open(path) as im:
        small = im.convert("RGB").quantize(colors=colors)
    tmp = path.with_name(f".{path.name}.small.png")
    small.save(tmp, optimize=True)
    if tmp.stat().st_size < before:
        os.replace(tmp, path)
    else:
        tmp.unlink()
    return path.stat().st_size


def start(args: argparse.Namespace) -> Run:
    """Seed Pyro and torch, set the thread count, clear the param store and make ``args.out``."""
    if args.threads:
        torch.set_num_threads(args.threads)
    pyro.set_rng_seed(args.seed)
    pyro.clear_param_store()
    out = Path(args.out)
    os.makedirs(out, exist_ok=True)
    return Run(out)


def mnist_subset(args: argparse.Namespace) -> tuple[data.ImageSet, data.ImageSet]:
    """MNIST cut to ``args.subset`` training and ``args.test_subset`` test examples."""
    train, test = data.load_mnist()
    return take(train, args.subset), take(test, args.test_subset)


def take(images: data.ImageSet, n: int | None) -> data.ImageSet:
    """The first ``n`` examples of an image set (all when ``n`` is ``None``)."""
    if n is None:
        return images
    if n < 1:
        raise ValueError(f"a subset needs at least one example, got {n}")
    return data.ImageSet(images.images[:n], images.labels[:n])


def _jsonable(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def _fmt(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return f"{value:.4g}" if isinstance(value, float) else str(value)
