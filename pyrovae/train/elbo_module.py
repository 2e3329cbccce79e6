r"""The negative ELBO of a VAE as an ``nn.Module`` whose ``forward`` is the loss.

:class:`torch.nn.parallel.DistributedDataParallel` (DDP) reduces gradients for the module it
wraps, and it learns what to reduce from that module's ``forward``: the call arms its reducer,
whose hooks on the parameters then all-reduce each bucket of gradients while the rest of the
backward pass is still running (ref. 1). A Pyro VAE has no such ``forward``: its loss is
``ELBO.differentiable_loss(model, guide, *batch)``. :class:`ELBOModule` supplies one::

    elbo = ELBOModule(vae, ReparamTrace_ELBO(), num_data=60_000)
    loss = elbo(x)                      # == loss.differentiable_loss(vae.model, vae.guide, x, num_data=N)
    engine = DistributedDataParallel(elbo)
    engine(x).backward()                # gradients averaged across ranks, bucket by bucket

The VAE is a sub-module (``elbo.vae``), so ``elbo.parameters()`` are the VAE's own tensors
and an optimiser built on ``vae.parameters()`` keeps working. The state dict of the VAE
itself, ``elbo.vae.state_dict()``, is what checkpoints store: it has none of the ``vae.`` or
DDP's ``module.`` prefixes, and loads into a VAE in a single process.

References:

1. Li, S. et al. (2020). PyTorch Distributed: Experiences on Accelerating Data Parallel
   Training. VLDB.
2. Kingma, D. P. and Welling, M. (2014). Auto-Encoding Variational Bayes. ICLR.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from pyro.infer import ELBO

__all__ = ["ELBOModule"]


class ELBOModule(torch.nn.Module):
    """``forward(*batch)`` = ``loss.differentiable_loss(model, guide, *batch, num_data=num_data)``.

    :param vae: the trained module, with ``model`` and ``guide`` methods (a
        :class:`~pyrovae.VAE`, a :class:`~pyrovae.models.ConditionalVAE`, ...).
    :param loss: a Pyro ELBO with ``differentiable_loss``.
    :param num_data: the full data-set size N, which the data plate scales each minibatch to.
    :param model: the model to pass to the ELBO (default ``vae.model``); pass the bound method
        the step already holds, since a JIT ELBO keys its compiled cache on its id.
    :param guide: the guide (default ``vae.guide``).
    :raises TypeError: for an ELBO without ``differentiable_loss`` (the message names the fix).
    """

    def __init__(self, vae: torch.nn.Module, loss: ELBO, *, num_data: int, model: Callable | None = None,
                 guide: Callable | None = None) -> None:
        super().__init__()
        if not hasattr(loss, "differentiable_loss"):
            raise TypeError(
                f"{type(loss).__name__} has no differentiable_loss, only loss_and_grads, so its gradient cannot come "
                "out of a module's forward pass as DistributedDataParallel needs; use an ELBO with "
                "differentiable_loss (e.g. loss='trace'), or fit(distributed=True) with this loss, which averages its "
                "gradients with one flat all-reduce after the backward pass instead"
            )
        self.vae = vae  # a sub-module: its parameters are this module's parameters
        self.loss, self.num_data = loss, num_data  # plain attributes (an ELBO is not a module)
        self.model = model if model is not None else vae.model
        self.guide = guide if guide is not None else vae.guide

    def forward(self, *batch: torch.Tensor) -> torch.Tensor:
        """The negative ELBO estimate of one batch, a differentiable scalar on the VAE's device.

        :param batch: the model's arguments, ``(x,)`` ``(batch, *x_shape)`` or ``(x, y)``.
        :returns: ``()``-shaped loss tensor.
        """
        return self.loss.differentiable_loss(self.model, self.guide, *batch, num_data=self.num_data)
