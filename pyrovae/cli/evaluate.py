"""``pyrovae evaluate``: the ELBO terms, the importance-sampled log p(x) and the collapse
diagnostics of a checkpoint, printed and saved as JSON (:func:`~pyrovae.cli.report.evaluation_summary`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .._util.files import write_json
from . import args as cli_args
from . import outdir
from .errors import UsageError
from .loading import checkpoint_path, load_model, test_data
from .report import evaluation_summary

HELP = "ELBO terms, log p(x) and collapse diagnostics of a checkpoint, as JSON"


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", type=Path, help="a checkpoint.pt written by pyrovae train, or its run folder")
    p.add_argument("--samples", type=int, default=5000, help="importance samples K for log p(x) (default %(default)s)")
    p.add_argument(
        "--n", type=int, default=1000, help="test points to evaluate (default %(default)s; 10000 = all of MNIST's)"
    )
    p.add_argument("--batch-size", type=cli_args.positive_int, default=100,
                   help="data points per batch of log p(x) (default %(default)s)")
    cli_args.add_out(p, None, "JSON file to write, or a folder for evaluation.json (default: next to the checkpoint)")
    cli_args.add_data(p)
    cli_args.add_device(p)
    cli_args.add_seed(p)


def output_file(args: argparse.Namespace) -> Path:
    """Where the JSON goes: ``--out`` (a file, or a folder to put ``evaluation.json`` in), else
    next to the checkpoint; checked now, so a read-only folder fails before the evaluation.

    :raises UsageError: when that place cannot be written (pass ``--out FILE``).
    """
    if args.out is None:
        out = checkpoint_path(args.checkpoint).with_name("evaluation.json")
    else:
        out = args.out / "evaluation.json" if Path(args.out).is_dir() else Path(args.out)
    outdir.check_file(out, "--out")
    return out


def run(args: argparse.Namespace) -> dict:
    """Evaluate a checkpoint on the first ``--n`` test points of its data; print and save JSON."""
    if args.samples < 2 or args.n < 2:
        raise UsageError(f"--samples and --n must be >= 2, got {args.samples} and {args.n}")
    out = output_file(args)
    vae = load_model(args.checkpoint, args.device, args.seed)
    x, _, src = test_data(vae, args.n, args, args.seed)
    summary = {"checkpoint": str(args.checkpoint), "data": src.spec,
               **evaluation_summary(vae, x, args.samples, args.batch_size)}
    write_json(out, summary)
    print(
        f"on {summary['n']} test points of {src.spec['source']}: ELBO {summary['elbo']:.2f} "
        f"= recon {summary['recon']:.2f} - KL {summary['kl']:.2f} "
        f"({summary['kl_method']} KL)"
    )
    print(f"log p(x) {summary['log_px']:.2f} ± {summary['log_px_stderr']:.2f} nats (K={args.samples}, "
          f"{summary['log_px_seconds']:.1f}s); ELBO gap {summary['elbo_gap']:.2f}")
    print(summary["collapse_report"])
    if "active_units_per_layer" in summary:
        names = [f"z{i + 1}" for i in range(len(summary["z_dims"]))]
        print("per layer: " + "; ".join(f"{name} {a} of {d} active, KL {kl:.2f} nats" for name, a, d, kl in zip(
            names, summary["active_units_per_layer"], summary["z_dims"], summary["kl_per_layer"], strict=True)))
    print(f"wrote {out}")
    return summary
