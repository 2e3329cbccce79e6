"""Deprecated path: use :mod:`pyrovae.models.config` (``from pyrovae.models import VAEConfig, build_vae``)."""

from .models.config import NETS, PRIORS, VAEConfig, build_vae  # noqa: F401
