"""Distributions pyrovae adds to Pyro's."""

from .bernoulli import BernoulliLogits, bernoulli_log_prob
from .mixture import DiagonalNormalMixture, diagonal_normal_mixture
from .normal import ReparamNormal, UnitNormal

__all__ = ["BernoulliLogits", "DiagonalNormalMixture", "ReparamNormal", "UnitNormal", "bernoulli_log_prob",
           "diagonal_normal_mixture"]
