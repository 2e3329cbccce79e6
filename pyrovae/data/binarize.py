"""Binarisation of grey levels, and the cheap checks to run once at a boundary.

References:

1. Salakhutdinov, R. and Murray, I. (2008). On the quantitative analysis of deep belief
   networks. ICML. (Stochastic binarisation of MNIST.)
2. Burda, Y., Grosse, R. and Salakhutdinov, R. (2016). Importance weighted autoencoders.
   ICLR. (Dynamic binarisation for training; evaluation protocol.)
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._util.checks import finite, unit_interval

__all__ = ["BINARIZE_MODES", "binarize", "check_images", "check_mode", "check_unit_interval", "seeded_generator"]

#: Allowed values of the ``binarize``/``mode`` arguments.
BINARIZE_MODES: tuple[str | None, ...] = ("dynamic", "static", None)


def check_images(x: Tensor, name: str = "data") -> Tensor:
    """
    Raise a clear error if ``x`` holds NaN or inf values. Meant to be called once at a
    boundary (e.g. the entry of a training loop), not on every step.

    :param Tensor x: any tensor.
    :param str name: what to call ``x`` in the error message.
    :returns: ``x`` unchanged, for chaining.
    :raises TypeError: if ``x`` is not a tensor.
    :raises ValueError: if ``x`` contains NaN or inf.
    """
    return finite(name, x)


def check_mode(mode: str | None) -> None:
    """:raises ValueError: unless ``mode`` is ``"dynamic"``, ``"static"`` or ``None``."""
    if mode not in BINARIZE_MODES:
        raise ValueError(
            f"unknown binarize mode {mode!r}; allowed modes are 'dynamic', 'static' or None"
        )


def check_unit_interval(images: Tensor) -> None:
    """Raise unless ``images`` are floating-point Bernoulli probabilities in [0, 1]."""
    unit_interval("images", images, needed_by="binarize")


def seeded_generator(seed: int, device: torch.device | str) -> torch.Generator:
    """A :class:`torch.Generator` on ``device`` seeded with ``seed`` (the draws of static binarisation)."""
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed))
    return gen


def binarize(
    images: Tensor,
    mode: str | None,
    seed: int | None = None,
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """
    Binarise grey levels by drawing ``x ~ Bernoulli(images)`` element-wise [2].

    - ``"dynamic"``: a fresh draw on every call, from the global RNG, or from a generator
      seeded with ``seed``, or from ``generator``. Used for training, where a new draw
      every epoch acts as data augmentation [3].
    - ``"static"``: the draw fixed by ``seed`` (``0`` if ``None``): the same seed gives the
      same output. Note that CPU and CUDA generators give different draws for one seed.
    - ``None``: ``images`` returned unchanged (grey levels, for continuous likelihoods).

    The draw happens on the device of ``images``.

    :param Tensor images: probabilities in [0, 1], any shape, floating dtype.
    :param mode: ``"dynamic"``, ``"static"`` or ``None``.
    :param seed: seed for the draw; see above.
    :param generator: a :class:`torch.Generator` on the device of ``images`` to draw from
        (``"dynamic"`` only; takes precedence over ``seed``).
    :returns: a tensor like ``images`` with values in {0, 1} (or ``images`` itself).
    :raises ValueError: for an unknown mode, or values outside [0, 1].

    Example:

    >>> import torch
    >>> from pyrovae.data import binarize
    >>> x = torch.full((2, 3), 0.5)
    >>> b = binarize(x, "static", seed=0)
    >>> b.shape, bool(((b == 0) | (b == 1)).all())
    (torch.Size([2, 3]), True)
    >>> torch.equal(b, binarize(x, "static", seed=0))  # the same seed, the same draw
    True
    >>> binarize(x, None) is x
    True
    """
    check_mode(mode)
    if mode is None:
        return images
    check_unit_interval(images)
    if mode == "static":
        if generator is not None:
            raise ValueError("binarize(mode='static') takes a seed, not a generator")
        gen = seeded_generator(0 if seed is None else seed, images.device)
    elif generator is not None:
        gen = generator
    elif seed is not None:
        gen = seeded_generator(seed, images.device)
    else:
        gen = None  # the global RNG (per-device)
    return torch.bernoulli(images, generator=gen)
