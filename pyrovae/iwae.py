"""Deprecated path: use :mod:`pyrovae.infer.iwae_elbo` (``from pyrovae.infer import IWAE_ELBO``)."""

from .infer.iwae_elbo import IWAE_ELBO, iwae_bound  # noqa: F401
