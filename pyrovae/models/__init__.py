"""Models: Pyro model/guide pairs that wrap networks, and the configs that build them.

- :class:`VAE`: p(z) p(x|z) and the amortised guide q(z|x);
- :class:`Autoencoder`: the deterministic autoencoder written the same way;
- :class:`ConditionalVAE`: a label y enters both the model and the guide;
- :class:`VAEConfig` and :func:`build_vae`: a JSON-able description, as checkpoints store it;
- :class:`HierarchicalVAE`: latent layers z1 ... zL with a bottom-up or top-down guide, and
  :class:`HierarchicalConfig` / :func:`build_hierarchical_vae`;
- :class:`SemiSupervisedVAE`: the M2 model, the label a latent enumerated when unobserved, with
  :func:`build_m2` and :func:`split_labelled` (training: :func:`pyrovae.train.fit_m2`);
"""

from .autoencoder import Autoencoder
from .conditional import ConditionalVAE
from .config import NETS, PRIORS, VAEConfig, build_vae
from .hierarchical import HierarchicalVAE
from .hierarchical_config import HierarchicalConfig, build_hierarchical_vae
from .latent_layers import HierarchicalPrior, LayerChain
from .semisupervised import SemiSupervisedVAE, build_m2, split_labelled
from .vae import VAE

__all__ = [
    "NETS",
    "PRIORS",
    "VAE",
    "Autoencoder",
    "ConditionalVAE",
    "HierarchicalConfig",
    "HierarchicalPrior",
    "HierarchicalVAE",
    "LayerChain",
    "SemiSupervisedVAE",
    "VAEConfig",
    "build_hierarchical_vae",
    "build_m2",
    "build_vae",
    "split_labelled",
]
