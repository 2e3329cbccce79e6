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
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch
from pyro.infer.util import is_validation_enabled
from torch import nn

from .. import likelihoods as _likelihoods
from .._util.checks import positive_int

__all__ = [
    "CheckedData",
    "call_checked",
    "check_data",
    "check_decoder_output",
    "check_encoder_output",
    "check_inputs",
    "check_values",
    "checked_data",
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
    encode_only: bool = False,
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
       probabilities that will be binarised, so they must lie in [0, 1] instead; so must
       the data with ``encode_only`` under a binary likelihood (the encoder takes grey
       levels, only scoring them under a Bernoulli would be wrong).

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
    :param encode_only: the data only go through the encoder (latent codes, interpolation):
        under a binary likelihood grey levels in [0, 1] pass, since no likelihood scores them.
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
        check_values(vae, x, name, binarize=binarize, encode_only=encode_only)
    return x


def _is_batch_iterable(x: Any) -> bool:
    # a loader, a generator or a list of batches; not a tensor, an array, an ImageSet or a nested list of numbers
    if isinstance(x, (torch.Tensor, str, bytes, dict)) or hasattr(x, "__array__") or not isinstance(x, Iterable):
        return False
    if isinstance(getattr(x, "images", None), torch.Tensor):
        return False  # an ImageSet: check_data names .images
    if isinstance(x, (list, tuple)):
        return bool(x) and all(isinstance(b, torch.Tensor) or (isinstance(b, (list, tuple)) and len(b) > 0
                                                                and isinstance(b[0], torch.Tensor)) for b in x)
    return True


class CheckedData:
    """Data that went through :func:`check_data`, walked in batches: a tensor, checked once
    when this is made (one pass over the values), or an iterable of batches (a
    ``DataLoader``, a list of tensors; items ``(x, ...)`` give their first element), each
    batch checked as it comes. Made by :func:`checked_data`.

    :param vae: the model the data are for.
    :param x: ``(N, *x_shape)`` or an iterable of batches.
    :param name: what to call the data in messages.
    :param encode_only: see :func:`check_data`.
    """

    def __init__(self, vae: nn.Module, x: Any, name: str = "x", *, encode_only: bool = False) -> None:
        self.vae, self.name, self.encode_only = vae, name, encode_only
        if _is_batch_iterable(x):
            self.tensor, self.loader = None, x
            if isinstance(x, (list, tuple)) and all(isinstance(b, torch.Tensor) for b in x):
                x_shape = getattr(vae, "x_shape", None)
                if x_shape is not None and all(tuple(b.shape) == tuple(x_shape) for b in x):
                    raise TypeError(f"{name} is a {type(x).__name__} of {len(x)} single data points of shape "
                                    f"{tuple(x_shape)}; stack them into one batch: torch.stack({name})")
        else:
            self.tensor, self.loader = check_data(vae, x, name, encode_only=encode_only), None

    def __len__(self) -> int:
        """The number of data points (a tensor), or of batches (a loader with a length)."""
        return len(self.tensor) if self.tensor is not None else len(self.loader)

    def batches(self, batch_size: int, device: torch.device | None = None) -> Iterator[torch.Tensor]:
        """The data in batches of ``batch_size`` (a loader's own batches), on ``device`` if given.

        :raises ValueError: for a ``batch_size`` that is not a positive integer, or a bad batch.
        """
        positive_int("batch_size", batch_size)
        return self._batches(batch_size, device)

    def _batches(self, batch_size: int, device: torch.device | None) -> Iterator[torch.Tensor]:
        if self.tensor is not None:
            for xb in self.tensor.split(batch_size):
                yield xb if device is None else xb.to(device)
            return
        seen = 0
        for i, b in enumerate(self.loader):
            b = b[0] if isinstance(b, (tuple, list)) else b
            xb = check_data(self.vae, b, f"{self.name} (batch {i})", encode_only=self.encode_only)
            seen += 1
            yield xb if device is None else xb.to(device)
        if not seen:
            raise ValueError(f"{self.name} is an empty iterable: no batches of data")


def checked_data(vae: nn.Module, x: Any, name: str = "x", *, encode_only: bool = False) -> CheckedData:
    """:func:`check_data` for a data set that is walked in batches (the entry points of
    :mod:`pyrovae.evaluate` and :mod:`pyrovae.inspect`). Data already checked pass as they
    are (so an entry point that calls another checks once), unless they were checked for the
    encoder only and are now to be scored.

    :returns: a :class:`CheckedData`.
    :raises TypeError: for data that are neither a tensor nor an iterable of batches.
    :raises ValueError: for a wrong shape, dtype or values (see :func:`check_data`).
    """
    if isinstance(x, CheckedData) and x.vae is not vae:
        x = x.tensor if x.tensor is not None else x.loader  # checked for another model: check again
    if isinstance(x, CheckedData):
        if x.encode_only and not encode_only:
            if x.tensor is not None:
                check_values(vae, x.tensor, x.name)
            x = CheckedData(vae, x.tensor if x.tensor is not None else x.loader, x.name)
        return x
    return CheckedData(vae, x, name, encode_only=encode_only)


def check_inputs(vae: nn.Module, x: Any, name: str = "x", *, one: bool = False,
                 encode_only: bool = True) -> torch.Tensor:
    """:func:`check_data` for the inputs of an inspection: one data point ``x_shape`` (taken
    as a batch of one) or a batch ``(b, *x_shape)``; returned as a batch on the model's device.

    :param one: require exactly one data point.
    :param encode_only: see :func:`check_data` (``False`` where the inputs are scored).
    :raises TypeError: for data that are not a tensor.
    :raises ValueError: for a wrong shape, dtype or values, or a batch where one point is needed.
    """
    x_shape = getattr(vae, "x_shape", None)
    if isinstance(x, torch.Tensor) and x_shape is not None and tuple(x.shape) == tuple(x_shape):
        x = x.unsqueeze(0)  # one data point
    x = check_data(vae, x, name, encode_only=encode_only)
    if one and len(x) != 1:
        raise ValueError(f"{name} must be one input, of shape {tuple(x.shape[1:])} or (1, {_dims(x.shape[1:])}); "
                         f"got a batch of {len(x)}")
    device = model_device(vae)
    return x if device is None else x.to(device)


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
    except Exception:  # a prior that cannot run yet tells us nothing
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


def _empty(name: str, shape: tuple[int, ...]) -> str:
    return f"{name} must be a non-empty batch (N, *x_shape), got shape {shape} (an empty batch)"


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
            raise ValueError(_empty(name, shape))
        vae.x_shape = shape[1:]  # inferred from the first batch, checked against from now on
        return
    x_shape = tuple(x_shape)
    if shape[1:] == x_shape and x.dim() >= 2:
        if shape[0] == 0:
            raise ValueError(_empty(name, shape))
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


def check_values(vae: nn.Module, x: torch.Tensor, name: str = "x", *, binarize: str | None = None,
                 encode_only: bool = False) -> None:
    """The value part of :func:`check_data`: finite, and in the likelihood's support (or in
    [0, 1] when ``binarize`` is set, or when ``encode_only`` under a binary likelihood). A
    pass or two over ``x`` (one for [0, 1]: NaN and inf fail the range test too).

    :raises ValueError: naming how many values are bad, an example, and the fix.
    """
    likelihood = getattr(vae, "likelihood", None)
    if binarize is not None:
        why = f"binarize={binarize!r} needs probabilities in [0, 1]"
    elif encode_only and getattr(likelihood, "binary", False):
        why = (f"the encoder of a VAE with a {type(likelihood).__name__} likelihood takes binary data or grey "
               "levels in [0, 1]")
    else:
        why = None
    if why is not None:
        lo, hi = (float(v) for v in torch.aminmax(x))  # NaN propagates, and fails both comparisons
        if lo >= 0 and hi <= 1:
            return
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        raise ValueError(f"{name} contains NaN or inf at {int(bad.sum())} positions; expected finite values")
    if why is None:
        check = getattr(likelihood, "check", None)
        if check is not None:
            check(x)
        return
    scale = f"; values up to {hi:.4g} look like 8-bit pixels: use {name} / 255" if 1 < hi <= 255 and lo >= 0 else ""
    raise ValueError(f"{name} has values in [{lo:.4g}, {hi:.4g}] but {why}{scale}")


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
