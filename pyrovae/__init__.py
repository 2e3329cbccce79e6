"""pyrovae: variational autoencoders written the Pyro way.

The model p(z) p(x|z) and the guide q(z|x) are Pyro functions (:class:`VAE`), trainable with
any Pyro ELBO; priors, likelihoods and networks are swappable parts.
"""

from . import data, evaluate, inspect, kl, likelihoods, nets, priors
from .models import VAE
from .train import fit

__version__ = "0.1.0"

__all__ = ["VAE", "fit", "data", "evaluate", "inspect", "kl", "nets", "priors", "likelihoods", "__version__"]
