"""Data-parallel training throughput: one rank against two ranks, in one run.

Every measurement starts fresh processes (``torch.multiprocessing``, ``spawn``), each with
``--threads`` torch threads, and trains ``build_vae(hidden=(400,), z_dim=50)`` (Bernoulli,
dynamic binarisation, Adam 1e-3, the default ``loss="trace"``) with :func:`pyrovae.fit` on the
first ``--subset`` MNIST training images, at ``--batch-size`` examples per step *per rank*:

- ``single``: one process, ``fit(distributed=False)``;
- ``ddp``: ``--ranks`` processes over gloo on 127.0.0.1, ``fit(distributed=True)`` as it is by
  default, whose engine is torch's DistributedDataParallel (gradients averaged in buckets,
  overlapped with the backward pass), the buckets averaged through shared memory
  (``gradient_allreduce="auto"``, which is ``"shared_memory"`` for CPU ranks on one machine);
- ``ddp-gloo`` (optional): ``ddp`` with ``fit(gradient_allreduce="process_group")``, each bucket
  all-reduced by gloo over loopback TCP (the engine's default before shared memory);
- ``ddp-bf16`` (optional): ``ddp-gloo`` with ``fit(gradient_compression="bf16")``, each gradient
  bucket all-reduced in bfloat16 (DDP's compression hook);
- ``allreduce`` (optional): the same ranks, with the same estimator behind an ELBO that has
  only ``loss_and_grads``, which sends ``fit`` down its fallback: one flat all-reduce of all
  gradients after the backward pass (the engine before DDP);
- ``independent`` (optional): the same ranks as processes with no process group, each training
  ``fit(distributed=False)`` on its shard. Nothing is communicated, so this is the ceiling that
  any data-parallel engine can reach on the machine: what is lost here goes to the cores
  sharing caches and memory bandwidth, not to the engine.

Each rank trains on its ``1 / ranks`` shard, so one epoch is the same ``--subset`` examples on
every route. The first ``--warmup-epochs`` epochs are not timed (they build DDP, compile
nothing, warm the allocator); the time is the sum of the steps' wall time of the other epochs
(``History.seconds``, which leaves out evaluation), the slowest rank's. Throughput is
``examples trained / time``, over all ranks. The routes run ``--reps`` times, in alternating
order; the report gives the best and the median of each and their ratios to ``single``.

Run::

    python benchmarks/ddp_speed.py --json benchmarks/results/ddp_speed_cpu.json   # 1 x 1 thread vs 2 x 1 thread
    python benchmarks/ddp_speed.py --subset 2000 --epochs 1 --reps 1              # a tiny smoke run

References:

1. Li, S. et al. (2020). PyTorch Distributed: Experiences on Accelerating Data Parallel
   Training. VLDB.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pyro
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from pyrovae.cli.distributed import free_port
from pyrovae.data import load_mnist
from pyrovae.infer import ReparamTrace_ELBO
from pyrovae.models import build_vae
from pyrovae.train import fit

ROUTES = ("single", "ddp", "ddp-gloo", "ddp-bf16", "allreduce", "independent")
NO_GROUP = ("single", "independent")  # routes that train with distributed=False


class LossAndGradsOnly:
    """:class:`~pyrovae.infer.ReparamTrace_ELBO`'s estimator with only ``loss_and_grads``, as an
    ELBO like Pyro's ``TraceGraph_ELBO`` has: ``fit(distributed=True)`` then averages the
    gradients with one flat all-reduce after the backward pass instead of DDP."""

    def __init__(self) -> None:
        self.inner = ReparamTrace_ELBO()

    def loss(self, model, guide, *args, **kwargs) -> float:
        with torch.no_grad():
            return float(self.inner.differentiable_loss(model, guide, *args, **kwargs))

    def loss_and_grads(self, model, guide, *args, **kwargs) -> torch.Tensor:
        value = self.inner.differentiable_loss(model, guide, *args, **kwargs)
        value.backward()
        return value.detach()  # a device tensor, like the DDP route: no host sync per step


def _rank(rank: int, world: int, port: int, route: str, opts: dict, out: str) -> None:
    torch.set_num_threads(opts["threads"])
    if route not in NO_GROUP:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        dist.init_process_group("gloo", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=300))
    try:
        pyro.set_rng_seed(0)
        pyro.clear_param_store()
        train, _ = load_mnist()
        x = train.images[: opts["subset"]] if opts["subset"] else train.images
        if route == "independent":  # this rank's shard, as DistributedSampler would give it
            x = x[rank::world]
        loss = LossAndGradsOnly() if route == "allreduce" else None
        vae = build_vae(hidden=(400,), z_dim=50)
        compression = "bf16" if route == "ddp-bf16" else None
        allreduce = "auto" if route == "ddp" else "process_group"
        history = fit(vae, x, epochs=opts["warmup_epochs"] + opts["epochs"],
                      batch_size=opts["batch_size"], loss=loss, device="cpu", progress=False, seed=opts["seed"],
                      distributed=route not in NO_GROUP, gradient_compression=compression,
                      gradient_allreduce=allreduce)
        shard = len(x) if route == "independent" else len(x) // world
        record = {"rank": rank, "examples_per_epoch": shard, "seconds": history.seconds}
        if route == "ddp":  # what one step's communication costs alone, on these ranks, after training
            numel = sum(p.numel() for p in vae.parameters() if p.requires_grad)
            record["allreduce_ms"] = allreduce_ms(numel)
            record["shared_memory_ms"] = allreduce_ms(numel, shared=True)
        Path(out, f"{route}-rank{rank}.json").write_text(json.dumps(record))
    finally:
        if route not in NO_GROUP:
            dist.destroy_process_group()
    # the record is written: leave without the interpreter's teardown, in which gloo's worker threads,
    # still holding tensors of the DDP engine and its work, now and then abort the process (SIGABRT,
    # "terminate called without an active exception"; seen here about once in five tiny runs)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


class _Bucket:
    """What the shared-memory hook reads of DDP's ``GradBucket``."""

    def __init__(self, values: torch.Tensor) -> None:
        self.values = values

    def buffer(self) -> torch.Tensor:
        return self.values


def allreduce_ms(numel: int, reps: int = 30, shared: bool = False) -> float:
    """Milliseconds of one gloo ``all_reduce`` of ``numel`` float32 values (one step's gradients
    in one message), or with ``shared`` of one average through shared memory
    (:class:`pyrovae.train.shared_memory.SharedMemoryAllReduce`), the median of ``reps`` after a
    warm-up; every rank must call it."""
    from pyrovae.train.shared_memory import SharedMemoryAllReduce

    buffer = torch.randn(numel)
    reduce = SharedMemoryAllReduce(numel) if shared else None
    times = []
    for i in range(reps + 5):
        dist.barrier()
        start = time.perf_counter()
        reduce(_Bucket(buffer)) if shared else dist.all_reduce(buffer)
        if i >= 5:
            times.append(1e3 * (time.perf_counter() - start))
    return statistics.median(times)


def measure(route: str, ranks: int, opts: dict) -> dict:
    """Train once on ``route`` in fresh processes; returns the examples, the timed seconds and
    the throughput (examples/s over all ranks)."""
    world = 1 if route == "single" else ranks
    with tempfile.TemporaryDirectory() as out:
        mp.start_processes(_rank, args=(world, free_port(), route, opts, out), nprocs=world, join=True,
                           start_method="spawn")
        records = [json.loads(Path(out, f"{route}-rank{r}.json").read_text()) for r in range(world)]
    warm = opts["warmup_epochs"]
    seconds = max(sum(r["seconds"][warm:]) for r in records)  # the slowest rank's steps
    examples = sum(r["examples_per_epoch"] for r in records) * opts["epochs"]
    steps = -(-records[0]["examples_per_epoch"] // opts["batch_size"]) * opts["epochs"]
    row = {"ranks": world, "examples": examples, "seconds": seconds, "examples_per_s": examples / seconds,
           "ms_per_step": 1e3 * seconds / steps}
    for key in ("allreduce_ms", "shared_memory_ms"):
        if key in records[0]:
            row[key] = max(r[key] for r in records)
    return row


def load_average() -> list[float] | None:
    try:
        return list(os.getloadavg())
    except OSError:
        return None


def main(args: argparse.Namespace) -> dict:
    opts = {k: getattr(args, k) for k in ("threads", "subset", "batch_size", "epochs", "warmup_epochs", "seed")}
    chosen = [r for r in args.routes.split(",") if r]
    if set(chosen) - set(ROUTES) or "single" not in chosen or len(chosen) < 2:
        raise SystemExit(f"--routes must include single and at least one of {', '.join(ROUTES[1:])}; "
                         f"got {args.routes}")
    report = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
                          "pyro": pyro.__version__, "python": sys.version.split()[0]},
              "command": " ".join(sys.argv), "settings": {**opts, "ranks": args.ranks},
              "load_before": load_average(), "reps": {r: [] for r in chosen}}
    for rep in range(args.reps):
        for route in chosen if rep % 2 == 0 else chosen[::-1]:
            report["reps"][route].append(measure(route, args.ranks, opts))
            row = report["reps"][route][-1]
            comm = (f", one average of the gradients alone: gloo {row['allreduce_ms']:.2f} ms, shared memory "
                    f"{row['shared_memory_ms']:.2f} ms" if "allreduce_ms" in row else "")
            print(f"rep {rep + 1} {route} ({row['ranks']} x {args.threads} thread): {row['examples_per_s']:.0f} "
                  f"examples/s, {row['ms_per_step']:.2f} ms/step{comm}", file=sys.stderr, flush=True)
    report["load_after"] = load_average()
    base = report["reps"]["single"]
    best0, median0 = max(r["examples_per_s"] for r in base), statistics.median(r["examples_per_s"] for r in base)
    report["summary"] = {}
    for route, rows in report["reps"].items():
        best, median = max(r["examples_per_s"] for r in rows), statistics.median(r["examples_per_s"] for r in rows)
        report["summary"][route] = {"ranks": rows[0]["ranks"], "best_examples_per_s": best,
                                    "median_examples_per_s": median, "ratio_best": best / best0,
                                    "ratio_median": median / median0}
        for key in ("allreduce_ms", "shared_memory_ms"):
            if key in rows[0]:
                report["summary"][route][f"{key}_median"] = statistics.median(r[key] for r in rows)
    # the communication a step can afford for 1.7x: two ranks' step time at 1.7x, less a lone rank's best step
    step0 = min(r["ms_per_step"] for r in base)
    report["summary"]["comm_budget_ms_at_1.7x"] = step0 * args.ranks / 1.7 - step0
    return report


def format_table(report: dict) -> str:
    s = report["settings"]
    lines = [f"batch {s['batch_size']} per rank, {s['threads']} thread(s) per rank, {s['subset'] or 60000} images, "
             f"{s['epochs']} timed epoch(s); load {report['load_before']} -> {report['load_after']}",
             "| route | ranks | best examples/s | median examples/s | best / single | median / single |",
             "|---|---|---|---|---|---|"]
    for route, row in report["summary"].items():
        if not isinstance(row, dict):
            continue
        lines.append(f"| {route} | {row['ranks']} | {row['best_examples_per_s']:.0f} | "
                     f"{row['median_examples_per_s']:.0f} | {row['ratio_best']:.3f} | {row['ratio_median']:.3f} |")
    summary = report["summary"]
    lines.append(f"communication a step can afford at 1.7x one rank: {summary['comm_budget_ms_at_1.7x']:.2f} ms")
    if "allreduce_ms_median" in summary.get("ddp", {}):
        allreduce, shared = summary["ddp"]["allreduce_ms_median"], summary["ddp"]["shared_memory_ms_median"]
        lines.append(f"one average of all the gradients alone (median): gloo all-reduce {allreduce:.2f} ms, "
                     f"shared memory {shared:.2f} ms")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ranks", type=int, default=2, help="processes of the data-parallel routes (default %(default)s)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=256, help="examples per step per rank (default %(default)s)")
    p.add_argument("--subset", type=int, default=0, help="use the first N training images (0: all 60k)")
    p.add_argument("--epochs", type=int, default=2, help="timed epochs per measurement (default %(default)s)")
    p.add_argument("--warmup-epochs", type=int, default=1, help="untimed epochs first (default %(default)s)")
    p.add_argument("--reps", type=int, default=3, help="measurements per route, order alternated (default %(default)s)")
    p.add_argument("--routes", default="single,independent,ddp,ddp-gloo", help=f"comma-separated from {ROUTES}")
    p.add_argument("--seed", type=int, default=0, help="fit's seed (default %(default)s)")
    p.add_argument("--json", default=None, help="also write the report as JSON to PATH")
    return p.parse_args(argv)


if __name__ == "__main__":
    args = parse_args()
    report = main(args)
    print(format_table(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
