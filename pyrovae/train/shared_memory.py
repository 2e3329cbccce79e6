r"""Gradient averaging through shared memory, for DDP ranks on one machine.

On a CPU, gloo's all-reduce moves every gradient bucket through the loopback TCP stack: for the
784-400-50 MLP (2.7 MB of gradients) one all-reduce costs about 3 ms on two cores, as much as a
fifth of a training step, and it needs the cores that the ranks train on. Ranks on one machine
can instead see one piece of memory. :class:`SharedMemoryAllReduce` is a DDP communication hook
(``DistributedDataParallel.register_comm_hook``, ref. 1) that averages each bucket there:

1. every rank writes ``bucket / world`` into its own row of a shared ``(2, world, capacity)``
   buffer (a file in ``/dev/shm`` mapped by every rank, unlinked as soon as all have mapped it);
2. one barrier, so that all rows are written: each rank raises its own counter in the same
   file and waits until every counter has reached it (no message, no system call; on processors
   other than x86-64, whose stores may be seen out of order, the process group's barrier);
3. every rank sums the rows, in rank order, into its bucket.

The result is the same on every rank to the bit (the same additions in the same order), and for
two ranks it is bit for bit what the process group's all-reduce gives (``a/2 + b/2``, as DDP's
default hook). Calls alternate between the two halves of the buffer, so one barrier per bucket
is enough: a rank can only overwrite a half after every rank has passed the next call's
barrier, by which time all have read it.

DDP stays the engine: its reducer, its order of buckets and its autograd hooks are unchanged;
only the transport of each bucket changes. The hook averages on the thread of the backward
pass, which waits meanwhile, so there is nothing to overlap, and
:func:`~pyrovae.train.distributed.wrap_ddp` gives DDP one bucket (one wait per step) whose
views are the gradients. :func:`shared_memory_hook` decides whether the hook applies (CPU
tensors, one floating dtype, every rank sees the same file) and returns ``None`` where it does
not, e.g. across machines, so the caller keeps the process group's all-reduce. Its few
collectives take CPU tensors: the caller uses it over gloo only.

References:

1. Li, S. et al. (2020). PyTorch Distributed: Experiences on Accelerating Data Parallel
   Training. VLDB (DDP, its buckets and communication hooks).
2. Thakur, R., Rabenseifner, R. and Gropp, W. (2005). Optimization of Collective Communication
   Operations in MPICH. IJHPCA (all-reduce algorithms; here the ranks share memory, so the
   reduction needs no messages beyond one barrier).
"""

from __future__ import annotations

import os
import platform
import secrets
import tempfile
import time
from collections.abc import Iterable

import torch
import torch.distributed as dist

__all__ = ["SHM_DIR", "SharedMemoryAllReduce", "shared_memory_hook"]

#: Where the shared buffer's file is made: a RAM file system on Linux.
SHM_DIR = "/dev/shm"
_LINE = 64  # bytes of a cache line: each rank's barrier counter has one to itself


class SharedMemoryAllReduce:
    """The state and the body of the DDP communication hook (module docstring).

    Every rank must construct it at the same point (it holds collectives), with the same
    ``capacity`` and ``dtype``.

    :param capacity: the largest bucket in elements (the number of trained parameter values
        bounds every bucket).
    :param dtype: the gradients' dtype.
    :param directory: where the buffer's file is made (rank 0's choice is used by every rank).
    :param timeout: seconds a rank waits at a barrier for the others before it raises.
    :raises OSError: when the file cannot be made or mapped on some rank (every rank raises,
        so none waits forever).
    """

    def __init__(self, capacity: int, dtype: torch.dtype = torch.float32, directory: str = SHM_DIR,
                 timeout: float = 1800.0) -> None:
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        self.capacity, self.calls, self.timeout = int(capacity), 0, timeout
        itemsize = torch.empty((), dtype=dtype).element_size()
        header = _LINE * self.world  # one cache line per rank for its barrier counter
        size = header + 2 * self.world * self.capacity * itemsize
        # rank 0 makes the file and a token that every rank must read back from it: a rank on another
        # machine finds no such file, or not that token
        made: list = [None, None]  # [path, token]
        if self.rank == 0:
            made = _make_file(directory, size)
        dist.broadcast_object_list(made, src=0)
        path, token = made
        if path is None:
            raise OSError(f"rank 0 could not make the shared gradient buffer in {directory}")
        raw, error = None, ""
        try:
            if self.rank != 0 and not os.path.exists(path):  # from_file would make a file of its own
                raise OSError("no such file on this rank's machine")
            raw = torch.from_file(path, shared=True, size=size, dtype=torch.uint8)  # (size,) bytes
            counters = raw[:header].view(torch.int64)  # (world * 8,) rank r's counter at 8 r
            if self.rank == 0:
                counters[1] = token
        except (OSError, RuntimeError) as e:
            error = f"rank {self.rank} cannot map {path}: {e}"
        dist.barrier()  # rank 0's token is written, and every rank has mapped the file (or failed)
        if raw is not None and self.rank != 0 and counters[1].item() != token:
            error = f"rank {self.rank} maps another file at {path} (another machine)"
        failed = torch.tensor([int(bool(error))])
        dist.all_reduce(failed, op=dist.ReduceOp.MAX)  # every rank learns whether all could share it
        if self.rank == 0:
            os.unlink(path)  # the mappings stay; nothing is left behind in the directory
        if failed.item():
            raise OSError(error or "another rank could not map the shared gradient buffer")
        self.buffer = raw[header:].view(dtype).view(2, self.world, self.capacity)  # (half, rank, capacity)
        self.counters = counters.numpy()[:: _LINE // 8]  # (world,) a numpy view: cheap to poll
        # x86-64 keeps stores in order (and loads in order), so a rank that sees another's counter
        # also sees the row written before it; elsewhere the process group's barrier orders them
        self.spin = platform.machine().lower() in ("x86_64", "amd64")

    def barrier(self) -> None:
        """Wait until every rank has reached this call's barrier (and so written its row)."""
        if not self.spin:
            dist.barrier()
            return
        gen = self.calls
        self.counters[self.rank] = gen
        spins, start = 0, time.monotonic()
        while self.counters.min() < gen:
            spins += 1
            if spins > 1000:  # not a short wait: give the core away while waiting
                os.sched_yield()
                if spins % 1000 == 0 and time.monotonic() - start > self.timeout:
                    raise RuntimeError(f"rank {self.rank} waited {self.timeout:.0f} s at the gradient average for "
                                       f"the other ranks (counters {self.counters.tolist()}, want {gen}): "
                                       "another rank has stopped or hangs")

    def __call__(self, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
        """Average one bucket over the ranks, in place; DDP's hook signature is ``hook(state, bucket)``,
        and this object is both (see :func:`shared_memory_hook`)."""
        grads = bucket.buffer()  # (n,) this rank's flat gradients of the bucket
        n = grads.numel()
        if n > self.capacity or grads.dtype != self.buffer.dtype:  # not for DDP's buckets: the same on every rank
            raise RuntimeError(f"a gradient bucket of {n} {grads.dtype} values does not fit the shared buffer "
                               f"({self.capacity} {self.buffer.dtype}); train with gradient_allreduce='process_group'")
        future: torch.futures.Future[torch.Tensor] = torch.futures.Future()
        if self.world == 1:
            future.set_result(grads)
            return future
        half = self.buffer[self.calls % 2]  # (world, capacity)
        self.calls += 1
        torch.div(grads, self.world, out=half[self.rank, :n])
        self.barrier()  # every rank's row is written
        torch.add(half[0, :n], half[1, :n], out=grads)
        for r in range(2, self.world):  # rank order: the same bits on every rank
            grads.add_(half[r, :n])
        future.set_result(grads)
        return future


def _make_file(directory: str, size: int) -> list:
    """``[path, token]`` of a new file of ``size`` zero bytes in ``directory``, or ``[None, None]``
    (and no file left behind) when it cannot be made."""
    try:
        fd, path = tempfile.mkstemp(prefix="pyrovae-ddp-", dir=directory)
    except OSError:
        return [None, None]
    try:
        # zeros, so every counter starts at 0; and the pages reserved now: a RAM file system too small
        # for the buffer (a container's 64 MB /dev/shm) refuses here, with ENOSPC, rather than
        # killing a rank with SIGBUS at its first write
        os.posix_fallocate(fd, 0, size)
    except OSError:
        os.unlink(path)
        return [None, None]
    finally:
        os.close(fd)
    return [path, secrets.randbelow(2**62) + 1]


def _hook(state, bucket):  # no annotations: DDP compares them with the real classes, and this module's are strings
    """DDP's ``hook(state: SharedMemoryAllReduce, bucket: dist.GradBucket) -> Future[Tensor]``."""
    return state(bucket)


def shared_memory_hook(params: Iterable[torch.nn.Parameter], directory: str = SHM_DIR):
    """``(state, hook)`` for ``DistributedDataParallel.register_comm_hook``, or ``None`` where
    shared memory does not apply: tensors not on the CPU, trained parameters of several dtypes
    or none, no ``directory``, or ranks that do not all see the file (another machine). Every
    rank gets the same answer. Collective: every rank must call it.

    :param params: the module's parameters (those with ``requires_grad`` are reduced).
    :param directory: where the buffer's file is made.
    """
    trained = [p for p in params if p.requires_grad]
    dtypes = {p.dtype for p in trained}
    local_ok = (bool(trained) and all(p.device.type == "cpu" for p in trained) and len(dtypes) == 1
                and next(iter(dtypes)).is_floating_point and os.path.isdir(directory))
    ok = torch.tensor([int(local_ok)])
    dist.all_reduce(ok, op=dist.ReduceOp.MIN)
    if not ok.item():
        return None
    try:
        state = SharedMemoryAllReduce(sum(p.numel() for p in trained), dtypes.pop(), directory)
    except OSError:
        return None  # every rank raised alike: keep the process group's all-reduce
    return state, _hook
