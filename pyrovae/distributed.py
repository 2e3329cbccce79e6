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

import argparse
import json
import os
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist


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


# --------------------------------------------------------------------------------------
# One rank's run, and two ways to start many
# --------------------------------------------------------------------------------------


def train_rank(args: argparse.Namespace) -> dict[str, Any]:
    """Train on this rank (the process group must be initialised); returns the history and,
    when ``args.out`` is set, writes ``rank{r}.pt`` there (history and final parameters)."""
    import pyro

    from .builder import build_vae
    from .data import load_mnist
    from .train import fit

    rank, world = rank_and_world()
    device = args.device
    if device.startswith("cuda") and ":" not in device:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', rank))}"
        torch.cuda.set_device(device)
    torch.set_num_threads(args.threads)
    pyro.set_rng_seed(args.seed)  # the same initialisation everywhere (rank 0's is broadcast anyway)
    pyro.clear_param_store()
    train, test = load_mnist()
    x_train = train.images[: args.subset] if args.subset else train.images
    x_test = test.images[: args.test_subset] if args.test_subset else test.images
    vae = build_vae(hidden=tuple(args.hidden), z_dim=args.z_dim)
    history = fit(vae, x_train, x_test, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                  device=device, seed=args.seed, checkpoint=args.checkpoint, progress=args.progress,
                  distributed=True)
    result = {"rank": rank, "world": world, "history": history.to_dict()}
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu() for k, v in vae.state_dict().items()}
        torch.save({**result, "state_dict": state}, out / f"rank{rank}.pt")
    return result


def _spawned(rank: int, world: int, port: int, backend: str, args: argparse.Namespace) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group(backend, rank=rank, world_size=world)
    try:
        train_rank(args)
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (for a local rendezvous)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn_local(world: int, argv: Sequence[str] = (), backend: str | None = None) -> None:
    """Run :func:`train_rank` in ``world`` fresh processes on this machine (no torchrun needed).

    :param world: number of ranks.
    :param argv: command-line flags as for ``python -m pyrovae.distributed`` (e.g.
        ``["--epochs", "2", "--out", "dir"]``).
    :param backend: ``gloo``/``nccl``; default from ``--device``.
    """
    import torch.multiprocessing as mp

    args = parse_args(argv)
    mp.start_processes(_spawned, args=(world, free_port(), backend or default_backend(args.device), args),
                       nprocs=world, join=True, start_method="spawn")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m pyrovae.distributed", description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=1, help="passes over the training set (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=100, help="examples per step *per rank* (default %(default)s)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default %(default)s)")
    p.add_argument("--hidden", type=int, nargs="+", default=[400], help="MLP hidden widths (default 400)")
    p.add_argument("--z-dim", type=int, default=50, help="latent dimension (default %(default)s)")
    p.add_argument("--subset", type=int, default=0, help="use the first N training images (0: all)")
    p.add_argument("--test-subset", type=int, default=0, help="use the first N test images (0: all)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default %(default)s)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (each rank takes cuda:LOCAL_RANK)")
    p.add_argument("--backend", default=None, help="gloo or nccl (default: nccl on cuda, else gloo)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per rank (default %(default)s)")
    p.add_argument("--checkpoint", default=None, help="checkpoint file (rank 0 writes it)")
    p.add_argument("--out", default=None, help="directory for rank{r}.pt results")
    p.add_argument("--progress", action="store_true", help="show rank 0's progress bar")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point under ``torchrun``: ``torchrun --nproc_per_node=R -m pyrovae.distributed ...``."""
    args = parse_args(argv)
    dist.init_process_group(args.backend or default_backend(args.device))
    try:
        result = train_rank(args)
        if result["rank"] == 0:
            h = result["history"]
            for e, tr, te in zip(h["epoch"], h["train_elbo"], h["test_elbo"]):
                print(json.dumps({"epoch": e, "world": result["world"], "train_elbo": tr, "test_elbo": te}))
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
