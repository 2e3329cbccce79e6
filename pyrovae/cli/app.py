"""The ``pyrovae`` command: the parser, the table of subcommands and the entry point.

Each subcommand registers itself in :data:`COMMANDS` as ``(help, add_arguments, run)``: one
function adds its arguments to a subparser, one runs it. The shared argument groups are in
:mod:`pyrovae.cli.args`, the reports (numbers and figures) in :mod:`pyrovae.cli.report`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from .._util.files import DiskFullError
from ..train import TrainingDivergedError
from . import errors
from . import evaluate as _evaluate
from . import inspect as _inspect
from . import kl as _kl
from . import recipes as _recipes
from . import train as _train
from .errors import Interrupted, Parser, UsageError, fail

__all__ = ["COMMANDS", "build_parser", "main"]

#: name -> (help, add_arguments, run)
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], object]]] = {
    "train": (_train.HELP, _train.add_args, _train.run),
    "evaluate": (_evaluate.HELP, _evaluate.add_args, _evaluate.run),
    "inspect": (_inspect.HELP, _inspect.add_args, _inspect.run),
    "recipes": (_recipes.HELP, _recipes.add_args, _recipes.run),
    "kl-demo": (_kl.DEMO_HELP, _kl.add_demo_args, _kl.run_demo),
    "kl-compare": (_kl.COMPARE_HELP, _kl.add_compare_args, _kl.run_compare),
}


def build_parser() -> argparse.ArgumentParser:
    """The ``pyrovae`` argument parser: one subcommand per entry of :data:`COMMANDS`."""
    parser = Parser(prog="pyrovae", description="Variational autoencoders written the Pyro way.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, add_args, _) in COMMANDS.items():
        add_args(sub.add_parser(name, help=help_text, description=help_text,
                                formatter_class=argparse.RawDescriptionHelpFormatter))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pyrovae`` console script.

    :returns: the exit status: 0, 2 for a usage error (one line on stderr, as argparse's own,
        which exit from here), 130 after Ctrl-C, 1 when training diverged or the disk is full
        (one line each, the last good checkpoint named or kept). Any other exception
        is a bug and propagates with its traceback.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # for the command that resumes an interrupted run
    try:
        COMMANDS[args.command][2](args)
    except UsageError as e:
        fail(str(e))
        return errors.USAGE
    except Interrupted as e:
        print(f"pyrovae: {errors.one_line(str(e))}", file=sys.stderr)
        return errors.INTERRUPTED
    except (TrainingDivergedError, DiskFullError) as e:
        fail(e.strerror if isinstance(e, DiskFullError) else str(e))
        return 1
    return 0

