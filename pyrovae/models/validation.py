"""Checks at the library's boundary: the data a user passes, and the networks a user plugs in.

:func:`check_data` is the one check for data. Every public function that takes data calls
it first and goes on with the tensor it returns; it names the problem and the fix, where
torch would otherwise fail deep inside a matmul or, worse, score the data silently.

The protocol checks (:func:`check_encoder_output`, :func:`check_decoder_output`) look at
what a user's encoder and decoder return. :class:`~pyrovae.VAE` runs them on the first
batch only (and again after a part is replaced), so the training loop does not pay for them.

Nothing here runs Python-side value checks under ``torch.jit`` tracing: a value read back
into Python would be frozen into the trace (and warns).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from pyro.infer.util import is_validation_enabled
from torch import nn

from .. import likelihoods as _likelihoods

__all__ = [
    "call_checked",
    "check_data",
    "check_decoder_output",
    "check_encoder_output",
    "check_values",
    "float_dtype",
    "model_device",
    "model_inputs",
    "prior_z_dim",
    "resolve_shapes",
]


def model_device(module: nn.Module) -> torch.device | None:
    """The device of the module's first parameter or buffer (``None`` when it has neither)."""
    for t in module.parameters():
        return t.device
    for t in module.buffers():
        return t.device
    return None


def float_dtype(module: nn.Module) -> torch.dtype:
    """The dtype of the module's first floating-point parameter or buffer (torch's default
    dtype when it has none): the dtype data must have to meet the networks."""
    for t in module.parameters():
        if t.is_floating_point():
            return t.dtype
    for t in module.buffers():
        if t.is_floating_point():
            return t.dtype
    return torch.get_default_dtype()


def _dims(shape: Any) -> str:
    return ", ".join(str(s) for s in shape)


def check_data(
    vae: nn.Module,
    x: Any,
    name: str = "x",
    *,
    support: bool = True,
    binarize: str | None = None,
    same_device: bool = False,
) -> torch.Tensor:
    """Check data for ``vae`` and return the tensor to use.

    In order:

    1. **type**: a ``torch.Tensor``. A numpy array, a list or anything else is refused with a
       ``TypeError`` that gives the conversion, ``torch.as_tensor(x, dtype=torch.float32)``
       (the library does not guess a dtype or a device for you);
    2. **shape**: ``(batch, *x_shape)``, with a non-empty batch. A missing batch dimension, a
       missing channel dimension and flattened images each get their own fix. When the VAE
       does not know ``x_shape`` yet, it takes it from this batch and holds it from then on;
    3. **dtype**: floating-point data are cast to the model's dtype (float64 data for a
       float32 model, or the reverse after ``vae.double()``). ``bool`` data and integer data
       with values in {0, 1} are cast too, as are class indices for a Categorical
       likelihood. Other integer data (8-bit pixels in 0..255) are refused with the fix,
       ``x.float() / 255``;
    4. **device** (``same_device=True`` only): on the model's device;
    5. **values** (``support=True``): finite, and inside the likelihood's support, e.g. {0, 1}
       for Bernoulli (grey levels get the fix: ``pyrovae.data.binarize`` or
       ``likelihoods.ContinuousBernoulli()``). With ``binarize`` set the data are
       probabilities that will be binarised, so they must lie in [0, 1] instead.

    Steps 1 to 4 cost no pass over the data for floating-point input; step 5 is one pass.
    Call it once per data set at an entry point, and with ``support=False`` on a hot path.

    :param vae: the model (a :class:`~pyrovae.VAE` or anything with ``x_shape`` and
        ``likelihood`` attributes).
    :param x: the data, ``(batch, *x_shape)``.
    :param name: what to call the data in messages (``"train_images"``, ``"x"``).
    :param support: also check values (finite, in the likelihood's support).
    :param binarize: ``"dynamic"`` or ``"static"`` when the caller binarises ``x`` itself
        (values must then be probabilities in [0, 1]); ``None`` otherwise.
    :param same_device: require ``x`` on the model's device (callers that move data
        themselves leave this off).
    :returns: ``x``, cast to the model's floating-point dtype where needed.
    :raises TypeError: for data that are not a tensor.
    :raises ValueError: for a wrong shape, dtype, device or values, naming the fix.
    """
    x = _tensor(x, name)
    _check_shape(vae, x, name)
    x = _cast(vae, x, name)
    if same_device:
        device = model_device(vae)
        if device is not None and x.device != device:
            raise ValueError(
                f"{name} is on {x.device} but the VAE is on {device}; the library never moves data on its own: "
                f"use {name}.to({str(device)!r}) (or vae.to({str(x.device)!r}))"
            )
    if support and not torch.jit.is_tracing():
        check_values(vae, x, name, binarize=binarize)
    return x


def model_inputs(vae: nn.Module, x: Any, batch_size: int | None, where: str) -> tuple[torch.Tensor | None, int]:
    """The data and batch size a VAE's ``model`` or ``guide`` (``where``) works with: the hot
    path of :func:`check_data` (shape, dtype and device always; values only while Pyro's
    validation is on), or the generative mode's ``batch_size`` when ``x`` is ``None``.

    :returns: ``(x or None, batch)``.
    """
    if x is None:
        if where == "guide":
            raise ValueError("the guide q(z|x) needs data x; for draws from the prior use the model alone: "
                             "Predictive(vae.model, num_samples=S)(x=None, batch_size=n)")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"model(x=None) is the generative mode and needs batch_size=n >= 1, got {batch_size!r}")
        return None, batch_size
    x = check_data(vae, x, support=is_validation_enabled(), same_device=True)
    if batch_size is not None and batch_size != x.shape[0]:
        raise ValueError(f"batch_size={batch_size} but x holds {x.shape[0]} data points; give one or the other")
    return x, x.shape[0]


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
    except Exception:  # noqa: BLE001 - a prior that cannot run yet tells us nothing
        return None
    return int(shape[0]) if len(shape) == 1 else None


def _tensor(x: Any, name: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    module = type(x).__module__.split(".")[0]
    kind = type(x).__name__ if module == "builtins" else f"{module}.{type(x).__name__}"
    if isinstance(getattr(x, "images", None), torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor (batch, *x_shape), got {kind}; pass its tensor, {name}.images")
    raise TypeError(
        f"{name} must be a torch.Tensor (batch, *x_shape), got {kind}; convert it with "
        f"torch.as_tensor({name}, dtype=torch.float32) (and .to(device) for a model on a GPU)"
    )


def _check_shape(vae: nn.Module, x: torch.Tensor, name: str) -> None:
    if torch.jit.is_tracing():
        return  # traced sizes are tensors; Pyro's JIT ELBOs run each model once untraced, where this ran
    shape = tuple(x.shape)
    x_shape = getattr(vae, "x_shape", None)
    if x_shape is None:
        if x.dim() < 2:
            raise ValueError(
                f"{name} has shape {shape}: data need a batch dimension, (batch, *x_shape). A batch of N vectors "
                f"of length D is (N, D); one data point is {name}.unsqueeze(0)"
            )
        if shape[0] == 0:
            raise ValueError(f"{name} is an empty batch, shape {shape}")
        vae.x_shape = shape[1:]  # inferred from the first batch, checked against from now on
        return
    x_shape = tuple(x_shape)
    if shape[1:] == x_shape and x.dim() >= 2:
        if shape[0] == 0:
            raise ValueError(f"{name} is an empty batch, shape {shape}")
        return
    expected = f"(batch, *x_shape) = (batch, {_dims(x_shape)})"
    if shape == x_shape:
        hint = f"; this is one data point without the batch dimension: use {name}.unsqueeze(0)"
    elif x.dim() >= 1 and math.prod(shape[1:]) == math.prod(x_shape):
        # (N, 28, 28) for (1, 28, 28), or flattened (N, 784): same numbers, other layout
        hint = f"; the sizes match if you reshape: {name}.reshape(len({name}), {_dims(x_shape)})"
    else:
        hint = ""
    raise ValueError(f"{name} has shape {shape} but this VAE expects {expected}{hint}")


def _is_categorical(likelihood: Any) -> bool:
    return isinstance(likelihood, _likelihoods.Categorical)


def _cast(vae: nn.Module, x: torch.Tensor, name: str) -> torch.Tensor:
    cached = getattr(vae, "_float_dtype", None)
    dtype = cached() if callable(cached) else float_dtype(vae)
    if x.dtype == dtype:
        return x
    if x.is_floating_point() or x.dtype == torch.bool:
        return x.to(dtype)
    if x.is_complex():
        raise ValueError(f"{name} is complex ({x.dtype}); the likelihoods score real data only")
    if _is_categorical(getattr(vae, "likelihood", None)) or torch.jit.is_tracing():
        return x.to(dtype)  # class indices; their range is the support check's job
    lo, hi = (int(v) for v in torch.aminmax(x))
    if lo >= 0 and hi <= 1:
        return x.to(dtype)  # binary data stored as integers
    binary = getattr(getattr(vae, "likelihood", None), "binary", False)
    raise ValueError(
        f"{name} has integer dtype {x.dtype} with values in [{lo}, {hi}]; this VAE needs floating-point data"
        + (" in {0, 1}" if binary else "")
        + f". 8-bit pixels? Scale them with {name}.float() / 255"
        + (" and binarise them (pyrovae.data.binarize)" if binary else "")
        + f"; counts or other values: {name}.float()"
    )


def check_values(vae: nn.Module, x: torch.Tensor, name: str = "x", *, binarize: str | None = None) -> None:
    """The value part of :func:`check_data`: finite, and in the likelihood's support (or in
    [0, 1] when ``binarize`` is set). A pass or two over ``x``.

    :raises ValueError: naming how many values are bad, an example, and the fix.
    """
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        raise ValueError(f"{name} contains NaN or inf at {int(bad.sum())} positions; expected finite values")
    check = getattr(getattr(vae, "likelihood", None), "check", None)
    if binarize is None and check is not None:
        check(x)
    elif binarize is not None:
        lo, hi = (float(v) for v in torch.aminmax(x))
        if lo < 0 or hi > 1:
            scale = f"; values up to {hi:.4g} look like 8-bit pixels: use {name} / 255" if 1 < hi <= 255 and lo >= 0 else ""
            raise ValueError(
                f"{name} has values in [{lo:.4g}, {hi:.4g}] but binarize={binarize!r} needs probabilities in [0, 1]{scale}"
            )


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
                "standard deviation: map it through softplus or exp (pyrovae.nets.functional.positive_scale adds a floor)"
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
