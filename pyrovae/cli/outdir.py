"""Where a command writes, checked before any work starts, so that the command line never
loses work.

- :func:`check_folder` / :func:`check_file`: an output path that is the wrong kind of thing, or
  that cannot be written, is refused up front (not after an hour of training);
- :class:`RunLock`: one run at a time writes into a folder; a lock left by a process that is
  no longer running is taken over;
- :func:`check_checkpoint`: a folder that already holds a checkpoint is refused unless the
  run resumes it (same model configuration) or is told to overwrite it;
- :func:`interrupted_message`: what Ctrl-C kept, and the exact command that resumes it.
"""

from __future__ import annotations

import os
import shlex
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import UsageError

try:
    import fcntl
except ImportError:  # not on Windows: the PID in the lock file is then the only guard
    fcntl = None

LOCK_NAME = ".pyrovae.lock"


def _nearest_existing(path: Path) -> Path:
    for parent in (path, *path.parents):
        if parent.exists():
            return parent
    return Path(".")


def _writable(folder: Path) -> bool:
    # try it: os.access says yes to root even on a read-only file system
    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def _unwritable(folder: Path) -> str | None:
    """Why files cannot be made in ``folder`` (created if need be), or ``None`` if they can."""
    base = _nearest_existing(folder)
    if not base.is_dir():
        return f"{base} is a file, not a folder"
    if not _writable(base):
        return f"{base} is not writable"
    return None


def check_folder(folder: Path, flag: str = "--out") -> None:
    """Refuse an output folder that is a file or cannot be created or written.

    :raises UsageError: naming the path and the fix.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{flag} {folder} is a file; it must be a folder (it will hold the outputs)")
    why = _unwritable(folder)
    if why:
        raise UsageError(f"{flag} {folder}: {why}; choose a folder you can write to")


def check_file(path: Path, flag: str = "--out") -> None:
    """Refuse an output file that is a folder or whose folder cannot be written.

    :raises UsageError: naming the path and the fix (``flag FILE`` elsewhere).
    """
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{flag} {path} is a folder; give a file name such as {path / 'evaluation.json'}")
    why = _unwritable(path.parent)
    if why:
        raise UsageError(f"cannot write {path}: {why}; pass {flag} FILE to write it elsewhere")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


class RunLock:
    """An exclusive lock on an output folder for the life of a run (``with RunLock(out):``).

    The lock file holds the owner's PID. ``flock`` makes taking it atomic where the system has
    it; the PID check refuses a live owner and takes over from a dead one.

    :raises UsageError: when another live process holds the folder.
    """

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / LOCK_NAME
        self.fd: int | None = None
        self.took_over: int | None = None  # PID of a dead previous owner

    def _refuse(self, pid: int | None) -> None:
        os.close(self.fd)
        self.fd = None
        who = f"PID {pid}" if pid else "another process"
        raise UsageError(f"another pyrovae run ({who}) is writing into {self.path.parent}; wait for it to finish "
                         f"or choose another --out (if no such run exists, delete {self.path})")

    def _owner(self) -> int | None:
        text = os.pread(self.fd, 64, 0).decode(errors="replace").strip()
        return int(text) if text.isdigit() else None

    def __enter__(self) -> RunLock:  # noqa: PYI034
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self._refuse(self._owner())
        owner = self._owner()
        if owner is not None and owner != os.getpid():
            if _alive(owner):
                self._refuse(owner)
            self.took_over = owner
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)
        return self

    def __exit__(self, *exc: object) -> None:
        # the file stays (empty): removing it would let a waiting process lock a dead inode
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            os.close(self.fd)  # releases the flock
            self.fd = None


def check_checkpoint(path: Path, model_config: dict[str, Any], training: dict[str, Any], *, resume: bool,
                     overwrite: bool) -> tuple[int, list[str]]:
    """Decide what a run may do with an existing checkpoint at ``path``.

    :param model_config: the model configuration the run will train.
    :param training: its training settings (``fit`` keywords).
    :returns: ``(epoch to resume from, notes to print)``.
    :raises UsageError: for a checkpoint the run would overwrite without ``--overwrite``, one
        ``--resume`` cannot continue (another model, unreadable), or both flags at once.
    """
    from ..models import VAEConfig
    from ..train.checkpoint import CheckpointError, read_checkpoint

    if resume and overwrite:
        raise UsageError("--resume and --overwrite contradict each other; pass one of them")
    if not path.exists():
        return 0, [f"no checkpoint at {path} yet: starting from epoch 0"] if resume else []
    if overwrite:
        path.unlink()  # asked for; else an interrupted first epoch would leave the old run behind
        return 0, [f"--overwrite: removed the old {path}, starting from epoch 0"]
    try:
        payload = read_checkpoint(path)
        theirs = VAEConfig.from_dict(payload["config"]).to_dict() if payload["config"] else {}
    except (CheckpointError, TypeError, ValueError) as e:
        raise UsageError(f"{path} cannot be resumed ({e}); pass --overwrite to start over") from None
    epoch, planned = int(payload["epoch"]), int(payload["fit_config"].get("epochs", 0))
    diff = sorted(k for k in set(theirs) | set(model_config) if theirs.get(k) != model_config.get(k))
    if diff:
        fields = ", ".join(f"{k}: {theirs.get(k)!r} there, {model_config.get(k)!r} here" for k in diff)
        raise UsageError(f"{path.parent} holds a checkpoint of another configuration ({fields}); choose another "
                         "--out, or pass --overwrite to replace it")
    if not resume:
        raise UsageError(f"{path.parent} already holds a checkpoint of this configuration (epoch {epoch} of "
                         f"{planned}); pass --resume to continue it or --overwrite to start over")
    notes = [f"resuming {path} from epoch {epoch} (its run planned {planned} epochs; this one goes to {training['epochs']})"]
    if epoch >= training["epochs"]:
        notes.append(f"note: the checkpoint has all {training['epochs']} epochs already; nothing is left to train "
                     "(pass a larger --epochs to train on), so only the metrics and figures are written again")
    for key in ("batch_size", "binarize", "lr", "seed", "warmup_epochs"):
        before = payload["fit_config"].get(key)
        if key in payload["fit_config"] and before != training.get(key):
            notes.append(f"note: {key} was {before!r} in the checkpoint's run and is {training.get(key)!r} now")
    return epoch, notes


def resume_command(argv: Sequence[str]) -> str:
    """The command line ``argv`` (of ``pyrovae``) made to resume: ``--resume``, no ``--overwrite``."""
    args = [a for a in argv if a != "--overwrite"]
    if "--resume" not in args:
        args.append("--resume")
    return shlex.join(["pyrovae", *args])


def interrupted_message(path: Path, argv: Sequence[str]) -> str:
    """One line after Ctrl-C: which epoch ``path`` keeps and the command that resumes it."""
    from ..train.checkpoint import CheckpointError, read_checkpoint

    try:
        payload = read_checkpoint(path)
    except CheckpointError:
        return f"interrupted before the first epoch finished; nothing was kept. Rerun: {shlex.join(['pyrovae', *argv])}"
    epoch, planned = int(payload["epoch"]), payload["fit_config"].get("epochs", "?")
    return f"interrupted; {path} keeps epoch {epoch} of {planned}. Resume with: {resume_command(argv)}"
