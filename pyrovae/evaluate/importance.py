r"""Importance weights of the guide and every statistic drawn from them, in one place.

For a data point x and draws :math:`z_k \sim q(z|x)`, :math:`k = 1..K`, the log-weights
:math:`\log w_k = \log p(x, z_k) - \log q(z_k|x)` give

.. math::

    \log \hat p(x) = \log \frac1K \sum_k w_k, \qquad
    \mathrm{ESS} = \frac{(\sum_k w_k)^2}{\sum_k w_k^2}, \qquad
    \widehat{\mathrm{KL}}(p(z|x)\,\|\,q) = \sum_k \bar w_k \log w_k - \log \hat p(x),

with :math:`\bar w_k = w_k / \sum_j w_j` the self-normalised weights, and
:math:`\frac1K \sum_k \log w_k`, a K-sample estimate of the ELBO. The self-normalised
inclusive KL equals :math:`\log K - H(\bar w)`, so it never exceeds :math:`\log K`.

All of them are accumulated by :class:`_Stream` over chunks of samples, with a running
maximum (a streaming log-sum-exp), so memory stays ``O(batch)`` whatever K is.
:func:`pyrovae.evaluate.log_likelihood`, :func:`pyrovae.evaluate.elbo_gap` and
:func:`importance_stats` all read these streams.

References:

1. Burda, Y., Grosse, R. and Salakhutdinov, R. (2016). Importance Weighted Autoencoders. ICLR.
2. Kong, A. (1992). A note on importance sampling using standardized weights. Technical
   report 348, University of Chicago (the effective sample size).
3. Bornschein, J. and Bengio, Y. (2015). Reweighted Wake-Sleep. ICLR (self-normalised
   estimates of the inclusive KL).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import pyro
import torch

from .._util.batching import model_device
from .._util.checks import at_least, positive_int
from ..models import VAE
from ..models.validation import check_data, checked_data

__all__ = ["ImportanceStats", "importance_stats", "log_weights"]


@torch.no_grad()
def log_weights(vae: VAE, x: torch.Tensor, num_samples: int) -> torch.Tensor:
    r"""Importance log-weights :math:`\log p(x, z_k) - \log q(z_k|x)` with :math:`z_k \sim q(z|x)`.

    The building block of importance-sampled log p(x), effective sample size and
    self-normalised estimates. One batch, all samples at once: chunk ``num_samples`` in the
    caller to bound memory (as :func:`pyrovae.evaluate.log_likelihood` does).

    :param vae: the model.
    :param x: a batch ``(b, *x_shape)`` on the model's device.
    :param num_samples: K, draws per data point.
    :returns: ``(b, K)``.
    :raises TypeError: for data that are not a tensor.
    :raises ValueError: for data the model cannot score, or a bad ``num_samples``.
    """
    positive_int("num_samples", num_samples)
    x = check_data(vae, x)
    return _log_weights(vae, x, vae.encode(x), num_samples)


def _log_weights(vae: VAE, x: torch.Tensor, q, num_samples: int) -> torch.Tensor:
    # q is encoded once per batch and reused for every chunk of samples
    z = q.sample((num_samples,))  # (K, b, z_dim)
    log_p = vae.prior().log_prob(z) + vae.decode(z).log_prob(x)  # (K, b)
    return (log_p - q.log_prob(z)).T  # (b, K)


class _Stream:
    """Running sums of chunks of log-weights ``(b, k)``, per data point, in float64.

    Keeps the running maximum ``m`` and ``s1 = sum exp(lw - m)``, ``s2 = sum exp(2 (lw - m))``,
    ``s_wl = sum exp(lw - m) lw``, rescaled whenever the maximum grows, so no chunk's weights
    overflow; also ``sum lw`` and ``sum lw^2`` for the ELBO estimate.
    """

    def __init__(self, b: int, device: torch.device) -> None:
        kw = {"device": device, "dtype": torch.float64}
        self.m = torch.full((b,), -math.inf, **kw)
        self.s1 = torch.zeros(b, **kw)
        self.s2 = torch.zeros(b, **kw)
        self.s_wl = torch.zeros(b, **kw)
        self.sum_lw = torch.zeros(b, **kw)
        self.sum_lw2 = torch.zeros(b, **kw)
        self.k = 0
        self.dtype = torch.get_default_dtype()  # of the log-weights seen, for results in kind

    def update(self, lw: torch.Tensor) -> None:
        self.dtype = lw.dtype
        lw = lw.double()  # (b, k)
        m_new = torch.maximum(self.m, lw.max(1).values)  # (b,)
        shrink = torch.exp(self.m - m_new)  # (b,) 0 on the first chunk
        w = torch.exp(lw - m_new[:, None])  # (b, k) weights / exp(m_new)
        self.s1 = self.s1 * shrink + w.sum(1)
        self.s2 = self.s2 * shrink**2 + (w * w).sum(1)
        self.s_wl = self.s_wl * shrink + (w * lw).sum(1)
        self.m = m_new
        self.sum_lw += lw.sum(1)
        self.sum_lw2 += (lw * lw).sum(1)
        self.k += lw.shape[1]

    def log_mean_exp(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``log (1/K) sum_k w_k`` and its delta-method standard error, each ``(b,)``."""
        k = self.k
        mean_w = self.s1 / k  # (b,) mean weight / exp(m)
        # unbiased sample variance of the weights, in units of exp(2m)
        var_w = (self.s2 / k - mean_w**2).clamp_min(0) * (k / max(k - 1, 1))
        stderr = torch.sqrt(var_w / k) / mean_w  # delta method: sd(mean w) / mean w
        return self.m + torch.log(mean_w), stderr

    def mean_and_stderr(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The mean log-weight (a K-sample ELBO estimate) and its standard error, each ``(b,)``."""
        k = self.k
        mean = self.sum_lw / k
        var = (self.sum_lw2 / k - mean**2).clamp_min(0) * (k / max(k - 1, 1))
        return mean, torch.sqrt(var / k)

    def ess(self) -> torch.Tensor:
        """Effective sample size ``(sum w)^2 / sum w^2``, between 1 and K, ``(b,)``."""
        return self.s1**2 / self.s2

    def inclusive_kl(self) -> torch.Tensor:
        """Self-normalised ``KL(p(z|x) || q)``: ``sum_k wbar_k log w_k - log p_hat(x)``, ``(b,)``."""
        return self.s_wl / self.s1 - self.log_mean_exp()[0]


def _chunk_size(batch: int, num_samples: int, x_numel: int, max_elements: int) -> int:
    return max(1, min(num_samples, max_elements // max(1, batch * x_numel)))


def _importance_streams(
    vae: VAE, x: torch.Tensor | Iterable, num_samples: int, batch_size: int = 100, chunk_size: int | None = None,
    max_elements: int = 2**20,
) -> Iterator[_Stream]:
    """One :class:`_Stream` per batch of ``x``, fed ``num_samples`` log-weights per data point
    in chunks (``chunk_size``, or the largest that keeps ``batch * chunk * prod(x_shape) <=
    max_elements``). The data and settings are checked now, before the first batch."""
    at_least("num_samples", num_samples, 2, " for a standard error")
    if chunk_size is not None:
        positive_int("chunk_size", chunk_size)
    positive_int("max_elements", max_elements)
    batches = checked_data(vae, x).batches(batch_size, model_device(vae))
    return _streams(vae, batches, num_samples, chunk_size, max_elements)


@torch.no_grad()
def _streams(vae: VAE, batches: Iterator[torch.Tensor], num_samples: int, chunk_size: int | None,
             max_elements: int) -> Iterator[_Stream]:
    device = model_device(vae)
    x_numel = math.prod(vae.x_shape) if vae.x_shape else 1
    for xb in batches:
        stream = _Stream(len(xb), device)
        chunk = chunk_size or _chunk_size(len(xb), num_samples, x_numel, max_elements)
        # the data were checked once, up front: the distributions built per chunk need not check
        # their samples again (the context ends before the yield, so the caller's setting stands)
        with pyro.validation_enabled(False):
            q = vae.encode(xb)  # batch_shape (b,)
            for start in range(0, num_samples, chunk):
                stream.update(_log_weights(vae, xb, q, min(chunk, num_samples - start)))  # (b, k)
        yield stream


class ImportanceStats(dict):
    """Per-data-point tensors, each ``(N,)`` on the CPU: ``log_px``, ``inclusive_kl``, ``ess``."""


def importance_stats(vae: VAE, x: torch.Tensor | Iterable, num_samples: int = 1000, batch_size: int = 50,
                     chunk: int = 250) -> ImportanceStats:
    """Importance-sampling log p(x), self-normalised inclusive KL(p(z|x)‖q) and ESS, per data
    point, all three from the same S weights (see the module docstring).

    :param vae: the model.
    :param x: ``(N, *x_shape)`` (binarised as the model expects) or an iterable of batches.
    :param num_samples: S (>= 2).
    :param batch_size: data points per batch.
    :param chunk: samples per decoder call (bounds memory: batch × chunk decodes).
    :returns: :class:`ImportanceStats` of ``(N,)`` CPU tensors in the model's dtype.
    """
    out: dict[str, list[torch.Tensor]] = {"log_px": [], "inclusive_kl": [], "ess": []}
    for s in _importance_streams(vae, x, num_samples, batch_size, chunk_size=chunk):
        for key, value in (("log_px", s.log_mean_exp()[0]), ("inclusive_kl", s.inclusive_kl()), ("ess", s.ess())):
            out[key].append(value.to(s.dtype).cpu())
    return ImportanceStats({k: torch.cat(v) for k, v in out.items()})
