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

References:

1. Kingma, D. P. and Welling, M. (2014). Auto-Encoding Variational Bayes. ICLR.
2. Rezende, D. J., Mohamed, S. and Wierstra, D. (2014). Stochastic Backpropagation and
   Approximate Inference in Deep Generative Models. ICML.
3. Higgins, I. et al. (2017). beta-VAE: Learning Basic Visual Concepts with a Constrained
   Variational Framework. ICLR.
"""

from __future__ import annotations

import contextlib
from typing import Any, Sequence

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.infer.util import is_validation_enabled
from pyro.nn import PyroModule
from torch import nn

from .. import likelihoods as _likelihoods
from .._util.checks import nonnegative, positive_int
from ..priors import as_prior


def _register(name: str, module: nn.Module) -> None:
    # PyroModules put their own parameters in the param store; plain nn.Modules go through
    # pyro.module so that SVI and pyro.optim see them.
    if not isinstance(module, PyroModule) and any(True for _ in module.parameters()):
        pyro.module(name, module)


class VAE(PyroModule):
    """A variational autoencoder whose :meth:`model` and :meth:`guide` train with any Pyro ELBO.

    Example::

        vae = VAE(encoder=nets.MLPEncoder((1, 28, 28), (400,), 50),
                  decoder=nets.MLPDecoder(50, (400,), (1, 28, 28)),
                  prior=priors.StandardNormal(50), likelihood=likelihoods.Bernoulli())
        svi = SVI(vae.model, vae.guide, Adam({"lr": 1e-3}), Trace_ELBO())
        svi.step(x_batch, num_data=60000)

    :param encoder: maps x ``(batch, *x_shape)`` to ``(loc, scale)``, each ``(batch, z_dim)``.
    :param decoder: maps z ``(batch, z_dim)`` to the likelihood's parameters.
    :param prior: a prior module, a Pyro distribution with event shape ``(z_dim,)``, or ``None``
        for a standard normal.
    :param likelihood: a :class:`~pyrovae.likelihoods.Likelihood` (default Bernoulli).
    :param beta: weight of the ``"z"`` site in model and guide; 1 is the true ELBO.
    :param x_shape: shape of one data point; taken from ``encoder.x_shape`` when omitted.
    :param z_dim: latent size; taken from ``encoder.z_dim`` when omitted.
    :param config: a JSON-able description used to rebuild the model from a checkpoint.
    :param guide_flow: optional module with ``encode(encoder, x) -> distribution`` that
        replaces the diagonal Normal guide, e.g. :class:`pyrovae.flows.IAFGuide`.
    """

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
    ) -> None:
        super().__init__()
        z_dim = z_dim if z_dim is not None else getattr(encoder, "z_dim", None)
        if z_dim is not None:
            positive_int("z_dim", z_dim)
        dec_z = getattr(decoder, "z_dim", None)
        if z_dim is not None and dec_z is not None and dec_z != z_dim:
            raise ValueError(f"the encoder produces z_dim={z_dim} but the decoder expects z_dim={dec_z}")
        x_shape = x_shape if x_shape is not None else getattr(encoder, "x_shape", None)
        self.x_shape = tuple(x_shape) if x_shape is not None else None
        self.z_dim = z_dim
        self.encoder = encoder
        self.decoder = decoder
        self.prior = as_prior(prior, z_dim)
        if self.z_dim is None:
            self.z_dim = getattr(self.prior, "z_dim", None)
        self.likelihood = likelihood if likelihood is not None else _likelihoods.Bernoulli()
        self.beta = beta
        self.config = dict(config or {})
        self.guide_flow = guide_flow

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
            raise ValueError("this VAE does not know x_shape: pass x_shape=... to VAE")
        return len(self.x_shape)

    def _z_weight(self) -> contextlib.AbstractContextManager:
        # beta scales the "z" site in both model and guide; poutine.scale needs a positive
        # factor, so beta = 0 masks the site instead (its log-densities count as zero)
        if self._beta == 1.0:
            return contextlib.nullcontext()
        if self._beta == 0.0:
            return poutine.mask(mask=False)
        return poutine.scale(scale=self._beta)

    def register_params(self) -> None:
        """Put the nets' parameters in Pyro's param store now, as :meth:`model` and
        :meth:`guide` do on every call (the store holds the same tensors, so it stays current
        while a torch optimiser updates them in place)."""
        for name, child in self._parts():
            _register(name, child)

    def _parts(self):
        # (name, module) for every part whose parameters live in Pyro's param store
        for name in ("encoder", "decoder", "prior", "likelihood", "guide_flow"):
            child = getattr(self, name, None)
            if child is not None:
                yield name, child

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
    def check_data(self, x: torch.Tensor, support: bool = True) -> None:
        """Raise ``ValueError`` if ``x`` has the wrong shape, non-finite values, or values
        outside the likelihood's support.

        :param x: a batch ``(batch, *x_shape)``.
        :param support: also check values (costs a device sync; shape is always checked).
        """
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if self.x_shape is not None and tuple(x.shape[1:]) != self.x_shape:
            raise ValueError(
                f"x has shape {tuple(x.shape)} but this VAE expects (batch, *x_shape) = (batch, {', '.join(map(str, self.x_shape))})"
            )
        if x.dim() < 2:
            raise ValueError(f"x must have a batch dimension: got shape {tuple(x.shape)}")
        if support:
            check = getattr(self.likelihood, "check", None)
            if check is not None:
                check(x)

    def _plate(self, x: torch.Tensor, num_data: int | None) -> pyro.plate:
        batch = x.shape[0]
        if num_data is not None and num_data < batch:
            raise ValueError(f"num_data={num_data} is smaller than the batch size {batch}")
        # an explicit subsample avoids a randperm(num_data) every step
        idx = torch.arange(batch, device=x.device)
        return pyro.plate("data", num_data if num_data is not None else batch, subsample=idx, dim=-1)

    # -- Pyro model and guide ---------------------------------------------------------------
    def model(self, x: torch.Tensor, num_data: int | None = None) -> torch.Tensor:
        """p(z) p(x|z), observing ``x`` ``(batch, *x_shape)``; returns z."""
        self.check_data(x, support=is_validation_enabled())
        if self.__dict__.get("_register_params", True):
            _register("decoder", self.decoder)
            _register("prior", self.prior)
            _register("likelihood", self.likelihood)
        with self._plate(x, num_data):
            with self._z_weight():
                z = pyro.sample("z", self.prior())  # (..., batch, z_dim)
            out = self._decoder_out(z)  # (..., batch, *x_shape[, K])
            pyro.sample("x", self.likelihood(out, self.event_dim), obs=x)
        return z

    def guide(self, x: torch.Tensor, num_data: int | None = None) -> torch.Tensor:
        """q(z|x), a diagonal Normal from the encoder; returns z."""
        self.check_data(x, support=is_validation_enabled())  # the guide runs first: catch bad data here
        if self.__dict__.get("_register_params", True):
            _register("encoder", self.encoder)
            if self.guide_flow is not None:
                _register("guide_flow", self.guide_flow)
        with self._plate(x, num_data):
            with self._z_weight():
                return pyro.sample("z", self.encode(x))

    # -- deterministic helpers ------------------------------------------------------------
    def _decoder_out(self, z: torch.Tensor) -> torch.Tensor:
        # decoders follow the (batch, z_dim) protocol; fold any leading particle dims into
        # the batch and unfold them afterwards
        if z.dim() == 2:
            return self.decoder(z)
        lead = z.shape[:-1]
        out = self.decoder(z.reshape(-1, z.shape[-1]))  # (prod(lead), *out)
        return out.reshape(*lead, *out.shape[1:])

    def encode(self, x: torch.Tensor) -> dist.Distribution:
        """q(z|x) as a Normal (or the ``guide_flow``'s distribution) with ``batch_shape (batch,)``
        and ``event_shape (z_dim,)``."""
        if self.guide_flow is not None:
            return self.guide_flow.encode(self.encoder, x)
        loc, scale = self.encoder(x)  # each (batch, z_dim)
        return dist.Normal(loc, scale).to_event(1)

    def decode(self, z: torch.Tensor) -> dist.Distribution:
        """p(x|z) with event shape ``x_shape``; ``z`` may have extra leading dims."""
        return self.likelihood(self._decoder_out(z), self.event_dim)

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
        z = self.prior().sample((n,))  # (n, z_dim)
        return self.decode_mean(z) if mean else self.decode(z).sample()

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, sample_z: bool = False) -> torch.Tensor:
        """Decode the posterior mean (or a posterior draw) of each x.

        :param x: ``(batch, *x_shape)``.
        :param sample_z: use z ~ q(z|x) rather than its mean.
        :returns: the mean of p(x|z), ``(batch, *x_shape)``.
        """
        q = self.encode(x)
        z = q.sample() if sample_z else q.mean  # (batch, z_dim)
        return self.decode_mean(z)

    def sync_param_store(self) -> None:
        """Make Pyro's param store hold this module's parameter tensors.

        Pyro keys parameters by name, so a store left over from another model of the same
        shape would shadow this one's. :func:`pyrovae.fit` and checkpoint loading call this.
        """
        store = pyro.get_param_store()
        with poutine.block(), poutine.trace(param_only=True):
            for name, child in self._parts():
                # the names Pyro gives them: "prior.loc" for PyroModules, "decoder$$$net.0.weight" else
                if isinstance(child, PyroModule):
                    prefix = f"{child._pyro_name}." if child._pyro_name else ""
                else:
                    prefix = f"{name}$$$"
                for pname, p in child.named_parameters():
                    full = prefix + pname
                    if full in store and store._params[full] is not p:
                        store[full] = p
