"""The multi-process runner: ``torchrun -m pyrovae.distributed`` and :func:`spawn_local`.

The collectives themselves live in :mod:`pyrovae.train.distributed`; this module only
launches processes, parses their flags and runs :func:`pyrovae.fit` with ``distributed=True``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyro
import torch
import torch.distributed as dist

from ..data import load_mnist
from ..models import build_vae
from ..train import fit
from ..train.distributed import default_backend, rank_and_world


def train_rank(args: argparse.Namespace) -> dict[str, Any]:
    """Train on this rank (the process group must be initialised); returns the history and,
    when ``args.out`` is set, writes ``rank{r}.pt`` there (history and final parameters)."""
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
