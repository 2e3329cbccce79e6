r"""Data-parallel training over several processes with ``torch.distributed``.

Each rank holds a full copy of the VAE and an equal shard of the training set. The model and
guide are the usual ones, opened with ``num_data = N`` (the *full* data size), so every
rank's minibatch loss is already an unbiased estimate of the full-data negative ELBO

.. math::

    -\mathcal{L} \approx -\frac{N}{B}\sum_{n \in \text{local batch}}
        \Big(\log p(x_n|z_n) + \log p(z_n) - \log q(z_n|x_n)\Big).

The gradients of ``R`` such estimates are therefore **averaged** (not summed) across ranks with
one ``all_reduce`` per step over a flat buffer of the module's gradients. The result is the
gradient of a single estimate with batch ``R * B``: a world of ``R`` ranks with local batch
``B`` follows the same trajectory, in distribution, as one process with batch ``R * B``.
Every rank starts from rank 0's parameters and applies the same averaged gradient with the
same optimiser, so parameters stay identical across ranks; only the Monte Carlo noise (data
binarisation and z draws) differs per rank.

Launch with ``torchrun`` (``gloo`` on CPU, ``nccl`` on GPU)::

    torchrun --standalone --nproc_per_node=2 -m pyrovae.distributed --epochs 1 --batch-size 50

or, without ``torchrun``, with :func:`spawn_local` (what the tests do). The training loop is
:func:`pyrovae.train.fit` with ``distributed=True``.

References:

1. Li, S. et al. (2020). PyTorch Distributed: Experiences on Accelerating Data Parallel
   Training. VLDB.
2. Kingma, D. P. and Welling, M. (2014). Auto-Encoding Variational Bayes. ICLR.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist

__all__ = [
    "average_gradients",
    "broadcast_parameters",
    "default_backend",
    "mean_across_ranks",
    "rank_and_world",
    "shard",
]


def rank_and_world() -> tuple[int, int]:
    """``(rank, world_size)`` of the initialised default process group.

    :raises RuntimeError: when no process group is initialised.
    """
    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError(
            "distributed training needs an initialised process group: launch with torchrun "
            "(python -m pyrovae.distributed) or call torch.distributed.init_process_group first"
        )
    return dist.get_rank(), dist.get_world_size()


def shard(x: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    """This rank's equal share of ``x``: rows ``rank, rank + world, ...``, ``N // world`` of them.

    Equal shard sizes give every rank the same number of steps per epoch (a rank with one more
    step would wait forever in the all-reduce); the ``N % world`` leftover rows are not used.
    """
    n = len(x) // world
    if n == 0:
        raise ValueError(f"{len(x)} training examples cannot be shared by {world} ranks")
    return x[rank::world][:n]


def _flat_grads(params: Sequence[torch.nn.Parameter]) -> torch.Tensor:
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])


def average_gradients(params: Sequence[torch.nn.Parameter]) -> None:
    """Replace each ``p.grad`` by its mean over the ranks (one ``all_reduce`` on a flat buffer)."""
    world = dist.get_world_size()
    flat = _flat_grads(params)  # (total parameters,)
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat.div_(world)
    offset = 0
    for p in params:
        n = p.numel()
        g = flat[offset: offset + n].view_as(p)
        if p.grad is None:
            p.grad = g.clone()
        else:
            p.grad.copy_(g)
        offset += n


def broadcast_parameters(module: torch.nn.Module, src: int = 0) -> None:
    """Copy rank ``src``'s parameters and buffers to every rank."""
    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, src=src)


def mean_across_ranks(value: torch.Tensor) -> torch.Tensor:
    """The mean of a scalar tensor over the ranks."""
    out = value.detach().clone().reshape(1)
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out[0] / dist.get_world_size()


def default_backend(device: str) -> str:
    """``nccl`` for CUDA, ``gloo`` otherwise."""
    return "nccl" if str(device).startswith("cuda") else "gloo"
