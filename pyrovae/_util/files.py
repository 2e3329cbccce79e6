"""Writing files so that nothing the user has is ever left half-written.

:func:`atomic_write` writes to a temporary file beside the target, flushes it to the disk,
renames it over the target and flushes the folder: a reader sees the old file or the new one,
never a torn one, even after a crash or a power cut. The temporary file is removed on every
exit path a process survives; those of writers that were killed (``kill -9``) are removed by
the next write to the same folder, once they are older than :data:`STALE_SECONDS` and no live
process holds them.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, the writer's pid alone decides
    fcntl = None

__all__ = ["STALE_SECONDS", "DiskFullError", "atomic_write", "atomic_write_bytes", "remove_stale_temporaries",
           "write_json"]

#: A temporary file older than this, locked by nobody and whose writer is gone, is stale.
STALE_SECONDS = 60.0

_PREFIX, _SUFFIX = ".", ".tmp"
_NAME_BYTES = 100  # of the target's name kept in a temporary file's name: .<name>.<pid>.<token>.tmp stays < 255 bytes


class DiskFullError(OSError):
    """No space left on the device (or over quota); the target file is left as it was."""


def _stem(path: Path) -> str:
    # at most _NAME_BYTES of the name, cut on a character boundary
    return path.name.encode()[:_NAME_BYTES].decode(errors="ignore")


def _temp_name(path: Path) -> str:
    return f"{_PREFIX}{_stem(path)}.{os.getpid()}.{secrets.token_hex(4)}{_SUFFIX}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _locked(fd: int) -> bool:
    if fcntl is None:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    fcntl.flock(fd, fcntl.LOCK_UN)
    return False


def remove_stale_temporaries(path: str | os.PathLike, older_than: float = STALE_SECONDS) -> list[Path]:
    """Remove the temporary files that killed writers of ``path`` left behind.

    A file counts as stale when it matches this module's naming for ``path``, is older than
    ``older_than`` seconds, no process holds its lock, and the process that made it is gone.

    :returns: the files removed.
    """
    path = Path(path)
    head = f"{_PREFIX}{_stem(path)}."
    removed = []
    for tmp in path.parent.glob(f"{_glob_escape(head)}*{_SUFFIX}"):
        pid_text = tmp.name[len(head):-len(_SUFFIX)].split(".")[0]
        if not pid_text.isdigit():
            continue
        try:
            if time.time() - tmp.stat().st_mtime < older_than:
                continue
            fd = os.open(tmp, os.O_RDONLY)
        except OSError:  # gone already, or not ours to read
            continue
        try:
            stale = not _locked(fd) and not _alive(int(pid_text))
        finally:
            os.close(fd)
        if stale:
            with contextlib.suppress(OSError):
                tmp.unlink()
                removed.append(tmp)
    return removed


def _glob_escape(text: str) -> str:
    # glob's special characters, quoted
    return "".join(f"[{c}]" if c in "*?[]" else c for c in text)


@contextlib.contextmanager
def _disk_full_is_clear(path: Path) -> Iterator[None]:
    try:
        yield
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(e.errno, f"the disk is full: no space left to write {path} (in {path.parent}); "
                                         "free some space and write again. The previous file is unchanged") from e
        raise


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open folders: the rename is as durable as the platform makes it
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[str], Any]) -> None:
    """Call ``write(tmp_path)`` and rename the result over ``path`` only if it succeeded.

    The temporary file lives in the target's folder (so the final ``os.replace`` is atomic), has
    a bounded name (a 255-byte target name works), is locked while it is written, is fsynced
    before the rename, and is removed if anything fails. The folder is fsynced after the
    rename. Stale temporary files of killed writers are removed first
    (:func:`remove_stale_temporaries`).

    :param path: the final file.
    :param write: a function that writes a complete file at the path it is given.
    :raises DiskFullError: when the disk is full; ``path`` is then left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = path.parent / _temp_name(path)
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)  # the usual mode: 0o666 less the umask
    try:
        with _disk_full_is_clear(path):
            try:
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX)  # a live writer's file is never taken for a stale one
                write(str(tmp))
                os.fsync(fd)  # the data reach the disk before the rename makes them the file
            finally:
                os.close(fd)
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_folder(path.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes | memoryview) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`).

    :raises DiskFullError: when the disk is full; ``path`` is then left as it was.
    """

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    atomic_write(path, write)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""

    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2)
            f.write("\n")

    atomic_write(path, write)
