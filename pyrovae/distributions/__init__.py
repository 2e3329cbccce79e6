"""Distributions pyrovae adds to Pyro's."""

from .mixture import DiagonalNormalMixture, diagonal_normal_mixture

__all__ = ["DiagonalNormalMixture", "diagonal_normal_mixture"]
