"""Build a :class:`~pyrovae.VAE` from a small, JSON-able configuration.

Checkpoints store this configuration, so ``pyrovae evaluate CHECKPOINT`` can rebuild the
model without the code that made it. Every field has a comment, in the manner of nanoGPT's
``GPTConfig``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .. import flows, likelihoods, nets, priors
from .vae import VAE

PRIORS = ("standard_normal", "learned_gaussian", "mog", "vamp", "flow")
NETS = ("mlp", "conv")


@dataclass
class VAEConfig:
    """Everything needed to rebuild a VAE."""

    x_shape: tuple[int, ...] = (1, 28, 28)  # shape of one data point
    z_dim: int = 50  # latent dimension
    net: str = "mlp"  # "mlp" or "conv"
    hidden: tuple[int, ...] = (400,)  # MLP hidden widths (encoder; the decoder mirrors them)
    activation: str = "softplus"  # MLP non-linearity
    prior: str = "standard_normal"  # one of PRIORS
    num_components: int = 10  # components of the "mog" prior / pseudo-inputs of "vamp"
    likelihood: str = "bernoulli"  # one of likelihoods.REGISTRY
    likelihood_scale: float | None = None  # Gaussian/Laplace scale; None = learned
    num_classes: int | None = None  # Categorical only
    beta: float = 1.0  # weight of the KL term; 1 = true ELBO
    guide_flows: int = 0  # IAF steps on top of the Normal guide q(z|x); 0 = plain diagonal Normal
    prior_flows: int = 2  # autoregressive steps of the "flow" prior
    flow_kind: str = "affine"  # step of the "flow" prior: "affine" or "spline"
    flow_hidden: tuple[int, ...] | None = None  # MADE widths of every flow step (None: (2 * z_dim,))
    extra: dict[str, Any] = field(default_factory=dict)  # room for user fields

    def __post_init__(self) -> None:
        self.x_shape = tuple(self.x_shape)
        self.hidden = tuple(self.hidden)
        self.flow_hidden = tuple(self.flow_hidden) if self.flow_hidden is not None else None
        if not isinstance(self.guide_flows, int) or self.guide_flows < 0:
            raise ValueError(f"guide_flows must be an integer >= 0, got {self.guide_flows!r}")
        if self.flow_kind not in flows.FLOW_KINDS:
            raise ValueError(f"unknown flow_kind {self.flow_kind!r}; expected one of {list(flows.FLOW_KINDS)}")
        if not isinstance(self.z_dim, int) or self.z_dim < 1:
            raise ValueError(f"z_dim must be a positive integer, got {self.z_dim!r}")
        for name in ("num_components", "prior_flows"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if not self.hidden or any(not isinstance(w, int) or w < 1 for w in self.hidden):
            raise ValueError(f"hidden must be one or more positive integer widths, got {self.hidden!r}")
        if not self.beta >= 0:
            raise ValueError(f"beta must be >= 0, got {self.beta!r}")
        if self.prior not in PRIORS:
            raise ValueError(f"unknown prior {self.prior!r}; expected one of {list(PRIORS)}")
        if self.net not in NETS:
            raise ValueError(f"unknown net {self.net!r}; expected one of {list(NETS)}")
        if self.likelihood not in likelihoods.REGISTRY:
            raise ValueError(f"unknown likelihood {self.likelihood!r}; expected one of {sorted(likelihoods.REGISTRY)}")

    def model_dict(self) -> dict[str, Any]:
        """The model fields only, JSON-able (a :class:`~pyrovae.models.recipes.Recipe` adds training fields)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(VAEConfig)}
        d["x_shape"], d["hidden"] = list(self.x_shape), list(self.hidden)
        d["flow_hidden"] = list(self.flow_hidden) if self.flow_hidden is not None else None
        d["extra"] = dict(self.extra)
        return d

    def to_dict(self) -> dict[str, Any]:
        return self.model_dict()

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VAEConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown VAE config fields {sorted(unknown)}; expected a subset of {sorted(known)}")
        return cls(**d)


def build_vae(config: VAEConfig | dict[str, Any] | None = None, **overrides: Any) -> VAE:
    """Build a VAE from a config (or keyword overrides of the default config).

    :param config: a :class:`VAEConfig` (a recipe's model part is used), or its dict form.
    :param overrides: fields to change, e.g. ``z_dim=2, prior="vamp"``.
    """
    if config is None:
        config = VAEConfig()
    elif isinstance(config, dict):
        config = VAEConfig.from_dict(config)
    if overrides or type(config) is not VAEConfig:
        config = VAEConfig.from_dict({**config.model_dict(), **overrides})
    c = config
    k = c.num_classes if c.likelihood == "categorical" else None
    if c.likelihood == "categorical" and not k:
        raise ValueError("the categorical likelihood needs num_classes")
    if c.net == "mlp":
        encoder = nets.MLPEncoder(c.x_shape, c.hidden, c.z_dim, activation=c.activation)
        decoder = nets.MLPDecoder(c.z_dim, tuple(reversed(c.hidden)), c.x_shape, num_classes=k, activation=c.activation)
    else:
        encoder = nets.ConvEncoder(c.x_shape, c.z_dim)
        decoder = nets.ConvDecoder(c.z_dim, c.x_shape, num_classes=k)
    if c.prior == "standard_normal":
        prior = priors.StandardNormal(c.z_dim)
    elif c.prior == "learned_gaussian":
        prior = priors.LearnedGaussian(c.z_dim)
    elif c.prior == "mog":
        prior = priors.MixtureOfGaussians(c.z_dim, c.num_components)
    elif c.prior == "flow":
        prior = flows.FlowPrior(c.z_dim, c.prior_flows, c.flow_hidden, kind=c.flow_kind)
    else:
        prior = priors.VampPrior(encoder, c.num_components, c.x_shape)
    if c.likelihood in ("gaussian", "laplace"):
        likelihood = likelihoods.by_name(c.likelihood, scale=c.likelihood_scale)
    elif c.likelihood == "categorical":
        likelihood = likelihoods.by_name(c.likelihood, num_classes=k)
    else:
        likelihood = likelihoods.by_name(c.likelihood)
    guide_flow = None
    if c.guide_flows:
        guide_flow = flows.IAFGuide(c.z_dim, flows.context_dim_of(encoder), c.guide_flows, c.flow_hidden)
    return VAE(encoder, decoder, prior, likelihood, beta=c.beta, config=c.to_dict(), guide_flow=guide_flow)
