"""The training step on several ranks: torch's DistributedDataParallel around the loss.

:class:`DDPStep` is what :func:`~pyrovae.train.make_step` returns for ``world > 1`` and an
ELBO with ``differentiable_loss``: ``zero_grad``; the loss through a
:class:`~torch.nn.parallel.DistributedDataParallel` wrapping an
:class:`~pyrovae.train.elbo_module.ELBOModule`; ``backward``, during which DDP's reducer
all-reduces (averages) the gradients bucket by bucket, overlapped with the rest of the
backward pass; clipping; the optimiser's ``step``. The returned loss stays on the device.

DDP is built on the first call (so that the model's lazily built parts exist), after one
probe of the loss on that batch, run on a forked RNG and undone (gradients dropped, buffers
restored), that settles two of DDP's settings for every rank alike:

- ``find_unused_parameters``: on only when some trained parameter got no gradient in the
  probe, e.g. a part the loss does not use. DDP would otherwise wait for that gradient
  forever (it raises at the next step); the search costs a graph traversal per step, so it
  stays off when every parameter is used. Frozen parameters (``requires_grad=False``) are
  not DDP's business at all and do not count.
- ``sync_buffers``: on only when the probe wrote some buffer (e.g. batch-norm running
  statistics), which rank 0 then broadcasts at every forward so the ranks stay identical.
  Constant buffers (a fixed prior's ``loc`` and ``scale``) are synced once, at construction.

A model whose use of parameters or buffers changes from batch to batch after the first
should be trained with a step built with ``find_unused_parameters=True``/``sync_buffers=True``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch

from . import distributed as ddp
from .elbo_module import ELBOModule
from .rng import forked_rng

__all__ = ["DDPStep", "Usage", "probe_usage"]


class Usage(NamedTuple):
    """What one forward and backward of the loss touched."""

    unused: list[str]  # trained parameters that got no gradient
    written_buffers: list[str]  # buffers whose values changed


def probe_usage(module: torch.nn.Module, batch: Sequence[torch.Tensor]) -> Usage:
    """Run ``module(*batch).backward()`` once and undo it: RNG, buffers and gradients are as before.

    :param module: a module whose ``forward`` returns a scalar loss (an :class:`ELBOModule`).
    :param batch: its arguments.
    :returns: the trained parameters that got no gradient, and the buffers that changed.
    """
    device = next(module.parameters()).device
    trained = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    saved_grads = [p.grad for _, p in trained]
    before = {n: b.detach().clone() for n, b in module.named_buffers()}
    try:
        with forked_rng(module, device):  # restores the buffers too, after the comparison below
            for _, p in trained:
                p.grad = None
            module(*batch).backward()
            unused = [n for n, p in trained if p.grad is None]
            written = [n for n, b in module.named_buffers() if n not in before or not torch.equal(b, before[n])]
    finally:
        for (_, p), g in zip(trained, saved_grads):
            p.grad = g
    return Usage(unused, written)


class DDPStep:
    """``zero_grad``; the loss through DDP and its ``backward`` (the gradients averaged across
    the ranks on the way); clipping; ``step``.

    :param module: the loss as a module (its ``model``, ``guide``, ``loss`` and ``num_data``
        are what the trainer reads off a step).
    :param optimizer: a ``torch.optim`` optimiser over ``params``.
    :param params: the trained parameters (``module``'s own tensors).
    :param clip_grad_norm: clip the gradients' global 2-norm to this before the update (``None``: no clipping).
    :param scheduler: a torch LR scheduler stepped after every update (``None``: none per step).
    :param find_unused_parameters: DDP's flag; ``None`` decides from the probe (module docstring).
    :param sync_buffers: broadcast rank 0's buffers at every forward; ``None`` decides from the probe.
    :param bucket_cap_mb: DDP's gradient bucket size in MiB (``None``: DDP's default).
    :param compression: ``"bf16"``: all-reduce the gradients in bfloat16
        (:func:`~pyrovae.train.distributed.wrap_ddp`); ``None``: fp32.
    :param allreduce: how the buckets travel: ``"auto"``, ``"shared_memory"`` or
        ``"process_group"`` (:func:`~pyrovae.train.distributed.wrap_ddp`).
    :raises RuntimeError: without an initialised process group.
    """

    def __init__(self, module: ELBOModule, optimizer: torch.optim.Optimizer, params: Sequence[torch.nn.Parameter], *,
                 clip_grad_norm: float | None = None, scheduler: Any = None,
                 find_unused_parameters: bool | None = None, sync_buffers: bool | None = None,
                 bucket_cap_mb: float | None = None, compression: str | None = None, allreduce: str = "auto") -> None:
        self.elbo, self.optimizer, self.params = module, optimizer, list(params)
        self.model, self.guide, self.loss, self.num_data = module.model, module.guide, module.loss, module.num_data
        self.rank, self.world = ddp.rank_and_world()
        self.clip_grad_norm, self.scheduler = clip_grad_norm, scheduler
        self.find_unused_parameters, self.sync_buffers = find_unused_parameters, sync_buffers
        self.bucket_cap_mb, self.compression, self.allreduce = bucket_cap_mb, compression, allreduce
        self.engine: torch.nn.parallel.DistributedDataParallel | None = None  # built on the first call
        self.usage: Usage | None = None  # what the probe found (None when both settings were given)

    def build(self, *batch: torch.Tensor) -> torch.nn.parallel.DistributedDataParallel:
        """Settle DDP's settings (from a probe on ``batch`` where not given) and wrap the loss.
        Every rank must call it, with its own batch: it holds collectives."""
        find_unused, sync = self.find_unused_parameters, self.sync_buffers
        if find_unused is None or sync is None:
            self.usage = probe_usage(self.elbo, batch)
            device = next(self.elbo.parameters()).device
            # one decision for all ranks: DDP hangs when the ranks disagree
            if find_unused is None:
                find_unused = ddp.any_rank(bool(self.usage.unused), device)
            if sync is None:
                sync = ddp.any_rank(bool(self.usage.written_buffers), device)
        self.find_unused_parameters, self.sync_buffers = find_unused, sync
        self.engine = ddp.wrap_ddp(self.elbo, find_unused_parameters=find_unused, sync_buffers=sync,
                                   bucket_cap_mb=self.bucket_cap_mb, compression=self.compression,
                                   allreduce=self.allreduce)
        return self.engine

    def __call__(self, *batch: torch.Tensor) -> torch.Tensor:
        """Train on one batch; returns the loss of this rank's batch (a device tensor)."""
        engine = self.engine if self.engine is not None else self.build(*batch)
        # dropped, not zeroed, also where the gradients are views of DDP's bucket (the shared-memory
        # route): the backward pass then hands each new gradient to the reducer, which copies it into
        # the bucket once, where zeroed views would cost a fill and an in-place add of every gradient
        # (about 0.5 ms a step for 688k values on one thread, measured rank by rank)
        self.optimizer.zero_grad(set_to_none=True)
        value = engine(*batch)
        value.backward()  # DDP's hooks all-reduce each bucket of gradients as it fills
        if self.clip_grad_norm is not None:  # on the averaged gradients: the same clip on every rank
            torch.nn.utils.clip_grad_norm_(self.params, self.clip_grad_norm)
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        return value.detach()
