"""``pyrovae inspect``: every inspection figure that applies to a checkpoint's model, written to
a folder (:func:`~pyrovae.cli.report.inspection_figures`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import args as cli_args
from . import outdir
from .errors import UsageError
from .loading import load_model, test_data
from .report import TABLE_FIGURES, inspection_figures, label_name

HELP = "write every applicable inspection figure of a checkpoint to a folder"


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", type=Path, help="a checkpoint.pt written by pyrovae train, or its run folder")
    cli_args.add_out(p, None, "folder for the figures", required=True)
    p.add_argument("--n", type=int, default=2000, help="test points to encode (default %(default)s)")
    cli_args.add_data(p)
    cli_args.add_device(p)
    cli_args.add_seed(p)


def run(args: argparse.Namespace) -> dict:
    """Write every applicable figure for a checkpoint to ``--out``."""
    if args.n < 20:
        raise UsageError(f"--n must be >= 20 (figures show up to 20 inputs), got {args.n}")
    outdir.check_folder(args.out, "--out")
    vae = load_model(args.checkpoint, args.device, args.seed)
    x, y, src = test_data(vae, args.n, args, args.seed)
    names = TABLE_FIGURES if src.kind == "table" else None
    paths, notes = inspection_figures(vae, x, y, args.out, seed=args.seed, names=names,
                                      label_name=label_name(src.spec),
                                      label_names=src.classes)
    if names is not None:
        notes.append(f"the data are a table, not images: drew {', '.join(names)} only")
    for p in paths.values():
        print(f"wrote {p}")
    for note in notes:
        print(f"note: {note}")
    return {k: str(v) for k, v in paths.items()}
