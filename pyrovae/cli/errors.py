"""How the command line fails: a user's mistake is one line on stderr and exit code 2, never a
traceback; an interrupted run says what it kept (exit code 130); anything else is a bug and
keeps its traceback.

- :class:`UsageError`: bad flags, files or folders; ``main`` prints ``pyrovae: error: ...``.
- :class:`Interrupted`: Ctrl-C; the message says which checkpoint is kept and how to resume.
- :class:`Parser`: an ``ArgumentParser`` whose errors are that same one line.
- :func:`user_errors`: turns the ``ValueError`` / ``OSError`` a library call raises about the
  user's input into a :class:`UsageError`.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from typing import NoReturn

#: exit status of a usage error (argparse's own)
USAGE = 2
#: exit status after Ctrl-C (128 + SIGINT, as shells report it)
INTERRUPTED = 130


class UsageError(Exception):
    """A mistake in the command line or its files; the message names it and the fix."""


class Interrupted(Exception):
    """The user stopped a run; the message says what was kept and how to go on."""


def one_line(text: str) -> str:
    """``text`` with its lines joined, so an error is one line on the terminal."""
    return "; ".join(part.strip() for part in str(text).splitlines() if part.strip())


def fail(message: str) -> None:
    print(f"pyrovae: error: {one_line(message)}", file=sys.stderr)


class Parser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` with one-line errors: ``pyrovae: error: ... (see --help)``."""

    def error(self, message: str) -> NoReturn:
        fail(f"{message} (see {self.prog} --help)")
        sys.exit(USAGE)


@contextlib.contextmanager
def user_errors(what: str, *kinds: type[BaseException]) -> Iterator[None]:
    """Report ``ValueError``/``OSError`` (or ``kinds``) raised inside as a :class:`UsageError`
    prefixed with ``what`` (e.g. ``"--data"``). Use it only around calls whose errors are about
    the user's input, so that real bugs keep their tracebacks."""
    caught = kinds if kinds else (ValueError, OSError)
    try:
        yield
    except caught as e:
        raise UsageError(f"{what}: {e}" if what else str(e)) from e
