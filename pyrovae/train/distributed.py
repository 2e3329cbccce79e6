r"""Data-parallel training over several processes with ``torch.distributed``.

Each rank holds a full copy of the VAE and an equal shard of the training set. The model and
guide are the usual ones, opened with ``num_data = N`` (the *full* data size), so every
rank's minibatch loss is already an unbiased estimate of the full-data negative ELBO

.. math::

    -\mathcal{L} \approx -\frac{N}{B}\sum_{n \in \text{local batch}}
        \Big(\log p(x_n|z_n) + \log p(z_n) - \log q(z_n|x_n)\Big).

The gradients of ``R`` such estimates are therefore **averaged** (not summed) across ranks.
The result is the gradient of a single estimate with batch ``R * B``: a world of ``R`` ranks
with local batch ``B`` follows the same trajectory, in distribution, as one process with batch
``R * B``. Every rank starts from rank 0's parameters and applies the same averaged gradient
with the same optimiser, so parameters stay identical across ranks; only the Monte Carlo noise
(data binarisation and z draws) differs per rank.

**The engine** is torch's :class:`~torch.nn.parallel.DistributedDataParallel` (ref. 1), built by
:func:`wrap_ddp` around a :class:`~pyrovae.train.elbo_module.ELBOModule` (whose ``forward`` is
the loss) and driven by :class:`~pyrovae.train.ddp_step.DDPStep`. DDP groups the gradients
into buckets and all-reduces each bucket as soon as the backward pass has filled it, so the
communication overlaps the rest of the backward pass. An ELBO with only ``loss_and_grads``
(Pyro's ``TraceGraph_ELBO``, ``RenyiELBO``, ``ReweightedWakeSleep``) cannot hand its gradient
to DDP through a forward pass; for those, :func:`average_gradients` averages the gradients
with one flat ``all_reduce`` after the backward pass (same result, no overlap).

Launch with ``torchrun`` (``gloo`` on CPU, ``nccl`` on GPU). On one machine::

    torchrun --standalone --nproc_per_node=2 -m pyrovae.distributed --epochs 1 --batch-size 50

On two machines (``--nnodes 2``), one launcher per machine, each told its ``--node_rank`` and
the address of node 0, where the rendezvous is held (any free port)::

    # on node 0 (address 10.0.0.1)
    torchrun --nnodes 2 --nproc_per_node 1 --node_rank 0 --master_addr 10.0.0.1 --master_port 29500 \
        -m pyrovae.distributed --epochs 1 --batch-size 256
    # on node 1
    torchrun --nnodes 2 --nproc_per_node 1 --node_rank 1 --master_addr 10.0.0.1 --master_port 29500 \
        -m pyrovae.distributed --epochs 1 --batch-size 256

(or, with a c10d rendezvous, the same command on every node: ``torchrun --nnodes 2
--nproc_per_node 1 --rdzv_backend c10d --rdzv_endpoint 10.0.0.1:29500 --rdzv_id myjob -m
pyrovae.distributed ...``). ``benchmarks/two_node_demo.sh`` runs both launchers on this
machine with ``--master_addr 127.0.0.1``. Without ``torchrun``,
:func:`pyrovae.cli.distributed.spawn_local` starts the ranks itself (what the tests do). The
training loop is :func:`pyrovae.train.fit` with ``distributed=True``.

References:

1. Li, S. et al. (2020). PyTorch Distributed: Experiences on Accelerating Data Parallel
   Training. VLDB.
2. Kingma, D. P. and Welling, M. (2014). Auto-Encoding Variational Bayes. ICLR.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import torch
import torch.distributed as dist
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
from torch.nn.parallel import DistributedDataParallel

from .config import ALLREDUCE

__all__ = [
    "ALLREDUCE",
    "any_rank",
    "average_gradients",
    "broadcast_parameters",
    "default_backend",
    "mean_across_ranks",
    "rank_and_world",
    "shard",
    "wrap_ddp",
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


def any_rank(flag: bool, device: torch.device | str = "cpu") -> bool:
    """Whether ``flag`` holds on at least one rank (one ``all_reduce`` with ``MAX``), so that
    every rank takes the same decision.

    :param flag: this rank's answer.
    :param device: where the backend can reduce (``cuda`` for ``nccl``).
    """
    t = torch.tensor([int(flag)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def wrap_ddp(module: torch.nn.Module, *, find_unused_parameters: bool = False, sync_buffers: bool = False,
             bucket_cap_mb: float | None = None, compression: str | None = None,
             allreduce: str = "auto") -> DistributedDataParallel:
    """``module`` in a :class:`~torch.nn.parallel.DistributedDataParallel` on the device it lives on.

    DDP's constructor broadcasts rank 0's parameters and buffers to every rank; its backward
    all-reduces the gradients in buckets (``bucket_cap_mb``, DDP's 25 MiB when ``None``, the
    first bucket 1 MiB) as they become ready, overlapped with the rest of the backward pass.

    :param module: the module to wrap, all on one device (CPU: ``device_ids=None`` and gloo;
        CUDA: ``device_ids=[its device]``).
    :param find_unused_parameters: let DDP search the graph after every forward for parameters
        that get no gradient (costs a graph traversal per step; needed only when some do not).
    :param sync_buffers: broadcast rank 0's buffers at every forward (needed only for buffers
        that the training step writes, e.g. batch-norm running statistics; one more collective
        per step).
    :param bucket_cap_mb: the gradient bucket size in MiB.
    :param compression: ``"bf16"``: each bucket is cast to bfloat16 for the all-reduce and back
        (DDP's ``bf16_compress_hook``), half the bytes on the wire for a rounding of the averaged
        gradient to 8 significant bits; ``None``: fp32. (float16 is not offered: a full-data
        ELBO's gradients, scaled by N, overflow its range of 65504 and the loss turns NaN.)
    :param allreduce: how each bucket is averaged. ``"shared_memory"``: through memory that
        every rank maps (:mod:`pyrovae.train.shared_memory`; CPU ranks on one machine, the same
        bits as gloo's fp32 all-reduce for two ranks, without the loopback network);
        ``"process_group"``: the process group's all-reduce (gloo, nccl); ``"auto"``: shared
        memory where it applies and ``compression`` is ``None``, else the process group.
    :returns: the wrapped module; call it as the module, then ``backward`` its output.
    :raises ValueError: for another ``compression`` or ``allreduce``, both together, or
        ``"shared_memory"`` where it does not apply (ranks on several machines, CUDA tensors).
    """
    hooks = {None: None, "bf16": default_hooks.bf16_compress_hook}
    if compression not in hooks:
        raise ValueError(f"compression must be 'bf16' or None, got {compression!r}")
    if allreduce not in ALLREDUCE:
        raise ValueError(f"allreduce must be one of {ALLREDUCE}, got {allreduce!r}")
    if compression is not None and allreduce == "shared_memory":
        raise ValueError("compression and allreduce='shared_memory' do not go together: shared memory moves "
                         "no bytes over a wire, so there is nothing to compress; drop one of them")
    device = next(module.parameters()).device
    kwargs: dict = {"find_unused_parameters": find_unused_parameters}
    shared = None
    if compression is None and allreduce != "process_group":
        from .shared_memory import shared_memory_hook

        # CPU tensors over gloo only (nccl reduces CUDA tensors, and its collectives take no CPU tensor)
        if device.type == "cpu" and "gloo" in str(dist.get_backend()):
            shared = shared_memory_hook(module.parameters())  # collective: the same answer on every rank
        if shared is None and allreduce == "shared_memory":
            raise ValueError("allreduce='shared_memory' needs every rank on one machine, with CPU tensors of one "
                             "floating dtype and the gloo backend; use allreduce='process_group' (or 'auto') here")
    if shared is not None:
        # the hook blocks the backward pass while it averages (it needs no thread of its own), so one
        # bucket, one wait for the other ranks, is fastest; and the averaged gradients can stay views of
        # that bucket (no copy back out of it)
        kwargs["gradient_as_bucket_view"] = True
        if bucket_cap_mb is None:
            trained = sum(p.numel() * p.element_size() for p in module.parameters() if p.requires_grad)
            bucket_cap_mb = trained / 2**20 + 1
    if bucket_cap_mb is not None:  # older torch takes no None here
        kwargs["bucket_cap_mb"] = bucket_cap_mb
    # torch 2.13 renamed broadcast_buffers (per forward) to forward_sync_buffers, which leaves the
    # construction's sync of the buffers alone; the old flag set to False skips the buffers there too
    key = "forward_sync_buffers" if "forward_sync_buffers" in _ddp_arguments() else "broadcast_buffers"
    kwargs[key] = sync_buffers
    if key == "broadcast_buffers" and not sync_buffers:
        broadcast_parameters(module)  # the old flag also leaves the buffers out of the construction's sync
    device_ids = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else None
    engine = DistributedDataParallel(module, device_ids=device_ids, **kwargs)
    if hooks[compression] is not None:
        engine.register_comm_hook(None, hooks[compression])  # state None: the default process group
    elif shared is not None:
        engine.register_comm_hook(*shared)
    return engine


def _ddp_arguments() -> set[str]:
    return set(inspect.signature(DistributedDataParallel.__init__).parameters)
