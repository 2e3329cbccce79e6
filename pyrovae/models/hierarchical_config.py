"""Build a :class:`~pyrovae.models.hierarchical.HierarchicalVAE` from a small, JSON-able config.

The default is Burda et al. (2016)'s two-layer network on binarised MNIST: the guide
784-200-200-z1(100) and z1-100-100-z2(50), mirrored by the model (z2 -> 100-100 -> z1,
z1 -> 200-200 -> x), tanh units. The model keeps the dict form as ``hvae.config``, which a
checkpoint stores; ``model: "hierarchical"`` tells a loader to rebuild it with
:func:`build_hierarchical_vae` rather than :func:`pyrovae.models.build_vae`.

References:

1. Burda, Y., Grosse, R. and Salakhutdinov, R. (2016). Importance Weighted Autoencoders. ICLR.
2. Sønderby, C. K. et al. (2016). Ladder Variational Autoencoders. NeurIPS.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .. import flows, likelihoods, nets, priors
from .._util.checks import positive_int
from .hierarchical import HierarchicalVAE
from .latent_layers import HierarchicalPrior

#: top-layer priors a config can name
TOP_PRIORS = ("standard_normal", "learned_gaussian", "mog", "flow")
#: the two guides
GUIDES = ("bottom_up", "top_down")


@dataclass
class HierarchicalConfig:
    """Everything needed to rebuild a hierarchical VAE."""

    model: str = "hierarchical"  # the kind of model, for checkpoint loaders
    x_shape: tuple[int, ...] = (1, 28, 28)  # shape of one data point
    z_dims: tuple[int, ...] = (100, 50)  # latent layer sizes, z1 (next to x) first
    hidden: tuple[tuple[int, ...], ...] = ((200, 200), (100, 100))  # guide MLP widths per layer; the model mirrors them
    activation: str = "tanh"  # hidden non-linearity (Burda et al.: tanh)
    guide: str = "bottom_up"  # "bottom_up" (Burda) or "top_down" (Ladder VAE)
    combine: str = "precision"  # top-down guide: "precision" (LVAE) or "residual" (NVAE)
    prior: str = "standard_normal"  # prior on the top layer, one of TOP_PRIORS
    num_components: int = 10  # components of the "mog" top prior
    prior_flows: int = 2  # autoregressive steps of the "flow" top prior
    flow_kind: str = "affine"  # step of the "flow" top prior: "affine" or "spline"
    flow_hidden: tuple[int, ...] | None = None  # MADE widths of every flow step (None: (2 * z_dims[-1],))
    likelihood: str = "bernoulli"  # bernoulli, continuous_bernoulli, gaussian or laplace
    likelihood_scale: float | None = None  # Gaussian/Laplace scale; None = learned
    beta: float = 1.0  # weight of every layer's KL term; 1 = true ELBO
    free_bits: float | tuple[float, ...] = 0.0  # KL floor per layer in nats (Kingma et al. 2016); 0 = off

    def __post_init__(self) -> None:
        self.x_shape, self.z_dims = tuple(self.x_shape), tuple(self.z_dims)
        self.hidden = tuple(tuple(h) for h in self.hidden)
        if not isinstance(self.free_bits, (int, float)):
            self.free_bits = tuple(self.free_bits)
        if self.model != "hierarchical":
            raise ValueError(f"a HierarchicalConfig has model='hierarchical', got {self.model!r}")
        if self.guide not in GUIDES:
            raise ValueError(f"unknown guide {self.guide!r}; expected one of {list(GUIDES)}")
        if self.prior not in TOP_PRIORS:
            raise ValueError(f"unknown top prior {self.prior!r}; expected one of {list(TOP_PRIORS)}")
        positive_int("prior_flows", self.prior_flows)
        if self.flow_kind not in flows.FLOW_KINDS:
            raise ValueError(f"unknown flow_kind {self.flow_kind!r}; expected one of {list(flows.FLOW_KINDS)}")
        self.flow_hidden = tuple(self.flow_hidden) if self.flow_hidden is not None else None
        if self.likelihood not in likelihoods.REGISTRY or self.likelihood == "categorical":
            raise ValueError(f"unknown likelihood {self.likelihood!r}; expected one of "
                             f"{sorted(set(likelihoods.REGISTRY) - {'categorical'})}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["x_shape"], d["z_dims"], d["hidden"] = list(self.x_shape), list(self.z_dims), [list(h) for h in self.hidden]
        d["free_bits"] = self.free_bits if isinstance(self.free_bits, (int, float)) else list(self.free_bits)
        d["flow_hidden"] = list(self.flow_hidden) if self.flow_hidden is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HierarchicalConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown hierarchical config fields {sorted(unknown)}; "
                             f"expected a subset of {sorted(known)}")
        return cls(**d)


def build_hierarchical_vae(config: HierarchicalConfig | dict[str, Any] | None = None,
                           **overrides: Any) -> HierarchicalVAE:
    """Build a hierarchical VAE from a config (or keyword overrides of the default, Burda's network).

    :param config: a :class:`HierarchicalConfig` or its dict form.
    :param overrides: fields to change, e.g. ``guide="top_down", z_dims=(64, 32, 16)``.
    """
    if config is None:
        config = HierarchicalConfig()
    elif isinstance(config, dict):
        config = HierarchicalConfig.from_dict(config)
    if overrides:
        config = HierarchicalConfig.from_dict({**config.to_dict(), **overrides})
    c = config
    if c.guide == "bottom_up":
        encoder = nets.BottomUpEncoder(c.x_shape, c.hidden, c.z_dims, c.activation)
    else:
        encoder = nets.LadderEncoder(c.x_shape, c.hidden, c.z_dims, c.activation, combine=c.combine)
    # the model mirrors the guide: z_{l+1} -> reversed(hidden[l+1]) -> z_l, and z1 -> reversed(hidden[0]) -> x
    conditionals = [nets.MLPEncoder((c.z_dims[i + 1],), tuple(reversed(c.hidden[i + 1])), c.z_dims[i], c.activation)
                    for i in range(len(c.z_dims) - 1)]
    decoder = nets.MLPDecoder(c.z_dims[0], tuple(reversed(c.hidden[0])), c.x_shape, activation=c.activation)
    top = {"standard_normal": priors.StandardNormal, "learned_gaussian": priors.LearnedGaussian,
           "mog": lambda d: priors.MixtureOfGaussians(d, c.num_components),
           "flow": lambda d: flows.FlowPrior(d, c.prior_flows, c.flow_hidden, kind=c.flow_kind)}[c.prior](c.z_dims[-1])
    scale = {"scale": c.likelihood_scale} if c.likelihood in ("gaussian", "laplace") else {}
    return HierarchicalVAE(encoder, decoder, HierarchicalPrior(top, conditionals, c.z_dims),
                           likelihoods.by_name(c.likelihood, **scale), beta=c.beta, free_bits=c.free_bits,
                           config=c.to_dict())
