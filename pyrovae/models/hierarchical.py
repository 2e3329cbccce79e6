r"""A VAE with L ≥ 2 stochastic layers, as a Pyro model and guide.

The generative model is

.. math::

    p_\theta(x, z_{1:L}) = p(z_L) \prod_{l=1}^{L-1} p_\theta(z_l \mid z_{l+1})\; p_\theta(x \mid z_1),

with Gaussian conditionals :math:`p_\theta(z_l|z_{l+1})` and the top prior from
:mod:`pyrovae.priors`. Two guides:

- **bottom-up** (Burda et al. 2016): :math:`q(z_1|x)\, q(z_2|z_1) \cdots q(z_L|z_{L-1})`;
- **top-down** (Ladder VAE, Sønderby et al. 2016; NVAE, Vahdat and Kautz 2020):
  :math:`q(z_L|x) \prod_l q(z_l|z_{l+1}, x)`, where :math:`q(z_l|z_{l+1}, x)` combines a
  deterministic bottom-up feature of x with the *generative* :math:`p_\theta(z_l|z_{l+1})`
  (:class:`pyrovae.nets.LadderEncoder`), so the guide shares the model's top-down path.

Any Pyro ELBO trains them; the objective is

.. math::

    \mathcal{L}(x) = \mathbb{E}_q[\log p_\theta(x|z_1)]
        - \beta \sum_{l=1}^{L} \mathbb{E}_q\big[\log q(z_l|\cdot) - \log p(z_l|z_{l+1})\big],

the ELBO at :math:`\beta = 1`. With **free bits** (Kingma et al. 2016) a layer whose KL,
averaged over the minibatch, is below its floor :math:`\lambda_l` counts as :math:`\lambda_l`:
:math:`\mathcal{L}_\lambda = \mathbb{E}_q[\log p(x|z_1)] - \beta\sum_l \max(\lambda_l, \overline{\mathrm{KL}}_l)`.
It enters as a ``pyro.factor`` site ``"free_bits"`` in the model,
:math:`\sum_l \mathbb{1}[\overline{\mathrm{KL}}_l < \lambda_l] (\mathrm{KL}_{ln} - \lambda_l)`
per data point, which cancels the layer's KL gradient, so every ELBO (``Trace_ELBO``,
``TraceMeanField_ELBO``, the lean path of :func:`pyrovae.fit`) optimises it: exactly with the
closed-form KL, in expectation with the Monte Carlo one. The guide hands its conditionals to
the model that replays its draws; a model run on other draws adds nothing. It is meant for the
ELBOs: under ``IWAE_ELBO`` the factor sits inside every importance weight, and
``MinibatchRWS`` (which detaches the draws) never sees it.

Sites: the layers ``"z1"`` (next to x) ... ``"zL"`` (event dim 1), the observation ``"x"``,
the plate ``"data"`` (dim -1) with ``num_data`` scaling, β on every layer via ``poutine.scale``.
The helpers treat the layers as one latent ``z = [z_1, ..., z_L]`` of size ``sum(z_dims)``:
``encode(x)`` and ``prior()`` are distributions over it, ``decode(z)`` reads its ``z_1`` part,
so :func:`pyrovae.evaluate.elbo_terms` and :func:`pyrovae.evaluate.log_likelihood` apply as they are.

References:

1. Burda, Y., Grosse, R. and Salakhutdinov, R. (2016). Importance Weighted Autoencoders. ICLR.
2. Sønderby, C. K., Raiko, T., Maaløe, L., Sønderby, S. K. and Winther, O. (2016). Ladder
   Variational Autoencoders. NeurIPS.
3. Kingma, D. P., Salimans, T., Jozefowicz, R., Chen, X., Sutskever, I. and Welling, M. (2016).
   Improved Variational Inference with Inverse Autoregressive Flow. NeurIPS (free bits).
4. Vahdat, A. and Kautz, J. (2020). NVAE: A Deep Hierarchical Variational Autoencoder. NeurIPS.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.infer.util import is_validation_enabled
from pyro.nn import PyroModule
from torch import nn

from .. import likelihoods as _likelihoods
from .._util.batching import _batches, model_device
from . import param_store as _store
from .latent_layers import HierarchicalPrior, LayerChain, conditional_mean, layer_kl
from .vae import VAE

#: Burda et al.'s threshold on Cov_x(E_q[z_d]) for an active unit (as pyrovae.evaluate.collapse)
ACTIVE_THRESHOLD = 0.01


class HierarchicalVAE(VAE):
    """A VAE with latent layers ``"z1"`` ... ``"zL"``, trainable with any Pyro ELBO and with
    :func:`pyrovae.fit` (see the module docstring).

    Example (Burda et al.'s two-layer network; :func:`pyrovae.models.build_hierarchical_vae`
    builds it from a config)::

        z_dims, hidden = (100, 50), ((200, 200), (100, 100))
        hvae = HierarchicalVAE(
            encoder=nets.BottomUpEncoder((1, 28, 28), hidden, z_dims),   # or nets.LadderEncoder
            decoder=nets.MLPDecoder(100, (200, 200), (1, 28, 28), activation="tanh"),
            prior=HierarchicalPrior(priors.StandardNormal(50),
                                    [nets.MLPEncoder((50,), (100, 100), 100, "tanh")], z_dims))
        pyrovae.fit(hvae, train, epochs=10, batch_size=100)

    :param encoder: a :class:`~pyrovae.nets.BottomUpEncoder` or :class:`~pyrovae.nets.LadderEncoder`
        (any module with ``direction``, ``x_shape``, ``z_dims`` and their call protocol).
    :param decoder: maps :math:`z_1` ``(batch, z_dims[0])`` to the likelihood's parameters.
    :param prior: the :class:`~pyrovae.models.latent_layers.HierarchicalPrior`.
    :param likelihood: a :class:`~pyrovae.likelihoods.Likelihood` (default Bernoulli).
    :param beta: weight of every latent layer in model and guide; 1 is the true ELBO.
    :param free_bits: KL floor in nats per layer (one number for all, or one per layer,
        bottom first); 0 switches it off.
    :param config: a JSON-able description used to rebuild the model from a checkpoint.
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, prior: HierarchicalPrior,
                 likelihood: _likelihoods.Likelihood | None = None, beta: float = 1.0,
                 free_bits: float | Sequence[float] = 0.0, config: dict | None = None) -> None:
        # VAE.__init__ checks a one-layer latent; the parts of a hierarchy are checked here
        PyroModule.__init__(self)
        self.__dict__.update(_checked=set(), _sites=None)  # VAE's first-batch protocol state
        direction = getattr(encoder, "direction", None)
        if direction not in ("bottom_up", "top_down"):
            raise ValueError(f"the encoder must say its direction ('bottom_up' or 'top_down'), got {direction!r}: "
                             "use nets.BottomUpEncoder or nets.LadderEncoder")
        if not isinstance(prior, HierarchicalPrior):
            raise TypeError("prior must be a HierarchicalPrior (the top prior and the conditionals), "
                            f"got {type(prior).__name__}")
        if tuple(encoder.z_dims) != prior.z_dims:
            raise ValueError(f"the encoder has layers z_dims={tuple(encoder.z_dims)} but the prior {prior.z_dims}")
        dec_z = getattr(decoder, "z_dim", None)
        if dec_z is not None and dec_z != prior.z_dims[0]:
            raise ValueError(f"the decoder reads z_dim={dec_z} but the bottom layer z1 has {prior.z_dims[0]} "
                             "dimensions")
        self.x_shape = tuple(encoder.x_shape)
        self.z_dims = prior.z_dims
        self.z_dim = prior.z_dim  # the joint latent [z1, ..., zL]
        self.sites = tuple(f"z{layer + 1}" for layer in range(len(self.z_dims)))
        self.encoder, self.decoder, self.prior = encoder, decoder, prior
        self.likelihood = likelihood if likelihood is not None else _likelihoods.Bernoulli()
        self.beta = beta
        self.free_bits = free_bits
        self.config = dict(config or {})
        self.guide_flow = None

    # -- settings -------------------------------------------------------------------------
    @property
    def top_down(self) -> bool:
        return self.encoder.direction == "top_down"

    @property
    def free_bits(self) -> tuple[float, ...]:
        """The KL floor of each layer, bottom first."""
        return self._free_bits

    @free_bits.setter
    def free_bits(self, value: float | Sequence[float]) -> None:
        floors = (float(value),) * len(self.z_dims) if isinstance(value, (int, float)) else tuple(map(float, value))
        if len(floors) != len(self.z_dims) or any(not f >= 0 for f in floors):
            raise ValueError(f"free_bits must be one number >= 0 or {len(self.z_dims)} of them, got {value!r}")
        self._free_bits = floors

    def _parts(self) -> Iterator[tuple[str, nn.Module]]:
        yield from (("encoder", self.encoder), ("decoder", self.decoder), ("prior_top", self.prior.top),
                    ("conditionals", self.prior.conditionals), ("likelihood", self.likelihood))

    def _register_parts(self, *names: str) -> None:
        if self.__dict__.get("_register_params", True):
            for name, part in self._parts():
                if name in names:
                    _store.register(name, part)

    # -- Pyro model and guide -------------------------------------------------------------
    def model(self, x: torch.Tensor, num_data: int | None = None) -> tuple[torch.Tensor, ...]:
        """p(z_L) prod p(z_l|z_{l+1}) p(x|z_1), observing ``x`` ``(batch, *x_shape)``; returns the layers."""
        x = self.check_data(x, support=is_validation_enabled())
        self._register_parts("decoder", "prior_top", "conditionals", "likelihood")
        with self._plate(x.shape[0], num_data, x.device):
            with self._z_weight():
                zs, priors = self.prior().ancestral(draw=self._site_draw)
                self._free_bits_factor(zs, priors)
            pyro.sample("x", self.likelihood(self._x_params(zs[0]), self.event_dim), obs=x)
        return tuple(zs[layer] for layer in range(len(self.z_dims)))

    def guide(self, x: torch.Tensor, num_data: int | None = None) -> tuple[torch.Tensor, ...]:
        """The bottom-up or top-down guide; returns the layers, bottom first."""
        x = self.check_data(x, support=is_validation_enabled())  # the guide runs first: catch bad data here
        self._register_parts("encoder", *(("conditionals",) if self.top_down else ()))
        with self._plate(x.shape[0], num_data, x.device), self._z_weight():
            zs, posteriors = self.encode(x).ancestral(draw=self._site_draw)
        if any(self.free_bits):
            # for the model that replays these draws (see _free_bits_factor)
            self.__dict__["_free_bits_stash"] = (zs, posteriors)
        return tuple(zs[layer] for layer in range(len(self.z_dims)))

    def _site_draw(self, layer: int, d: dist.Distribution, shape: torch.Size) -> torch.Tensor:
        return pyro.sample(self.sites[layer], d)

    def _free_bits_factor(self, zs: dict, priors: dict) -> None:
        stash = self.__dict__.pop("_free_bits_stash", None)
        if stash is None or not any(self.free_bits):
            return
        guide_zs, posteriors = stash
        if any(guide_zs[layer] is not zs[layer] for layer in zs):
            return  # this run did not replay the guide's draws: no KL to floor
        total = 0.0
        for layer, floor in enumerate(self.free_bits):
            if floor > 0:
                kl = layer_kl(posteriors[layer], priors[layer], zs[layer])  # (..., batch)
                below = (kl.detach().mean(-1, keepdim=True) < floor).to(kl.dtype)  # minibatch average under the floor
                total = total + below * (kl - floor)
        pyro.factor("free_bits", total)

    # -- the layers as one latent ---------------------------------------------------------
    def _posterior(self, x: torch.Tensor):
        last = len(self.z_dims) - 1
        if not self.top_down:
            def bottom_up(layer: int, zs: dict) -> dist.Distribution:
                q = dist.Normal(*self.encoder(layer, x if layer == 0 else zs[layer - 1])).to_event(1)
                # below the top, q(z_{l+1}|z_l) reads this layer's draw, so the closed-form KL of
                # q(z_l|.) against p(z_l|z_{l+1}) at that z_{l+1} is biased; the no-op mask hides it
                # from kl_divergence (TraceMeanField_ELBO and layer_kl then use log q - log p)
                return q.mask(True) if layer < last else q
            return bottom_up
        heads = self.encoder(x)  # bottom-up features, once per x

        def top_down(layer: int, zs: dict) -> dist.Distribution:
            if layer == last:
                return dist.Normal(*heads[layer]).to_event(1)
            prior_params = self.prior.conditional_params(layer, zs[layer + 1])
            return dist.Normal(*self.encoder.combine(heads[layer], *prior_params)).to_event(1)
        return top_down

    def encode(self, x: torch.Tensor) -> LayerChain:
        """q(z_1, ..., z_L | x) as one distribution over ``[z1, ..., zL]``, batch shape ``(batch,)``."""
        order = range(len(self.z_dims) - 1, -1, -1) if self.top_down else range(len(self.z_dims))
        return LayerChain(self.z_dims, order, self._posterior(x), x.shape[:1])

    def _x_params(self, z1: torch.Tensor) -> torch.Tensor:
        return super()._decoder_out(z1)  # (..., batch, *x_shape[, K])

    def _decoder_out(self, z: torch.Tensor) -> torch.Tensor:
        if z.shape[-1] != self.z_dim:
            raise ValueError(f"decode takes the joint latent [z1, ..., zL] of size {self.z_dim}, got {tuple(z.shape)}")
        return self._x_params(z[..., : self.z_dims[0]])

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, sample_z: bool = False) -> torch.Tensor:
        """Decode an ancestral pass through the guide (each layer's conditional mean, or a draw).

        :returns: the mean of p(x|z_1), ``(batch, *x_shape)``.
        """
        chain = self.encode(x)
        zs, _ = chain.ancestral() if sample_z else chain.ancestral(draw=conditional_mean)
        return self.decode_mean(chain.join(zs))

    @torch.no_grad()
    def generate(self, z_top: torch.Tensor, noise: Sequence[torch.Tensor | None]) -> torch.Tensor:
        """Decode top-layer codes with fixed noise below (:meth:`HierarchicalPrior.from_noise`):
        e.g. vary :math:`z_L` while holding :math:`z_1`'s noise fixed.

        :returns: the mean of p(x|z_1), ``(n, *x_shape)``.
        """
        return self.decode_mean(self.prior.from_noise(z_top, noise))

    # -- importance weights and per-layer diagnostics -------------------------------------
    @torch.no_grad()
    def log_weights(self, x: torch.Tensor, num_samples: int) -> torch.Tensor:
        r"""Importance log-weights :math:`\log p(x, z_{1:L}) - \log q(z_{1:L}|x)` over all layers,
        from the Pyro model and guide themselves (their sites ``"z1"`` ... ``"zL"``, ``"x"``;
        β and free bits left out).

        One batch, all samples at once: chunk ``num_samples`` in the caller to bound memory.
        :func:`pyrovae.evaluate.log_likelihood` (chunked, with the delta-method standard error)
        computes the same weights from :meth:`encode` and :meth:`prior`.

        :param x: ``(b, *x_shape)`` on the model's device.
        :param num_samples: K draws per data point.
        :returns: ``(b, K)``.
        """
        with pyro.plate("importance_samples", num_samples, dim=-2):
            guide_trace = poutine.trace(self.guide).get_trace(x)
            model_trace = poutine.trace(poutine.replay(self.model, trace=guide_trace)).get_trace(x)
        self.__dict__.pop("_free_bits_stash", None)
        log_w = 0.0
        for trace, sign, names in ((model_trace, 1.0, (*self.sites, "x")), (guide_trace, -1.0, self.sites)):
            for name in names:
                site = trace.nodes[name]
                log_w = log_w + sign * site["fn"].log_prob(site["value"])  # (K, b) unscaled
        return log_w.T

    @torch.no_grad()
    def _layer_stats(self, x: Any, num_samples: int, batch_size: int) -> Iterator[tuple[dict, dict, dict]]:
        # per batch: the S ancestral draws, the guide's conditionals and the prior's at them
        device = model_device(self)
        for xb in _batches(x, batch_size):
            zs, posteriors = self.encode(xb.to(device)).ancestral((num_samples,))  # each (S, b, d)
            yield zs, posteriors, {layer: self.prior.conditional(layer, zs) for layer in zs}

    def kl_per_layer(self, x: Any, num_samples: int = 1, batch_size: int = 1000) -> torch.Tensor:
        r"""Each layer's KL term per data point, :math:`\mathbb{E}_q[\log q(z_l|\cdot) - \log p(z_l|z_{l+1})]`
        (closed form given the parents where unbiased, else Monte Carlo); the layers sum to the
        ELBO's KL term :math:`\mathbb{E}_q[\log q(z|x) - \log p(z)]`.

        :param x: ``(N, *x_shape)`` or an iterable of batches.
        :param num_samples: ancestral draws per data point.
        :returns: ``(N, L)`` in nats, bottom layer first.
        """
        out = []
        for zs, qs, ps in self._layer_stats(x, num_samples, batch_size):
            out.append(torch.stack([layer_kl(qs[i], ps[i], zs[i]).mean(0) for i in range(len(self.z_dims))], -1))
        return torch.cat(out)

    def unit_activity(self, x: Any, num_samples: int = 32, batch_size: int = 1000) -> list[torch.Tensor]:
        r"""Activity of each unit of each layer, :math:`A_{ld} = \mathrm{Var}_x(\mathbb{E}_{q}[z_{ld}|x])`.

        :math:`\mathbb{E}_q[z_l|x]` averages the conditional means :math:`\mathbb{E}_q[z_l|\text{parents}]`
        over ``num_samples`` ancestral draws of the parents (exact for the first layer drawn).
        In a top-down guide a lower layer's mean moves with x through the layer above too, so
        it can count as active while its own KL term is near zero.

        :returns: one ``(z_dims[l],)`` tensor per layer, bottom first.
        """
        means: list[list[torch.Tensor]] = [[] for _ in self.z_dims]
        for zs, qs, _ in self._layer_stats(x, num_samples, batch_size):
            for layer, q in qs.items():
                means[layer].append(torch.broadcast_to(q.mean, zs[layer].shape).mean(0))  # (b, d)
        return [torch.cat(m).var(0) for m in means]

    def active_units(self, x: Any, threshold: float = ACTIVE_THRESHOLD, **kwargs: Any) -> tuple[int, ...]:
        """Active units per layer (Burda et al. 2016: :math:`A_{ld} > 0.01`), bottom first."""
        return tuple(int((a > threshold).sum()) for a in self.unit_activity(x, **kwargs))
