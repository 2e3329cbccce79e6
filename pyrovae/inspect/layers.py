r"""What each layer of a hierarchical VAE controls.

In :math:`p(z_L)\, p(z_{L-1}|z_L) \cdots p(z_1|z_2)\, p(x|z_1)` every layer below the top is
:math:`z_l = \mu_l(z_{l+1}) + \sigma_l(z_{l+1})\,\epsilon_l`. Decoding several draws of
:math:`z_L` with the noises :math:`\epsilon_{1:L-1}` held fixed, one set per column, shows what
the top layer decides (down a column) apart from what the layers below add (along a row); the
Ladder VAE and NVAE papers draw their samples this way.

References:

1. Sønderby, C. K. et al. (2016). Ladder Variational Autoencoders. NeurIPS.
2. Vahdat, A. and Kautz, J. (2020). NVAE: A Deep Hierarchical Variational Autoencoder. NeurIPS.
"""

from __future__ import annotations

import torch

from .._util.batching import model_device
from .._util.checks import positive_int
from ..models import HierarchicalVAE


@torch.no_grad()
def top_layer_grid(hvae: HierarchicalVAE, rows: int = 6, columns: int = 8) -> torch.Tensor:
    """Decodes of ``rows`` draws :math:`z_L \\sim p(z_L)`, each with the same ``columns`` fixed
    noises of the layers below (from torch's global generator; seed it for a repeatable grid).

    :param hvae: a :class:`~pyrovae.models.HierarchicalVAE`.
    :param rows: top-layer draws, one per row.
    :param columns: noise draws of the layers below, one per column.
    :returns: the means of p(x|z_1), ``(rows * columns, *x_shape)``, row by row.
    :raises TypeError: for a model that is not hierarchical.
    :raises ValueError: for ``rows`` or ``columns`` below 1.
    """
    if not isinstance(hvae, HierarchicalVAE):
        raise TypeError(f"top_layer_grid needs a HierarchicalVAE (two or more latent layers), got "
                        f"{type(hvae).__name__}; for a one-layer VAE draw samples with vae.sample(n)")
    rows, columns = positive_int("rows", rows), positive_int("columns", columns)
    device = model_device(hvae)
    top = hvae.prior.top().sample((rows,)).to(device)  # (rows, z_dims[-1])
    noise = [torch.randn(columns, d, device=device) for d in hvae.z_dims[:-1]]  # (columns, z_dims[l]) each
    return hvae.generate(top.repeat_interleave(columns, 0), [n.repeat(rows, 1) for n in noise])
