"""One optimisation step on one batch: the two routes behind :class:`~pyrovae.train.Trainer`.

- :class:`TorchStep`: a ``torch.optim`` optimiser over the module's parameters. The loss is
  the ELBO's ``differentiable_loss`` (backpropagated here) or, for an ELBO without one, its
  ``loss_and_grads``. The returned loss stays on the device: no host synchronisation per step.
- With several ranks, :func:`make_step` returns a :class:`~pyrovae.train.ddp_step.DDPStep`
  (torch's DistributedDataParallel averages the gradients during the backward pass) for an
  ELBO with ``differentiable_loss``, and otherwise a :class:`TorchStep` that averages them with
  one flat all-reduce after ``loss_and_grads`` (:func:`~pyrovae.train.distributed.average_gradients`).
- :class:`SVIStep`: a ``pyro.optim`` optimiser, i.e. ``SVI.step`` (which returns a float).

A step is called with the batch's model arguments, ``step(x)`` or ``step(x, y)``; the
data-set size goes in as ``num_data`` so that the plate scales the minibatch to the full data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from pyro.infer import ELBO, SVI
from pyro.optim import PyroOptim

from . import distributed as ddp
from .ddp_step import DDPStep
from .elbo_module import ELBOModule

__all__ = ["SVIStep", "TorchStep", "default_adam", "make_step"]

TorchFactory = Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer]


def default_adam(params: Sequence[torch.nn.Parameter], lr: float) -> torch.optim.Optimizer:
    """``torch.optim.Adam(lr=lr)``, fused where the device and dtype allow it."""
    # the fused kernel updates every tensor in one pass; where there is none, plain Adam
    # (same maths, same state-dict layout, so checkpoints load either way)
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr)


class TorchStep:
    """``zero_grad``; the loss and its gradient; the all-reduce when ``world > 1``; ``step``.

    :param model: the Pyro model (bound once: a JIT ELBO keys its cache on its id).
    :param guide: the Pyro guide.
    :param loss: the ELBO.
    :param optimizer: a ``torch.optim`` optimiser over ``params``.
    :param params: the trained parameters (the ones averaged across ranks).
    :param num_data: the full data-set size N.
    :param world: number of data-parallel ranks.
    :param clip_grad_norm: clip the gradients' global 2-norm to this before the update (``None``: no clipping).
    :param scheduler: a torch LR scheduler stepped after every update (``None``: none per step).
    """

    def __init__(self, model: Callable, guide: Callable, loss: ELBO, optimizer: torch.optim.Optimizer,
                 params: Sequence[torch.nn.Parameter], *, num_data: int, world: int = 1,
                 clip_grad_norm: float | None = None, scheduler: Any = None) -> None:
        self.model, self.guide, self.loss, self.optimizer = model, guide, loss, optimizer
        self.params, self.num_data, self.world = list(params), num_data, world
        self.clip_grad_norm, self.scheduler = clip_grad_norm, scheduler
        self.differentiable = hasattr(loss, "differentiable_loss")

    def __call__(self, *batch: torch.Tensor) -> torch.Tensor | float:
        """Train on one batch; returns the loss of that batch (a device tensor, or a float
        from ``loss_and_grads``)."""
        self.optimizer.zero_grad(set_to_none=True)
        if self.differentiable:
            value = self.loss.differentiable_loss(self.model, self.guide, *batch, num_data=self.num_data)
            value.backward()
            value = value.detach()
        else:  # the gradients land on the parameters
            value = self.loss.loss_and_grads(self.model, self.guide, *batch, num_data=self.num_data)
        if self.world > 1:
            ddp.average_gradients(self.params)
        if self.clip_grad_norm is not None:  # on the device: no host synchronisation
            torch.nn.utils.clip_grad_norm_(self.params, self.clip_grad_norm)
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        return value


class SVIStep:
    """``SVI.step`` with a ``pyro.optim`` optimiser (its parameters come from the param store).

    :param model: the Pyro model.
    :param guide: the Pyro guide.
    :param loss: the ELBO.
    :param optim: the ``pyro.optim`` optimiser.
    :param num_data: the full data-set size N.
    """

    def __init__(self, model: Callable, guide: Callable, loss: ELBO, optim: PyroOptim, *, num_data: int) -> None:
        self.svi = SVI(model, guide, optim, loss)
        self.model, self.guide, self.loss, self.optimizer, self.num_data = model, guide, loss, optim, num_data

    def __call__(self, *batch: torch.Tensor) -> float:
        """Train on one batch; returns its loss (a float: ``SVI.step`` synchronises)."""
        return self.svi.step(*batch, num_data=self.num_data)


def make_step(module: torch.nn.Module, loss: ELBO, optim: PyroOptim | TorchFactory | None, lr: float, *,
              num_data: int, world: int = 1, clip_grad_norm: float | None = None,
              gradient_compression: str | None = None,
              gradient_allreduce: str = "auto") -> TorchStep | SVIStep | DDPStep:
    """The step for ``optim``: :class:`SVIStep` for a ``pyro.optim`` optimiser, else
    :class:`TorchStep` with ``optim(params)`` or :func:`default_adam`; with ``world > 1`` and an
    ELBO with ``differentiable_loss``, a :class:`~pyrovae.train.ddp_step.DDPStep` with that optimiser.

    :param module: the trained module, with ``model`` and ``guide`` methods.
    :param gradient_compression: ``"bf16"``: the DDP step all-reduces its gradients in bfloat16.
    :param gradient_allreduce: how the DDP step's buckets travel (``"auto"``, ``"shared_memory"``,
        ``"process_group"``; :func:`~pyrovae.train.distributed.wrap_ddp`).
    :raises ValueError: for a ``pyro.optim`` optimiser with ``world > 1`` or ``clip_grad_norm``, or a
        ``gradient_compression`` or ``gradient_allreduce="shared_memory"`` that DDP would not carry
        out (one process, or an ELBO without ``differentiable_loss``).
    """
    model, guide = module.model, module.guide  # bound once: a JIT ELBO keys its cache on their ids
    if isinstance(optim, PyroOptim):
        if world > 1:
            raise ValueError("distributed=True needs a torch optimiser (optim=None or a factory), not pyro.optim")
        if clip_grad_norm is not None:
            raise ValueError("clip_grad_norm needs a torch optimiser; a pyro.optim optimiser clips per parameter "
                             "with its own clip_args={'clip_norm': ...}")
        return SVIStep(model, guide, loss, optim, num_data=num_data)
    params = [p for p in module.parameters() if p.requires_grad]
    optimizer = optim(params) if optim is not None else default_adam(params, lr)
    if gradient_compression is not None and not (world > 1 and hasattr(loss, "differentiable_loss")):
        raise ValueError(f"gradient_compression={gradient_compression!r} compresses DDP's all-reduce: it needs "
                         "distributed=True over two or more ranks and an ELBO with differentiable_loss")
    if gradient_allreduce == "shared_memory" and not (world > 1 and hasattr(loss, "differentiable_loss")):
        raise ValueError("gradient_allreduce='shared_memory' is how DDP's gradient buckets travel: it needs "
                         "distributed=True over two or more ranks and an ELBO with differentiable_loss")
    if world > 1 and hasattr(loss, "differentiable_loss"):
        return DDPStep(ELBOModule(module, loss, num_data=num_data, model=model, guide=guide), optimizer, params,
                       clip_grad_norm=clip_grad_norm, compression=gradient_compression, allreduce=gradient_allreduce)
    # one process; or an ELBO with only loss_and_grads, whose gradients TorchStep averages after the backward pass
    return TorchStep(model, guide, loss, optimizer, params, num_data=num_data, world=world,
                     clip_grad_norm=clip_grad_norm)
