"""Argument checks shared by every layer, each in one place.

Every check returns the value it was given (so ``self.z_dim = positive_int("z_dim", z_dim)``
reads as one line) and raises an error that names the argument, says what it got and
what is expected. Tensor checks cost one device sync each: call them once at a boundary
(a constructor, the entry of ``fit``), not on every step.

Example::

    self.z_dim = positive_int("z_dim", z_dim)        # ValueError: z_dim must be a positive integer, got 0
    steps = at_least("steps", steps, 2)               # ValueError: steps must be >= 2, got 1
    self.beta = nonnegative("beta", beta)             # ValueError: beta must be >= 0, got -1.0
    kind = one_of("flow kind", kind, FLOW_KINDS)      # ValueError: unknown flow kind 'planar'; expected one of ...
    finite("data", x)                                 # ValueError: data contains NaN or inf values at 3 positions ...
    unit_interval("images", x, needed_by="binarize")  # ValueError: binarize needs images in [0, 1] ...
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any, TypeVar

import torch

__all__ = ["at_least", "finite", "nonnegative", "one_of", "positive", "positive_int", "tensor", "unit_interval"]

T = TypeVar("T")


def _integer(name: str, value: Any, expected: str) -> int:
    # bool is an int subclass, but True is no dimension. ValueError, not TypeError: the
    # library has always raised ValueError for a bad argument value, and the CLI reports it
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be {expected}, got {value!r} ({type(value).__name__})")
    return value


def positive_int(name: str, value: Any) -> int:
    """An integer ``>= 1`` (a dimension, a count, a batch size).

    :param name: the argument's name, for the message.
    :param value: what the caller passed.
    :returns: ``value``.
    :raises ValueError: for a non-integer (bools included) or an integer below 1.
    """
    _integer(name, value, "a positive integer")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def at_least(name: str, value: Any, minimum: int, reason: str = "") -> int:
    """An integer ``>= minimum`` (e.g. ``num_samples >= 2`` for a standard error).

    :param name: the argument's name.
    :param value: what the caller passed.
    :param minimum: the smallest allowed value.
    :param reason: why, appended to the message (e.g. ``" for a standard error"``).
    :returns: ``value``.
    :raises ValueError: for a non-integer or a value below ``minimum``.
    """
    _integer(name, value, f"an integer >= {minimum}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}{reason}, got {value!r}")
    return value


def _real(name: str, value: Any, bound: str, ok) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number {bound}, got {value!r} ({type(value).__name__})") from None
    if math.isnan(v) or not ok(v):  # NaN fails every comparison; say so rather than pass it on
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    return v


def nonnegative(name: str, value: Any) -> float:
    """A real number ``>= 0`` (a weight such as β), returned as a float.

    :raises ValueError: for a negative number, NaN, or something that is not a number.
    """
    return _real(name, value, ">= 0", lambda v: v >= 0)


def positive(name: str, value: Any) -> float:
    """A real number ``> 0`` (a scale, a learning rate), returned as a float.

    :raises ValueError: for zero, a negative number, NaN, or something that is not a number.
    """
    return _real(name, value, "> 0", lambda v: v > 0)


def one_of(name: str, value: T, choices: Collection) -> T:
    """One of a fixed set of names (a loss, a prior family, a projection method).

    :param name: what the value names, e.g. ``"interpolation"`` gives
        ``unknown interpolation 'cubic'; expected one of 'linear', 'spherical'``.
    :param value: what the caller passed.
    :param choices: the allowed values, in the order to list them.
    :returns: ``value``.
    :raises ValueError: when ``value`` is not among ``choices``.
    """
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; expected one of {', '.join(map(repr, choices))}")
    return value


def tensor(name: str, x: Any) -> torch.Tensor:
    """``x``, if it is a ``torch.Tensor``.

    :raises TypeError: otherwise, naming the conversion (``torch.as_tensor``).
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}; "
                        f"convert it with torch.as_tensor({name}, dtype=torch.float32)")
    return x


def finite(name: str, x: torch.Tensor) -> torch.Tensor:
    """A tensor without NaN or inf (integer tensors always pass).

    :param name: what to call ``x`` in the message (e.g. ``"train"``, ``"data"``).
    :param x: any tensor.
    :returns: ``x``, for chaining.
    :raises TypeError: if ``x`` is not a tensor.
    :raises ValueError: if ``x`` holds NaN or inf, with how many.
    """
    tensor(name, x)
    if x.is_floating_point() or x.is_complex():
        bad = int((~torch.isfinite(x)).sum())
        if bad:
            raise ValueError(f"{name} contains NaN or inf values at {bad} positions; expected finite values")
    return x


def unit_interval(name: str, x: torch.Tensor, needed_by: str | None = None) -> torch.Tensor:
    """A floating-point tensor with every value in ``[0, 1]`` (probabilities, grey levels).

    :param name: what to call ``x`` in the message.
    :param x: the tensor.
    :param needed_by: who needs it, for the message (``"binarize"`` gives ``binarize needs
        images in [0, 1] ...``); without it the message reads ``images must lie in [0, 1] ...``.
    :returns: ``x``.
    :raises TypeError: if ``x`` is not a floating-point tensor (integer pixels: divide by 255).
    :raises ValueError: if any value is outside ``[0, 1]`` or NaN, with how many and the range.
    """
    tensor(name, x)
    what = f"{needed_by} needs {name} in [0, 1]" if needed_by else f"{name} must lie in [0, 1]"
    if not x.is_floating_point():
        raise TypeError(f"{what} as floating-point values, got dtype {x.dtype}; "
                        "convert integer pixels first, e.g. x.float() / 255")
    if x.numel() == 0:
        return x
    lo, hi = (float(v) for v in torch.aminmax(x))  # one pass; NaN propagates and fails both comparisons
    if lo >= 0 and hi <= 1:
        return x
    outside = ~((x >= 0) & (x <= 1))  # the slow count, only for the message
    count = int(outside.sum())
    if count:
        raise ValueError(f"{what}, got {count} values outside [0, 1] or NaN "
                         f"(values in [{float(x.min()):.4g}, {float(x.max()):.4g}])")
    return x
