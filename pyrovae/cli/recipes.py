"""``pyrovae recipes``: the named recipes ``pyrovae train --recipe NAME`` starts from."""

from __future__ import annotations

import argparse
import json
import math

from ..models.recipes import RECIPES
from .errors import UsageError

HELP = "list the named recipes of pyrovae train --recipe (--json: every field)"


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("names", nargs="*", metavar="NAME", help=f"recipes to show: {', '.join(RECIPES)} (default: all)")
    p.add_argument("--json", action="store_true", help="print every field of each recipe as JSON")


def _line(name: str) -> str:
    r = RECIPES[name]
    widths = "-".join(str(w) for w in (math.prod(r.x_shape), *r.hidden, r.z_dim))
    particles = f" K={r.num_particles}" if r.num_particles and r.num_particles > 1 else ""
    return (f"{name:16s} {widths} {r.activation}, {r.prior} prior, {r.loss}{particles}, "
            f"batch {r.batch_size}, {r.epochs} epochs: {r.description}")


def run(args: argparse.Namespace) -> dict:
    names = args.names or list(RECIPES)
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        raise UsageError(f"unknown recipe(s) {', '.join(unknown)}; expected names from {', '.join(RECIPES)}")
    if args.json:
        print(json.dumps({n: RECIPES[n].to_dict() for n in names}, indent=1))
    else:
        print("\n".join(_line(n) for n in names))
    return {n: RECIPES[n].to_dict() for n in names}
