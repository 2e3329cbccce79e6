"""Observation families p(x|z).

A likelihood maps the decoder's output to a distribution over x:
``likelihood(decoder_out, event_dim) -> Distribution`` whose event shape is ``x_shape``
(``event_dim = len(x_shape)``). It also knows its support, so that bad data gets a clear
error (:meth:`Likelihood.check`), and its mean, for pictures (:meth:`Likelihood.mean`).

References:

1. Kingma, D. P. and Welling, M. (2014). Auto-Encoding Variational Bayes. ICLR.
2. Loaiza-Ganem, G. and Cunningham, J. P. (2019). The continuous Bernoulli: fixing a
   pervasive error in variational autoencoders. NeurIPS.
3. van den Oord, A., Kalchbrenner, N. and Kavukcuoglu, K. (2016). Pixel Recurrent Neural
   Networks. ICML (a Categorical over pixel values).
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch
from pyro.nn import PyroModule
from torch import nn

from ._util.checks import at_least, finite, one_of, positive
from .distributions.bernoulli import BernoulliLogits
from .nets.functional import positive_scale


def _default_event_dim(out: torch.Tensor, extra: int = 0) -> int:
    # without being told, treat every dim but the first (batch) as the event
    return out.dim() - 1 - extra


def _pixel_hint(x: torch.Tensor) -> str:
    # values in 0..255 are 8-bit pixels that were never scaled
    lo, hi = float(x.min()), float(x.max())
    return "; values up to 255 look like 8-bit pixels: scale them with x / 255" if lo >= 0 and 1 < hi <= 255 else ""


class Likelihood(PyroModule):
    """Base class: subclasses implement :meth:`forward` and may override :meth:`check`."""

    #: a short name used in messages and configs
    name = "likelihood"
    #: True when the data must be binary (0/1)
    binary = False

    def forward(self, out: torch.Tensor, event_dim: int | None = None) -> dist.Distribution:
        raise NotImplementedError

    def mean(self, out: torch.Tensor, event_dim: int | None = None) -> torch.Tensor:
        """The mean of p(x|z) for decoder output ``out`` (what a picture of x shows)."""
        return self(out, event_dim).mean

    def check(self, x: torch.Tensor) -> None:
        """Raise ``ValueError`` if ``x`` is outside this likelihood's support or not finite."""
        finite("data", x)


class Bernoulli(Likelihood):
    """Pixel-wise Bernoulli with logits from the decoder, for binary data."""

    name = "bernoulli"
    binary = True

    def forward(self, out: torch.Tensor, event_dim: int | None = None) -> dist.Distribution:
        ed = _default_event_dim(out) if event_dim is None else event_dim
        return BernoulliLogits(logits=out, validate_args=False).to_event(ed)

    def mean(self, out: torch.Tensor, event_dim: int | None = None) -> torch.Tensor:
        return torch.sigmoid(out)

    def check(self, x: torch.Tensor) -> None:
        super().check(x)
        bad = (x != 0) & (x != 1)
        if bad.any():
            example = float(x[bad].flatten()[0])
            raise ValueError(
                f"Bernoulli likelihood needs binary data (0 or 1), but {int(bad.sum())} values are not "
                f"(e.g. {example:.4g}){_pixel_hint(x)}. Binarise grey levels in [0, 1] first "
                "(pyrovae.data.binarize(x, 'dynamic') or fit(..., binarize='dynamic')), or use "
                "likelihoods.ContinuousBernoulli() for grey levels."
            )


class ContinuousBernoulli(Likelihood):
    """Continuous Bernoulli on [0, 1] (Loaiza-Ganem & Cunningham 2019), for grey levels."""

    name = "continuous_bernoulli"

    def forward(self, out: torch.Tensor, event_dim: int | None = None) -> dist.Distribution:
        ed = _default_event_dim(out) if event_dim is None else event_dim
        # logits are clamped: the normaliser is numerically unstable far from 0
        return dist.ContinuousBernoulli(logits=out.clamp(-15, 15), validate_args=False).to_event(ed)

    def check(self, x: torch.Tensor) -> None:
        super().check(x)
        if (x < 0).any() or (x > 1).any():
            raise ValueError(
                f"ContinuousBernoulli needs data in [0, 1], got values in [{float(x.min()):.4g}, {float(x.max()):.4g}]"
                + _pixel_hint(x)
            )


class _LocScale(Likelihood):
    family: type[dist.Distribution]

    def __init__(self, scale: float | None = None) -> None:
        super().__init__()
        if scale is None:
            # learned scalar scale, starting at 0.1 (pixel intensities live in [0, 1])
            self.raw_scale = nn.Parameter(torch.tensor(math.log(math.expm1(0.1))))
            self.fixed_scale = None
        else:
            self.raw_scale = None
            self.fixed_scale = positive("scale (or None to learn it)", scale)

    @property
    def learned(self) -> bool:
        return self.fixed_scale is None

    def scale_for(self, out: torch.Tensor) -> torch.Tensor | float:
        return positive_scale(self.raw_scale) if self.fixed_scale is None else self.fixed_scale

    def forward(self, out: torch.Tensor, event_dim: int | None = None) -> dist.Distribution:
        ed = _default_event_dim(out) if event_dim is None else event_dim
        scale = self.scale_for(out)
        if not isinstance(scale, torch.Tensor):
            scale = torch.full((), scale, device=out.device, dtype=out.dtype)
        return self.family(out, scale.expand_as(out), validate_args=False).to_event(ed)

    def mean(self, out: torch.Tensor, event_dim: int | None = None) -> torch.Tensor:
        return out


class Gaussian(_LocScale):
    """Pixel-wise Normal with loc from the decoder and a fixed or learned (``scale=None``)
    scalar scale."""

    name = "gaussian"
    family = dist.Normal


class Laplace(_LocScale):
    """Pixel-wise Laplace with loc from the decoder and a fixed or learned scalar scale."""

    name = "laplace"
    family = dist.Laplace


class Categorical(Likelihood):
    """Categorical over ``num_classes`` values per element; the decoder emits logits of shape
    ``(batch, *x_shape, num_classes)`` and x holds integer class indices.

    :param num_classes: number of categories.
    """

    name = "categorical"

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = at_least("num_classes", num_classes, 2)

    def forward(self, out: torch.Tensor, event_dim: int | None = None) -> dist.Distribution:
        ed = _default_event_dim(out, extra=1) if event_dim is None else event_dim
        return dist.Categorical(logits=out, validate_args=False).to_event(ed)

    def mean(self, out: torch.Tensor, event_dim: int | None = None) -> torch.Tensor:
        # a Categorical's mean is meaningless for labels: show the most likely class
        return out.argmax(-1)

    def check(self, x: torch.Tensor) -> None:
        super().check(x)
        bad = (x < 0) | (x >= self.num_classes) | (x != x.round())
        if bad.any():
            raise ValueError(
                f"Categorical({self.num_classes}) needs integer class indices in [0, {self.num_classes - 1}], "
                f"but {int(bad.sum())} values are not (e.g. {float(x[bad].flatten()[0]):.4g})"
            )


REGISTRY: dict[str, type[Likelihood]] = {
    cls.name: cls for cls in (Bernoulli, ContinuousBernoulli, Gaussian, Laplace, Categorical)
}


def by_name(name: str, **kwargs) -> Likelihood:
    """Build a likelihood from its name (``bernoulli``, ``continuous_bernoulli``, ``gaussian``,
    ``laplace``, ``categorical``).

    :param name: the likelihood's name.
    :param kwargs: passed to its constructor.
    """
    return REGISTRY[one_of("likelihood", name, sorted(REGISTRY))](**kwargs)
