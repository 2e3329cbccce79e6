"""Models: Pyro model/guide pairs that wrap networks, and the configs that build them.

- :class:`VAE`: p(z) p(x|z) and the amortised guide q(z|x);
- :class:`Autoencoder`: the deterministic autoencoder written the same way;
- :class:`ConditionalVAE`: a label y enters both the model and the guide;
- :class:`VAEConfig` and :func:`build_vae`: a JSON-able description, as checkpoints store it.
"""

from .autoencoder import Autoencoder
from .conditional import ConditionalVAE
from .config import NETS, PRIORS, VAEConfig, build_vae
from .vae import VAE

__all__ = ["NETS", "PRIORS", "VAE", "Autoencoder", "ConditionalVAE", "VAEConfig", "build_vae"]
