"""The ``pyrovae`` command line: one module per subcommand.

- :mod:`~pyrovae.cli.app`: the parser, :data:`COMMANDS` and :func:`main`;
- :mod:`~pyrovae.cli.train`, :mod:`~pyrovae.cli.evaluate`, :mod:`~pyrovae.cli.inspect`,
  :mod:`~pyrovae.cli.kl`, :mod:`~pyrovae.cli.recipes`: the subcommands;
- :mod:`~pyrovae.cli.args`: the shared argument groups; :mod:`~pyrovae.cli.report`: the
  numbers and figures written by train, evaluate and inspect;
- :mod:`~pyrovae.cli.distributed`: the multi-process runner; :mod:`~pyrovae.cli.experiment`:
  the plumbing of the scripts in ``examples/``.
"""

from .app import COMMANDS, build_parser, main

__all__ = ["COMMANDS", "build_parser", "main"]
