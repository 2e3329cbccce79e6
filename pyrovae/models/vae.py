r"""The variational autoencoder as a Pyro model and guide.

The generative model is :math:`p_\theta(x, z) = p(z)\, p_\theta(x \mid z)` and the amortised
guide is :math:`q_\phi(z \mid x) = \mathcal{N}(\mu_\phi(x), \operatorname{diag}\sigma^2_\phi(x))`.
Any Pyro ELBO trains them; with ``Trace_ELBO`` the objective is

.. math::

    \mathcal{L}(x) = \mathbb{E}_{q_\phi(z|x)}[\log p_\theta(x|z)]
        - \beta\, \mathrm{KL}(q_\phi(z|x) \,\|\, p(z)),

which is the evidence lower bound when :math:`\beta = 1`.

Sites: the latent is ``"z"`` (event dim 1), the observation is ``"x"``, and the data plate is
``"data"`` (dim -1). ``num_data=N`` makes the plate scale a minibatch up to the full data set.
``model(x=None, batch_size=n)`` is the generative mode (z and x are drawn), so
``pyro.infer.Predictive`` gives prior and posterior predictive draws. A decoder with
``PyroSample`` weights adds global sites, drawn once per step outside the plate (see
:mod:`pyrovae.models.global_latents`).

References:

1. Kingma, D. P. and Welling, M. (2014). Auto-Encoding Variational Bayes. ICLR.
2. Rezende, D. J., Mohamed, S. and Wierstra, D. (2014). Stochastic Backpropagation and
   Approximate Inference in Deep Generative Models. ICML.
3. Higgins, I. et al. (2017). beta-VAE: Learning Basic Visual Concepts with a Constrained
   Variational Framework. ICLR.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.nn import PyroModule
from torch import nn

from .. import likelihoods as _likelihoods
from .._util.checks import nonnegative, positive_int
from ..distributions.normal import ReparamNormal
from ..priors import StandardNormal, as_prior
from . import global_latents as _globals
from . import param_store as _store
from . import protocol as _protocol
from . import validation as _validation

#: the VAE's parts, in the order Pyro's param store sees them
PARTS = ("encoder", "decoder", "prior", "likelihood", "guide_flow", "global_guide")


class VAE(_globals.GlobalLatents, PyroModule):
    """A variational autoencoder whose :meth:`model` and :meth:`guide` train with any Pyro ELBO.

    Example::

        vae = VAE(encoder=nets.MLPEncoder((1, 28, 28), (400,), 50),
                  decoder=nets.MLPDecoder(50, (400,), (1, 28, 28)),
                  prior=priors.StandardNormal(50), likelihood=likelihoods.Bernoulli())
        svi = SVI(vae.model, vae.guide, Adam({"lr": 1e-3}), Trace_ELBO())
        svi.step(x_batch, num_data=60000)

    The networks may be any modules that keep the protocol, with or without ``x_shape`` and
    ``z_dim`` attributes: what the VAE is not told it reads off the first batch (``x_shape``
    from the data, ``z_dim`` from the encoder's output) and holds from then on
    (:attr:`shapes`). On the first batch, and again after a part is replaced, it checks that
    the encoder returns ``(loc, scale)``, each ``(batch, z_dim)`` with ``scale > 0``, and that
    the decoder's output has the shape the likelihood needs; the errors name the module.

    :param encoder: maps x ``(batch, *x_shape)`` to ``(loc, scale)``, each ``(batch, z_dim)``.
    :param decoder: maps z ``(batch, z_dim)`` to the likelihood's parameters; a
        ``PyroModule`` with ``PyroSample`` weights makes it Bayesian (global latent sites).
    :param prior: a prior module, a Pyro distribution with event shape ``(z_dim,)``, or ``None``
        for a standard normal (made once ``z_dim`` is known).
    :param likelihood: a :class:`~pyrovae.likelihoods.Likelihood` (default Bernoulli).
    :param beta: weight of the ``"z"`` site in model and guide; 1 is the true ELBO.
    :param x_shape: shape of one data point; taken from ``encoder.x_shape`` (or the first
        batch) when omitted.
    :param z_dim: latent size; taken from ``encoder.z_dim``, the prior, or the encoder's first
        output when omitted.
    :param config: a JSON-able description used to rebuild the model from a checkpoint.
    :param guide_flow: optional module with ``encode(encoder, x) -> distribution`` that
        replaces the diagonal Normal guide, e.g. :class:`pyrovae.flows.IAFGuide`.
    :param global_guide: the guide of the global sites, if the model has any: ``"auto"``
        (an ``AutoNormal``), a callable ``model -> guide``, or ``None`` (bring your own).
        See :func:`pyrovae.models.global_latents.make_global_guide`.
    """

    #: whether encode() uses the encoder's scale (checked > 0 on the first batch)
    _uses_scale = True

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        prior: Any = None,
        likelihood: _likelihoods.Likelihood | None = None,
        beta: float = 1.0,
        x_shape: Sequence[int] | None = None,
        z_dim: int | None = None,
        config: dict | None = None,
        guide_flow: nn.Module | None = None,
        global_guide: str | Callable | None = "auto",
    ) -> None:
        super().__init__()
        self.__dict__.update(_checked=set(), _sites=None)
        x_shape, z_dim, z_from = _protocol.resolve_shapes(encoder, decoder, prior, x_shape, z_dim)
        self.x_shape, self.z_dim = x_shape, z_dim
        self.encoder = encoder
        self.decoder = decoder
        self.prior = as_prior(prior, z_dim) if prior is not None or z_dim is not None else None
        if self.z_dim is None and self.prior is not None:
            self.z_dim, z_from = _protocol.prior_z_dim(self.prior), " (the prior)"
        self.__dict__["_z_from"] = z_from
        self.likelihood = likelihood if likelihood is not None else _likelihoods.Bernoulli()
        self.beta = beta
        self.config = dict(config or {})
        self.guide_flow = guide_flow
        self.global_guide = None
        if self._global_sites():
            self.global_guide = _globals.make_global_guide(global_guide, self.model)
            if self.global_guide is not None and self.prior is not None:
                _globals.initialise(self.global_guide)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "prior" and value is not None and "_checked" in self.__dict__:
            value = as_prior(value, self.__dict__.get("z_dim"))
        super().__setattr__(name, value)
        if name in PARTS and "_checked" in self.__dict__:
            # a new part is checked again on its first batch, and may bring other global sites
            self.__dict__.update(_checked=set(), _sites=None, _direct_route=None)

    # -- settings -------------------------------------------------------------------------
    @property
    def beta(self) -> float:
        return self._beta

    @beta.setter
    def beta(self, value: float) -> None:
        self._beta = nonnegative("beta", value)

    @property
    def event_dim(self) -> int:
        """Number of event dims of x (the rank of ``x_shape``)."""
        if self.x_shape is None:
            raise ValueError("this VAE does not know x_shape yet: it takes it from the first batch of data, "
                             "or pass x_shape=... to VAE")
        return len(self.x_shape)

    @property
    def shapes(self) -> dict[str, Any]:
        """``{"x_shape": [...], "z_dim": k}`` as given or inferred (``None`` while unknown);
        JSON-able, for checkpoints. ``VAE(..., x_shape=..., z_dim=...)`` takes them back."""
        return {"x_shape": list(self.x_shape) if self.x_shape is not None else None, "z_dim": self.z_dim}

    def adopt_shapes(self, shapes: dict[str, Any]) -> None:
        """Take the :attr:`shapes` of a trained copy (a checkpoint stores them) where this VAE
        does not know them yet, as its first batch would have set them (the N(0, I) prior is
        made once ``z_dim`` is known), so that data are checked against them from the first
        call on. Shapes this VAE already knows must agree.

        :param shapes: ``{"x_shape": [...] or None, "z_dim": k or None}``.
        :raises ValueError: for shapes that are not positive integers, or that disagree with this VAE's.
        """
        x_shape, z_dim = shapes.get("x_shape"), shapes.get("z_dim")
        if x_shape is not None:
            x_shape = tuple(positive_int("x_shape entry", d) for d in x_shape)
            if self.x_shape is None:
                self.x_shape = x_shape
            elif tuple(self.x_shape) != x_shape:
                raise ValueError(f"x_shape {x_shape} is not this VAE's x_shape {tuple(self.x_shape)}")
        if z_dim is not None:
            positive_int("z_dim", z_dim)
            if self.z_dim is None:
                self.z_dim = z_dim
                self.__dict__["_z_from"] = " (the stored shapes)"
            elif self.z_dim != z_dim:
                raise ValueError(f"z_dim {z_dim} is not this VAE's z_dim {self.z_dim}")
            if self.prior is None:
                device = _validation.model_device(self)
                self.prior = StandardNormal(z_dim).to(device=device, dtype=_validation.float_dtype(self))

    def _z_weight(self) -> contextlib.AbstractContextManager:
        # beta scales the "z" site in both model and guide; poutine.scale needs a positive
        # factor, so beta = 0 masks the site instead (its log-densities count as zero)
        if self._beta == 1.0:
            return contextlib.nullcontext()
        if self._beta == 0.0:
            return poutine.mask(mask=False)
        return poutine.scale(scale=self._beta)

    # -- Pyro's param store -----------------------------------------------------------------
    def _parts(self):
        # (name, module) for every part whose parameters live in Pyro's param store
        for name in PARTS:
            child = getattr(self, name, None)
            if child is not None:
                yield name, child

    def register_params(self) -> None:
        """Put the nets' parameters in Pyro's param store now, as :meth:`model` and
        :meth:`guide` do on every call (the store holds the same tensors, so it stays current
        while a torch optimiser updates them in place)."""
        for name, child in self._parts():
            _store.register(name, child)

    def load_param_store(self) -> None:
        """Take the values Pyro's param store holds for this VAE (after ``store.load(path)``),
        as :meth:`model` and :meth:`guide` do on every call. They are copied into the
        networks' own tensors, so an optimiser built on ``vae.parameters()`` stays valid.

        :raises ValueError: when the store holds a parameter of another shape.
        """
        for name, child in self._parts():
            _store.adopt(name, child)

    def sync_param_store(self) -> None:
        """Make Pyro's param store hold this module's parameter tensors (the reverse of
        :meth:`load_param_store`).

        Pyro keys parameters by name, so a store left over from another model of the same
        shape would shadow this one's. :func:`pyrovae.fit` and checkpoint loading call this.
        """
        with poutine.block():
            for name, child in self._parts():
                _store.push(name, child)

    @contextlib.contextmanager
    def param_registration(self, enabled: bool):
        """Within this block, :meth:`model` and :meth:`guide` do (or skip) ``pyro.module``.

        Registration puts plain ``nn.Module`` parameters in Pyro's param store on every call,
        which ``SVI`` with a ``pyro.optim`` optimiser needs. A loop that optimises
        ``vae.parameters()`` with a ``torch.optim`` optimiser (``fit``'s fast path) does not,
        and skips its per-step cost. Sites, scaling and values are unchanged.
        """
        previous = self.__dict__.get("_register_params", True)
        self.__dict__["_register_params"] = bool(enabled)
        try:
            yield self
        finally:
            self.__dict__["_register_params"] = previous

    # -- checks ---------------------------------------------------------------------------
    def check_data(self, x: torch.Tensor, support: bool = True) -> torch.Tensor:
        """:func:`~pyrovae.models.validation.check_data` for this VAE: check ``x``, return the
        tensor to use (cast to the model's dtype where needed).

        :param x: a batch ``(batch, *x_shape)``.
        :param support: also check values (costs a pass over ``x``; the shape is always checked).
        """
        return _validation.check_data(self, x, support=support)

    def _plate(self, batch: int, num_data: int | None, device: torch.device | None) -> pyro.plate:
        # no Python comparison of traced sizes under torch.jit (it would warn and be frozen in)
        if num_data is not None and not torch.jit.is_tracing() and num_data < batch:
            raise ValueError(f"num_data={num_data} is smaller than the batch size {batch}")
        # an explicit subsample avoids a randperm(num_data) every step
        idx = torch.arange(batch, device=device)
        return pyro.plate("data", num_data if num_data is not None else batch, subsample=idx, dim=-1)

    # -- Pyro model and guide ---------------------------------------------------------------
    def model(self, x: torch.Tensor | None = None, num_data: int | None = None, *,
              batch_size: int | None = None, observe: bool = True) -> torch.Tensor:
        """p(z) p(x|z): observes ``x`` ``(batch, *x_shape)``, or draws it.

        With ``x=None, batch_size=n`` (the generative mode), or with ``observe=False``, the
        ``"x"`` site is sampled rather than observed. So::

            Predictive(vae.model, num_samples=S)(x=None, batch_size=n)["x"]   # prior predictive
            Predictive(vae.model, guide=vae.guide, num_samples=S)(x, observe=False)["x"]  # posterior predictive

        each ``(S, n, *x_shape)``. (``Predictive`` passes the same arguments to the guide, which
        ignores ``observe``; with ``observe=True`` it would return the observed data.)

        :param x: the data, or ``None`` for the generative mode.
        :param num_data: the full data-set size, to scale a minibatch.
        :param batch_size: how many data points to draw when ``x`` is ``None``.
        :param observe: observe ``x`` (training, scoring) or draw it (prediction).
        :returns: z ``(batch, z_dim)``.
        """
        x, n = _validation.model_inputs(self, x, batch_size, "model")
        if self.__dict__.get("_register_params", True):
            for name in ("decoder", "prior", "likelihood"):
                _store.register(name, getattr(self, name))
        device = x.device if x is not None else _validation.model_device(self)
        with self._draw_globals(), self._plate(n, num_data, device):
            with self._z_weight():
                z = pyro.sample("z", self._prior()())  # (..., batch, z_dim)
            out = self._decoder_out(z)  # (..., batch, *x_shape[, K])
            pyro.sample("x", self.likelihood(out, self.event_dim), obs=x if observe else None)
        return z

    def guide(self, x: torch.Tensor | None = None, num_data: int | None = None, *,
              batch_size: int | None = None, observe: bool = True) -> torch.Tensor:
        """q(z|x), a diagonal Normal from the encoder (and the global guide, if the model has
        global sites); returns z. ``batch_size`` and ``observe`` are accepted so that
        ``Predictive`` can pass the model's arguments; the guide does not use ``observe``."""
        x, _ = _validation.model_inputs(self, x, batch_size, "guide")  # the guide runs first: catch bad data here
        if self.global_guide is not None:
            self.global_guide(x, num_data, batch_size=batch_size, observe=observe)
        if self.__dict__.get("_register_params", True):
            _store.register("encoder", self.encoder)
            _store.register("guide_flow", self.guide_flow)
        with self._plate(x.shape[0], num_data, x.device), self._z_weight():
            return pyro.sample("z", self.encode(x))

    # -- the networks, checked on their first batch -------------------------------------------
    def _prior(self) -> nn.Module:
        if self.prior is None:
            raise ValueError("this VAE's N(0, I) prior is made once z_dim is known, from the encoder's first output; "
                             "run the guide on data first, or pass z_dim=... or prior=... to VAE")
        return self.prior

    def _encoder_params(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if "encoder" in self._checked:
            return self.encoder(x)  # each (batch, z_dim)
        encoder = self.encoder
        out = _protocol.call_checked("encoder", encoder, x, f"(batch, *x_shape) = {tuple(x.shape)}")
        loc, scale = _protocol.check_encoder_output(
            encoder, x, out, self.z_dim, z_from=self.__dict__.get("_z_from", ""), check_scale=self._uses_scale
        )
        if self.z_dim is None:
            self.z_dim = loc.shape[1]
            self.__dict__["_z_from"] = " (the encoder's first output)"
        if self.prior is None:
            self.prior = StandardNormal(self.z_dim).to(loc)
        if not torch.jit.is_tracing():
            self._checked.add("encoder")
        return loc, scale

    def _decoder_out(self, z: torch.Tensor) -> torch.Tensor:
        # decoders follow the (batch, z_dim) protocol; fold any leading particle dims into
        # the batch and unfold them afterwards
        flat = z if z.dim() == 2 else z.reshape(-1, z.shape[-1])  # (prod(lead), z_dim)
        if "decoder" in self._checked:
            out = self.decoder(flat)
        else:
            decoder = self.decoder
            out = _protocol.call_checked("decoder", decoder, flat, f"(batch, z_dim) = {tuple(flat.shape)}")
            x_shape = _protocol.check_decoder_output(decoder, flat, out, self.x_shape, self.likelihood)
            if self.x_shape is None:
                self.x_shape = x_shape  # a generative call before any data: the decoder says
            if not torch.jit.is_tracing():
                self._checked.add("decoder")
        return out if z.dim() == 2 else out.reshape(*z.shape[:-1], *out.shape[1:])

    def encode(self, x: torch.Tensor) -> dist.Distribution:
        """q(z|x) as a Normal (or the ``guide_flow``'s distribution) with ``batch_shape (batch,)``
        and ``event_shape (z_dim,)``."""
        if self.guide_flow is not None:
            if "encoder" not in self._checked:
                with poutine.block(), torch.no_grad():
                    self._encoder_params(x)  # the flow reads the encoder its own way: check it once apart
            return self.guide_flow.encode(self.encoder, x)
        loc, scale = self._encoder_params(x)  # each (batch, z_dim)
        return ReparamNormal(loc, scale).to_event(1)  # scores its own draw from the kept noise

    def decode(self, z: torch.Tensor) -> dist.Distribution:
        """p(x|z) with event shape ``x_shape``; ``z`` may have extra leading dims."""
        return self.likelihood(self._decoder_out(z), self.event_dim)  # x_shape may be read off the decoder first

    def decode_mean(self, z: torch.Tensor) -> torch.Tensor:
        """The mean of p(x|z) (for Categorical, the most likely class)."""
        return self.likelihood.mean(self._decoder_out(z), self.event_dim)

    @torch.no_grad()
    def sample(self, n: int, mean: bool = True) -> torch.Tensor:
        """Draw ``n`` z from the prior and decode them.

        :param n: number of samples.
        :param mean: return the mean of p(x|z) (a clean picture) rather than a draw.
        :returns: ``(n, *x_shape)``.
        """
        z = self._prior()().sample((n,))  # (n, z_dim)
        return self.decode_mean(z) if mean else self.decode(z).sample()

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, sample_z: bool = False) -> torch.Tensor:
        """Decode the posterior mean (or a posterior draw) of each x.

        :param x: ``(batch, *x_shape)``.
        :param sample_z: use z ~ q(z|x) rather than its mean.
        :returns: the mean of p(x|z), ``(batch, *x_shape)``.
        """
        x = _validation.check_data(self, x, support=False)
        q = self.encode(x)
        z = q.sample() if sample_z else q.mean  # (batch, z_dim)
        return self.decode_mean(z)
