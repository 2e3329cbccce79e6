"""Protocol checks for the networks a user plugs in, and the shapes read off them.

An encoder maps x ``(batch, *x_shape)`` to ``(loc, scale)``, each ``(batch, z_dim)`` with
``scale > 0``; a decoder maps z ``(batch, z_dim)`` to the likelihood's parameters,
``(batch, *x_shape)`` (``(batch, *x_shape, num_classes)`` for a Categorical likelihood); see
the contract in ``DESIGN.md``. :class:`~pyrovae.VAE` runs :func:`check_encoder_output` and
:func:`check_decoder_output` on the first batch only (and again after a part is replaced), so
the training loop does not pay for them. Each error names the module, what it returned and
what was expected.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .validation import _dims, _is_categorical

__all__ = ["call_checked", "check_decoder_output", "check_encoder_output", "prior_z_dim", "resolve_shapes"]


def resolve_shapes(
    encoder: nn.Module, decoder: nn.Module, prior: Any, x_shape: Sequence[int] | None, z_dim: int | None
) -> tuple[tuple[int, ...] | None, int | None, str]:
    """``x_shape`` and ``z_dim`` from the arguments or the parts' attributes, checked to agree.

    :returns: ``(x_shape or None, z_dim or None, where z_dim came from)`` (for messages).
    :raises ValueError: for a z_dim that is not a positive integer, or parts that disagree.
    """
    z_from = " (the z_dim= argument)" if z_dim is not None else " (encoder.z_dim)"
    z_dim = z_dim if z_dim is not None else getattr(encoder, "z_dim", None)
    if z_dim is not None and (not isinstance(z_dim, int) or isinstance(z_dim, bool) or z_dim < 1):
        raise ValueError(f"z_dim must be a positive integer, got {z_dim!r}")
    dec_z = getattr(decoder, "z_dim", None)
    if z_dim is not None and dec_z is not None and dec_z != z_dim:
        raise ValueError(f"the encoder produces z_dim={z_dim} but the decoder expects z_dim={dec_z}")
    for source in (x_shape, getattr(encoder, "x_shape", None), getattr(prior, "x_shape", None)):
        if source is not None:
            return tuple(source), z_dim, z_from
    return None, z_dim, z_from


def prior_z_dim(prior: nn.Module) -> int | None:
    """A prior module's ``z_dim`` attribute, or the event size of the distribution it returns."""
    z_dim = getattr(prior, "z_dim", None)
    if z_dim is not None:
        return z_dim
    try:
        shape = prior().event_shape
    except Exception:  # a prior that cannot run yet tells us nothing
        return None
    return int(shape[0]) if len(shape) == 1 else None


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    if isinstance(value, (tuple, list)):
        inner = ", ".join(_describe(v) for v in value[:3])
        return f"a {type(value).__name__} of {len(value)} ({inner}{', ...' if len(value) > 3 else ''})"
    return f"a {type(value).__name__}"


def check_encoder_output(
    encoder: nn.Module, x: torch.Tensor, out: Any, z_dim: int | None, *, z_from: str = "", check_scale: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check that an encoder kept the protocol: ``x (batch, *x_shape) -> (loc, scale)``, each
    ``(batch, z_dim)``, finite, with ``scale > 0``.

    :param encoder: the module (named in messages by its class).
    :param x: the input it was given.
    :param out: what it returned.
    :param z_dim: the expected latent size, or ``None`` to accept any.
    :param z_from: where ``z_dim`` comes from, for the message (e.g. ``" (from the prior)"``).
    :param check_scale: also check the scale's values (an autoencoder ignores it).
    :returns: ``(loc, scale)``.
    :raises ValueError: naming the module, what it returned and what was expected.
    """
    cls = type(encoder).__name__
    protocol = "the encoder protocol is x (batch, *x_shape) -> (loc, scale), each (batch, z_dim), scale > 0"
    if not (isinstance(out, (tuple, list)) and len(out) == 2 and all(isinstance(t, torch.Tensor) for t in out)):
        raise TypeError(f"encoder {cls} returned {_describe(out)} for x of shape {tuple(x.shape)}; {protocol}")
    loc, scale = out
    batch = x.shape[0]
    want = f"({batch}, {z_dim})" if z_dim is not None else f"({batch}, z_dim)"
    for part, t in (("loc", loc), ("scale", scale)):
        if t.dim() != 2 or t.shape[0] != batch or (z_dim is not None and t.shape[1] != z_dim):
            dropped = " (it dropped the batch dimension)" if t.dim() == 1 and t.shape[0] != batch else ""
            raise ValueError(
                f"encoder {cls} returned {part} of shape {tuple(t.shape)} for x of shape {tuple(x.shape)}{dropped}; "
                f"expected (batch, z_dim) = {want}{z_from if z_dim is not None else ''}"
            )
    if torch.jit.is_tracing():
        return loc, scale
    if not bool(torch.isfinite(loc).all()):
        raise ValueError(f"encoder {cls} returned a loc with NaN or inf values; {protocol}")
    if check_scale:
        bad = ~((scale > 0) & torch.isfinite(scale))
        if bool(bad.any()):
            raise ValueError(
                f"encoder {cls} returned a scale with {int(bad.sum())} of {scale.numel()} values that are not "
                f"finite and > 0 (smallest {float(scale.detach().min()):.4g}); {protocol}. A raw network output is no "
                "standard deviation: map it through softplus or exp "
                "(pyrovae.nets.functional.positive_scale adds a floor)"
            )
    return loc, scale


def check_decoder_output(
    decoder: nn.Module, z: torch.Tensor, out: Any, x_shape: tuple[int, ...] | None, likelihood: Any
) -> tuple[int, ...]:
    """Check that a decoder kept the protocol: ``z (batch, z_dim) ->`` one tensor of shape
    ``(batch, *x_shape)``, or ``(batch, *x_shape, num_classes)`` for a Categorical likelihood.

    :param decoder: the module (named in messages by its class).
    :param z: the input it was given, ``(batch, z_dim)``.
    :param out: what it returned.
    :param x_shape: the expected data shape, or ``None`` to take it from ``out``.
    :param likelihood: the likelihood the output feeds.
    :returns: ``x_shape`` (as given, or as read off ``out``).
    :raises ValueError: naming the module, what it returned and what was expected.
    """
    cls = type(decoder).__name__
    k = likelihood.num_classes if _is_categorical(likelihood) else None
    tail = f", {k}" if k is not None else ""
    what = "(batch, *x_shape, num_classes)" if k is not None else "(batch, *x_shape)"
    if not isinstance(out, torch.Tensor):
        raise TypeError(
            f"decoder {cls} returned {_describe(out)} for z of shape {tuple(z.shape)}; the decoder protocol is "
            f"z (batch, z_dim) -> one tensor of the likelihood's parameters, {what}"
        )
    batch = z.shape[0]
    extra = 1 if k is not None else 0
    if x_shape is None and out.dim() >= 2 + extra and out.shape[0] == batch:
        x_shape = tuple(out.shape[1 : out.dim() - extra])
    expected = (batch, *x_shape, *((k,) if k is not None else ())) if x_shape is not None else None
    if expected is None or tuple(out.shape) != expected:
        want = f"({batch}, {_dims(x_shape)}{tail})" if x_shape is not None else f"(batch={batch}, *x_shape{tail})"
        dropped = ""
        if expected is not None and tuple(out.shape) == expected[1:]:
            dropped = " (it dropped the batch dimension)"
        elif k is not None and x_shape is not None and tuple(out.shape) == (batch, *x_shape):
            dropped = f" (a Categorical likelihood needs a last dimension of {k} logits)"
        raise ValueError(
            f"decoder {cls} returned a tensor of shape {tuple(out.shape)} for z of shape {tuple(z.shape)}{dropped}; "
            f"expected {what} = {want}"
        )
    if not torch.jit.is_tracing() and not bool(torch.isfinite(out).all()):
        raise ValueError(f"decoder {cls} returned NaN or inf values for z of shape {tuple(z.shape)}")
    return x_shape


def call_checked(role: str, module: nn.Module, arg: torch.Tensor, expected: str):
    """Call ``module(arg)``, turning a shape error inside it into one that names the module
    and the input it was given (the first call of a user's network, where a wrong ``z_dim``
    or ``x_shape`` otherwise ends in "mat1 and mat2 shapes cannot be multiplied").

    :param role: ``"encoder"`` or ``"decoder"``.
    :param expected: what the input was meant to be, e.g. ``"(batch, z_dim) = (6, 2)"``.
    """
    try:
        return module(arg)
    except torch.cuda.OutOfMemoryError:
        raise
    except RuntimeError as e:
        raise ValueError(
            f"{role} {type(module).__name__} failed on input of shape {tuple(arg.shape)}, {expected}: {e}. "
            f"Does the {role} take inputs of that shape?"
        ) from e
