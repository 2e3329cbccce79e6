r"""Element-wise kernels that torch's CPU build runs slowly, written as a few vectorised passes.

:func:`softplus_values` is :math:`\operatorname{softplus}(x) = \log(1 + e^{x})`, computed as

.. math::

    \operatorname{softplus}(x) = \max\big(\log(1 + e^{\min(\max(x, -80), 20)}),\ x\big).

The clamp keeps :math:`e^{x}` finite and normal: above 20, :math:`\log(1 + e^{20}) = 20 < x`
in float32, so the maximum returns :math:`x` (softplus exceeds :math:`x` by less than
:math:`e^{-20}` there; in float64 the upper clamp is 40); everywhere else softplus exceeds
:math:`x`, so the maximum returns the logarithm. Below -80 the result is :math:`e^{-80}`
instead of :math:`e^{x}`, and below about -17 ``1 + e^x`` rounds to 1 in float32: absolute
errors under :math:`6 \times 10^{-8}`. In float32 it differs from
``torch.nn.functional.softplus`` by at most a few units in the last place.

Why not torch's kernel: for very negative inputs, as the logits of a confident decoder are (most
pixels of MNIST are far from 0.5), its ``log1p(exp(x))`` makes subnormal floats, which run
through the x86 slow path: on 1300 x 784 such logits, one thread, it took 7.2 ms, 1.7 ms with
``torch.set_flush_denormal(True)``, and these five passes (clamp, exp, add, log, max) 1.1 ms.
A VAE's MLPs and its Bernoulli log-density spend much of their element-wise time here.
:class:`~pyrovae.nets.functional.Softplus` and :class:`~pyrovae.distributions.BernoulliLogits`
are built on it.
"""

from __future__ import annotations

import torch

__all__ = ["MIN_ELEMENTS", "fast_path", "softplus_values"]


#: below this many elements the extra passes cost more (in per-op overhead) than they save
MIN_ELEMENTS = 16384


def fast_path(x: torch.Tensor) -> bool:
    """Whether to use these kernels for ``x``: on the CPU, for tensors of at least
    :data:`MIN_ELEMENTS` values, and not under ``torch.jit`` tracing (on CUDA torch's own
    kernels are single fused launches already)."""
    return not torch.jit.is_tracing() and x.device.type == "cpu" and x.numel() >= MIN_ELEMENTS


def softplus_values(x: torch.Tensor) -> torch.Tensor:
    """:math:`\\operatorname{softplus}(x)` as a new tensor, outside autograd (see the module docstring)."""
    # (x.shape) log(1 + e^x) with x clamped to [-80, top]: no overflow, no subnormal float
    top = 40.0 if x.dtype == torch.float64 else 20.0  # where e^-x is below the dtype's resolution of x
    out = x.clamp(-80.0, top).exp_().add_(1).log_()
    return torch.maximum(out, x, out=out)  # x itself above top, where the clamp bit
