"""KL-direction studies: mode-seeking reverse KL against mass-covering forward KL.

- :mod:`~pyrovae.kl.divergence`: KL(p‖q) and KL(q‖p), exact where a closed form exists;
- :mod:`~pyrovae.kl.fit`: one diagonal Gaussian fitted to a target in either direction;
- :mod:`~pyrovae.kl.toy`: the textbook bimodal picture, computed;
- :mod:`~pyrovae.kl.guides`: the same VAE trained with Trace_ELBO, IWAE and RWS, its guides
  measured both ways.
"""

from .divergence import KLEstimate, KLReport, asymmetry, kl, kl_both
from .fit import fit_gaussian
from .guides import Comparison, compare_guides
from .toy import ToyResult, bimodal_target, run_toy

__all__ = [
    "Comparison",
    "KLEstimate",
    "KLReport",
    "ToyResult",
    "asymmetry",
    "bimodal_target",
    "compare_guides",
    "fit_gaussian",
    "kl",
    "kl_both",
    "run_toy",
]
