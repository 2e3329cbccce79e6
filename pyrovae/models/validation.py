"""The check at the library's boundary for the data a user passes.

:func:`check_data` is the one check for data. Every public function that takes data calls
it first and goes on with the tensor it returns; it names the problem and the fix, where
torch would otherwise fail deep inside a matmul or, worse, score the data silently.

The protocol checks on a user's networks are in :mod:`pyrovae.models.protocol`.

Nothing here runs Python-side value checks under ``torch.jit`` tracing: a value read back
into Python would be frozen into the trace (and warns).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from pyro.infer.util import is_validation_enabled
from torch import nn

from .. import likelihoods as _likelihoods
from .._util.batching import first_tensor
from .._util.checks import positive_int

__all__ = [
    "CheckedData",
    "check_data",
    "check_inputs",
    "check_values",
    "checked_data",
    "float_dtype",
    "model_device",
    "model_inputs",
]


def model_device(module: nn.Module) -> torch.device | None:
    """The device of the module's first parameter or buffer (``None`` when it has neither)."""
    t = first_tensor(module)
    return t.device if t is not None else None


def float_dtype(module: nn.Module) -> torch.dtype:
    """The dtype of the module's first floating-point parameter or buffer (torch's default
    dtype when it has none): the dtype data must have to meet the networks."""
    t = first_tensor(module, floating=True)
    return t.dtype if t is not None else torch.get_default_dtype()


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
