"""Named recipes: a model configuration together with the way to train it, in one place.

A :class:`Recipe` is a :class:`~pyrovae.models.VAEConfig` (the network, prior and
likelihood) plus the training settings, named like :func:`pyrovae.fit`'s keywords so that
they map onto it one to one. :data:`RECIPES` holds them by name: ``pyrovae train --recipe
NAME`` starts from one (explicit flags override its fields), and
``benchmarks/likelihood.py --recipe NAME`` trains and scores one.

``default`` is what ``pyrovae train`` runs with no flags; ``reference`` is the textbook
784-400-50 VAE. The rest are the likelihood benchmark's models: one stochastic layer, z = 50,
Bernoulli likelihood, batch 100, Adam 1e-3. Those named ``-large`` use a wider 784-512-512
GELU network, the others the 784-200-200 tanh network of Burda et al. [1]. Their ``epochs``
is a short default: the README's numbers come from the longer runs each description names
(``--epochs``/``--final-lr`` on the command line).

References:

1. Burda, Y., Grosse, R. and Salakhutdinov, R. (2016). Importance Weighted Autoencoders. ICLR.
2. Kingma, D. P. et al. (2016). Improved Variational Inference with Inverse Autoregressive
   Flow. NeurIPS.
3. Tomczak, J. M. and Welling, M. (2018). VAE with a VampPrior. AISTATS.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import torch

from .config import VAEConfig
from .vae import VAE

#: The training fields of a :class:`Recipe`, in the order :func:`pyrovae.fit` lists them.
TRAINING_FIELDS = ("epochs", "batch_size", "binarize", "loss", "num_particles", "lr", "final_lr", "seed",
                   "warmup_epochs")


@dataclass
class Recipe(VAEConfig):
    """A model configuration plus how to train it.

    The model fields are :class:`VAEConfig`'s (``build_vae(recipe)`` builds the model); the
    training fields are :func:`pyrovae.fit`'s keywords, except ``final_lr``, which stands
    for ``lr_schedule=exponential_lr(lr, final_lr, epochs)``. Treat the entries of
    :data:`RECIPES` as read-only: :meth:`replace` returns a changed copy.
    """

    epochs: int = 10  # passes over the training set
    batch_size: int = 100  # examples per SVI step
    binarize: str | None = "dynamic"  # "dynamic" (fresh draw per epoch), "static" (one draw) or None (grey levels)
    loss: str = "trace"  # objective by name (pyrovae.infer.LOSSES): trace, meanfield, jit or iwae
    num_particles: int | None = None  # samples of z per example (None: 1, and 5 for iwae)
    lr: float = 1e-3  # Adam learning rate
    final_lr: float | None = None  # decay lr geometrically to this at the last epoch (None: constant)
    seed: int = 0  # seeds the initial weights and every epoch, so a run repeats exactly
    warmup_epochs: float = 0.0  # epochs of linear KL warm-up from beta = 0
    description: str = ""  # one line for `pyrovae recipes`

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.num_particles is not None and self.num_particles < 1:
            raise ValueError(f"num_particles must be >= 1, got {self.num_particles!r}")
        if not 0 <= self.lr < float("inf"):  # 0 is allowed: it scores loaded weights unchanged
            raise ValueError(f"lr must be a number >= 0, got {self.lr!r}")
        if self.final_lr is not None and not 0 < self.final_lr < float("inf"):
            raise ValueError(f"final_lr must be a positive number, got {self.final_lr!r}")
        if self.warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be >= 0, got {self.warmup_epochs!r}")

    def replace(self, **changes: Any) -> Recipe:
        """A copy with some fields changed (checked like a new recipe).

        :raises ValueError: for a field a recipe does not have, or a bad value.
        """
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"a recipe has no field(s) {unknown}; expected a subset of {sorted(known)}")
        return dataclasses.replace(self, **changes)

    def model_config(self) -> VAEConfig:
        """The model part, as the checkpoint stores it."""
        return VAEConfig.from_dict(self.model_dict())

    def training(self) -> dict[str, Any]:
        """The training fields by name (``fit``'s keywords and ``final_lr``)."""
        return {name: getattr(self, name) for name in TRAINING_FIELDS}

    def to_dict(self) -> dict[str, Any]:
        return {**self.model_dict(), **self.training(), "description": self.description}


def init_from_data(vae: VAE, x_train: torch.Tensor) -> None:
    """Data-dependent initialisation a recipe needs before training (none for most priors).

    A VampPrior starts its pseudo-inputs at random training images (grey levels clamped to
    [0.05, 0.95]): from the constructor's identical faint images every component is the same
    and the posterior collapses. Draws from torch's global RNG, so seed it first.

    :param vae: a freshly built model.
    :param x_train: ``(N, *x_shape)`` training data in [0, 1].
    """
    prior = vae.prior
    if not hasattr(prior, "raw_pseudo_inputs"):
        return
    k, n = prior.num_components, len(x_train)
    idx = torch.randperm(n)[:k] if k <= n else torch.randint(n, (k,))  # (K,) training images
    with torch.no_grad():
        prior.raw_pseudo_inputs.copy_(torch.logit(x_train[idx].clamp(0.05, 0.95)))


def _table() -> dict[str, Recipe]:
    burda = {"z_dim": 50, "hidden": (200, 200), "activation": "tanh"}  # Burda et al.'s 1-layer network
    large = {"z_dim": 50, "hidden": (512, 512), "activation": "gelu"}  # wider, learns more per epoch
    flows = {"guide_flows": 2, "prior": "flow", "prior_flows": 2}  # IAF guide + affine flow prior
    vamp = {"prior": "vamp", "num_components": 500}  # 500 pseudo-inputs
    return {
        "default": Recipe(
            z_dim=32,
            hidden=(512, 512),
            activation="gelu",
            prior="mog",
            num_components=10,
            batch_size=64,
            loss="meanfield",
            description="what `pyrovae train` runs: learned 10-component mixture prior, analytic KL; "
            "test ELBO -97.95 after 10 epochs",
        ),
        "reference": Recipe(
            z_dim=50,
            hidden=(400,),
            activation="softplus",
            prior="standard_normal",
            batch_size=128,
            loss="trace",
            description="the textbook VAE of Kingma & Welling: test ELBO -102.85 after 10 epochs",
        ),
        "vae-burda": Recipe(
            **burda,
            loss="meanfield",
            num_particles=1,
            description="Burda's 200-200 tanh VAE, N(0, I), analytic-KL ELBO",
        ),
        "vampprior": Recipe(
            **burda,
            **vamp,
            num_particles=1,
            description="VampPrior on Burda's tanh network (stays at the pixel marginals: use vamp-large)",
        ),
        "iaf": Recipe(**burda, guide_flows=2, num_particles=1, description="Normal guide + 2 IAF steps, ELBO"),
        "iwae": Recipe(**burda, loss="iwae", num_particles=50, description="IWAE bound, K = 50"),
        "best": Recipe(
            **burda, **flows, loss="iwae", num_particles=5, description="IAF guide + flow prior, IWAE K = 5"
        ),
        "vae-large": Recipe(**large, num_particles=1,
                            description="plain VAE, wide GELU net: NLL 87.83 after --epochs 380 --final-lr 1e-4"),
        "vamp-large": Recipe(**large, **vamp, num_particles=1,
                             description="VampPrior-500, wide GELU net: NLL 85.82 after --epochs 55 --final-lr 1e-4"),
        "iwae-large": Recipe(**large, loss="iwae", num_particles=5,
                             description="IWAE K = 5, wide GELU net: NLL 86.14 after --epochs 60 --final-lr 1e-4"),
        "best-large": Recipe(**large, **flows, num_particles=1,
                             description="IAF guide + flow prior, wide GELU net: NLL 84.13 after --epochs 330 "
                                         "--final-lr 1e-4"),
        "best-large-iwae": Recipe(**large, **flows, loss="iwae", num_particles=5,
                                  description="best-large fine-tuned with IWAE K = 5 (--init-from, --lr 1e-4): "
                                              "NLL 83.97"),
    }


#: Every named recipe (read-only; use :meth:`Recipe.replace` for a variant).
RECIPES: Mapping[str, Recipe] = MappingProxyType(_table())


def get_recipe(name: str, **changes: Any) -> Recipe:
    """The recipe ``name``, with ``changes`` applied (a copy).

    :raises ValueError: for an unknown name or field.
    """
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; expected one of {', '.join(RECIPES)}")
    return RECIPES[name].replace(**changes)
