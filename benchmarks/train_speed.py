"""Training speed: ``pyrovae.fit`` against a plain-PyTorch loop and a bare Pyro ``SVI`` loop.

One process times one epoch of each route on the same data and device:

- ``plain``: the same maths written idiomatically in PyTorch: a 784-400-50 softplus MLP
  encoder and 50-400-784 decoder, Bernoulli likelihood via ``binary_cross_entropy_with_logits``,
  analytic KL, dynamic binarisation, ``torch.optim.Adam(lr=1e-3)``, shuffling on the device
  and the loss accumulated on the device;
- ``fit``: ``pyrovae.fit(vae, x, epochs=1, batch_size=B)`` on ``build_vae(hidden=(400,),
  z_dim=50)`` with its defaults (``loss="trace"``, i.e. ``ReparamTrace_ELBO``; the wall time
  of the whole call, entry checks included);
- ``svi``: ``SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 1e-3}), Trace_ELBO())`` stepped
  over an :class:`~pyrovae.data.InMemoryLoader`, with Pyro's default validation.

Optional routes for the record (``--routes``): ``plain-fused`` (the plain loop with
``Adam(fused=True)``), ``fit-meanfield`` (``loss="meanfield"``, analytic KL),
``fit-pyro-elbo`` (``loss="trace-pyro"``: Pyro's ``Trace_ELBO`` instead of the lean estimator),
``fit-compile`` (``torch.compile`` of the encoder and decoder; compile time included).

Each route runs ``--reps`` times per batch size, alternating the order of the routes between
repetitions; the table gives the min and median epoch time and their ratios to ``plain``.

FLOP count: a dense layer with ``i`` inputs and ``o`` outputs costs ``2 i o`` FLOPs per example
forward, and training (forward + backward for inputs and weights) about three times that, so
one epoch is ``6 N sum(i o)`` (784·400 + 400·100 + 50·400 + 400·784 = 687,200 multiply-adds per
example, 247 GFLOP per 60k epoch; this counts the first layer's unneeded input gradient, so it
slightly overstates the work). The matmul peak is the best of a large square ``torch.mm``
measured in the same run, and ``gemm floor`` is the time of just this model's twelve
training-step GEMMs (at the batch size) over one epoch.

Run::

    python benchmarks/train_speed.py --json benchmarks/results/train_speed_cpu.json
    python benchmarks/train_speed.py --device cuda
    python benchmarks/train_speed.py --subset 1000 --reps 1   # a tiny smoke run

References:

1. Kingma, D. P. and Welling, M. (2014). Auto-Encoding Variational Bayes. ICLR.
2. Bingham, E. et al. (2019). Pyro: Deep Universal Probabilistic Programming. JMLR.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable

import pyro
import torch
import torch.nn.functional as F
from pyro.infer import SVI, Trace_ELBO
from torch import nn

from pyrovae.data import InMemoryLoader, load_mnist
from pyrovae.models import build_vae
from pyrovae.nets import MIN_SCALE
from pyrovae.train import fit

HIDDEN = 400  # hidden width of encoder and decoder
Z_DIM = 50  # latent dimension
ROUTES = ("plain", "fit", "svi")
EXTRA_ROUTES = ("plain-fused", "fit-meanfield", "fit-pyro-elbo", "fit-compile")


def layer_sizes(x_dim: int) -> list[tuple[int, int]]:
    """(in, out) of the four dense layers: encoder body and head, decoder body and output."""
    return [(x_dim, HIDDEN), (HIDDEN, 2 * Z_DIM), (Z_DIM, HIDDEN), (HIDDEN, x_dim)]


def epoch_flops(n: int, x_dim: int) -> float:
    """Training FLOPs of one epoch: 3 x (2 * in * out) per layer per example."""
    return 6.0 * n * sum(i * o for i, o in layer_sizes(x_dim))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class PlainVAE(nn.Module):
    """The reference network, written out by hand."""

    def __init__(self, x_dim: int) -> None:
        super().__init__()
        self.enc = nn.Linear(x_dim, HIDDEN)
        self.enc_head = nn.Linear(HIDDEN, 2 * Z_DIM)
        self.dec = nn.Linear(Z_DIM, HIDDEN)
        self.dec_out = nn.Linear(HIDDEN, x_dim)

    def loss(self, x: torch.Tensor, num_data: int) -> torch.Tensor:
        """Negative ELBO of a batch ``x`` ``(B, x_dim)``, scaled to the full data set."""
        loc, raw = self.enc_head(F.softplus(self.enc(x))).chunk(2, dim=-1)  # each (B, z)
        scale = F.softplus(raw) + MIN_SCALE
        z = loc + scale * torch.randn_like(loc)  # (B, z)
        logits = self.dec_out(F.softplus(self.dec(z)))  # (B, x_dim)
        nll = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
        kl = 0.5 * (loc.pow(2) + scale.pow(2) - 1).sum() - scale.log().sum()
        return (nll + kl) * (num_data / x.shape[0])


def run_plain(x: torch.Tensor, batch_size: int, device: torch.device, seed: int, fused: bool = False) -> float:
    torch.manual_seed(seed)
    n = len(x)
    net = PlainVAE(x[0].numel()).to(device)
    opt = (
        torch.optim.Adam(net.parameters(), lr=1e-3, fused=True)
        if fused
        else torch.optim.Adam(net.parameters(), lr=1e-3)
    )
    sync(device)
    t0 = time.perf_counter()
    flat = x.flatten(1)  # (N, x_dim), a view
    total = torch.zeros((), device=device)
    perm = torch.randperm(n, device=device)
    for lo in range(0, n, batch_size):
        xb = torch.bernoulli(flat[perm[lo: lo + batch_size]])  # (B, x_dim)
        loss = net.loss(xb, n)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += loss.detach()
    float(total)  # one sync at the end
    return time.perf_counter() - t0


def _compiled_vae() -> object:
    vae = build_vae(hidden=(HIDDEN,), z_dim=Z_DIM)
    vae.encoder.compile()
    vae.decoder.compile()
    return vae


def run_fit(x: torch.Tensor, batch_size: int, device: torch.device, seed: int, variant: str = "fit") -> float:
    pyro.clear_param_store()
    torch.manual_seed(seed)
    vae = _compiled_vae() if variant == "fit-compile" else build_vae(hidden=(HIDDEN,), z_dim=Z_DIM)
    loss = {"fit-meanfield": "meanfield", "fit-pyro-elbo": "trace-pyro"}.get(variant)  # None: fit's default
    sync(device)
    t0 = time.perf_counter()
    fit(vae, x, epochs=1, batch_size=batch_size, device=device, seed=seed, progress=False, loss=loss)
    sync(device)
    return time.perf_counter() - t0


def run_svi(x: torch.Tensor, batch_size: int, device: torch.device, seed: int) -> float:
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    vae = build_vae(hidden=(HIDDEN,), z_dim=Z_DIM).to(device)
    svi = SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 1e-3}), Trace_ELBO())
    loader = InMemoryLoader(x, batch_size, binarize="dynamic")
    sync(device)
    t0 = time.perf_counter()
    total = 0.0
    for xb in loader:
        total += svi.step(xb, num_data=len(x))
    sync(device)
    return time.perf_counter() - t0


def matmul_peak(device: torch.device, n: int = 2048, reps: int = 10) -> float:
    """Best FLOP/s of an ``n x n`` float32 matmul."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    best = float("inf")
    for _ in range(reps):
        sync(device)
        t0 = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best


def gemm_floor(n: int, x_dim: int, batch_size: int, device: torch.device, steps: int = 50) -> float:
    """Seconds per epoch of only the model's GEMMs: per layer one forward, one weight-gradient
    and one input-gradient product (best of three timings of ``steps`` steps)."""
    mats = []
    for i, o in layer_sizes(x_dim):
        x = torch.randn(batch_size, i, device=device)
        w = torch.randn(o, i, device=device)
        g = torch.randn(batch_size, o, device=device)
        mats.append((x, w, g))

    def step() -> None:
        for x, w, g in mats:
            x @ w.T  # forward (B, o)
            g.T @ x  # weight gradient (o, i)
            g @ w  # input gradient (B, i)

    step()
    best = float("inf")
    for _ in range(3):
        sync(device)
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        sync(device)
        best = min(best, (time.perf_counter() - t0) / steps)
    return best * -(-n // batch_size)


def load_average() -> list[float] | None:
    try:
        return list(os.getloadavg())
    except OSError:
        return None


def main(args: argparse.Namespace) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    train, _ = load_mnist()
    x = train.images[: args.subset] if args.subset else train.images
    x = x.to(device)
    n, x_dim = len(x), x[0].numel()
    routes: dict[str, Callable[[int, int], float]] = {
        "plain": lambda b, s: run_plain(x, b, device, s),
        "plain-fused": lambda b, s: run_plain(x, b, device, s, fused=True),
        "svi": lambda b, s: run_svi(x, b, device, s),
    }
    for name in ("fit", "fit-meanfield", "fit-pyro-elbo", "fit-compile"):
        routes[name] = lambda b, s, v=name: run_fit(x, b, device, s, v)
    chosen = [r for r in args.routes.split(",") if r]
    unknown = set(chosen) - set(routes)
    if unknown or "plain" not in chosen:
        raise SystemExit(f"--routes must include plain and name only {sorted(routes)}; got {args.routes}")
    report = {
        "machine": {"platform": platform.platform(), "processor": _cpu_name(), "device": str(device),
                    "cuda": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
                    "threads": torch.get_num_threads(), "torch": torch.__version__, "pyro": pyro.__version__,
                    "python": sys.version.split()[0]},
        "command": " ".join(sys.argv),
        "n": n,
        "epoch_gflop": epoch_flops(n, x_dim) / 1e9,
        "flop_formula": "6 * N * sum(in * out) over the 4 dense layers (forward 2*in*out, training ~3x forward)",
        "load_before": load_average(),
        "matmul_peak_gflops": [matmul_peak(device) / 1e9],
        "results": {},
    }
    for b in args.batch_sizes:
        times: dict[str, list[float]] = {r: [] for r in chosen}
        for rep in range(args.reps):
            order = chosen if rep % 2 == 0 else chosen[::-1]
            for r in order:
                times[r].append(routes[r](b, rep))
                if not args.json_only:
                    print(f"batch {b} rep {rep + 1} {r}: {times[r][-1]:.2f} s", file=sys.stderr, flush=True)
        base_min, base_med = min(times["plain"]), statistics.median(times["plain"])
        rows = {}
        for r in chosen:
            t_min, t_med = min(times[r]), statistics.median(times[r])
            rows[r] = {"seconds": times[r], "min_s": t_min, "median_s": t_med, "ratio_min": t_min / base_min,
                       "ratio_median": t_med / base_med, "gflops_at_min": epoch_flops(n, x_dim) / t_min / 1e9}
        report["results"][str(b)] = {"routes": rows, "gemm_floor_s": gemm_floor(n, x_dim, b, device)}
    report["matmul_peak_gflops"].append(matmul_peak(device) / 1e9)
    report["load_after"] = load_average()
    return report


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def format_table(report: dict) -> str:
    peak = max(report["matmul_peak_gflops"])
    head = (f"device {report['machine']['device']} ({report['machine']['processor']}, "
            f"{report['machine']['threads']} threads), N={report['n']}, "
            f"{report['epoch_gflop']:.0f} GFLOP/epoch, matmul peak {peak:.0f} GFLOP/s, "
            f"load {report['load_before']} -> {report['load_after']}")
    lines = [head,
             "| batch | route | min s | median s | min / plain | median / plain | GFLOP/s (at min) |",
             "|---|---|---|---|---|---|---|"]
    for b, res in report["results"].items():
        for r, row in res["routes"].items():
            lines.append(f"| {b} | {r} | {row['min_s']:.2f} | {row['median_s']:.2f} | {row['ratio_min']:.3f} | "
                         f"{row['ratio_median']:.3f} | {row['gflops_at_min']:.0f} |")
        lines.append(f"| {b} | gemm floor | {res['gemm_floor_s']:.2f} | | "
                     f"{res['gemm_floor_s'] / res['routes']['plain']['min_s']:.3f} | | |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default %(default)s)")
    p.add_argument("--batch-sizes", type=lambda s: [int(v) for v in s.split(",")], default=[100, 256],
                   help="comma-separated batch sizes (default 100,256)")
    p.add_argument("--reps", type=int, default=3, help="epochs per route and batch size (default %(default)s)")
    p.add_argument("--subset", type=int, default=0, help="use the first N training images (0: all 60k)")
    p.add_argument("--routes", default=",".join(ROUTES),
                   help=f"comma-separated routes from {ROUTES + EXTRA_ROUTES} (default %(default)s)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--json", nargs="?", const="-", default=None, help="write the report as JSON to PATH (or stdout)")
    args = p.parse_args(argv)
    args.json_only = args.json == "-"
    return args


def emit(report: dict, args: argparse.Namespace, table: Callable[[dict], str]) -> None:
    """Print ``report`` as JSON (``--json -``), or its ``table`` and, with ``--json PATH``, write the JSON there."""
    if args.json == "-":
        print(json.dumps(report, indent=2))
        return
    print(table(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    args = parse_args()
    emit(main(args), args, format_table)
