"""Importance-sampled log p(x) under a mixture prior: matmul mixture against the broadcast one.

Times ``evaluate.log_likelihood`` for one model twice in the same run, alternating, once with
the priors' :class:`pyrovae.distributions.DiagonalNormalMixture` and once with its parent
``MixtureSameFamily`` (which broadcasts to ``(M, K, D)``), and reports the ratio::

    python benchmarks/mixture_speed.py --prior vamp --components 500 --threads 1
"""

from __future__ import annotations

import argparse
import json
import time
from unittest import mock

import pyro.distributions as dist
import torch

from pyrovae import distributions, evaluate
from pyrovae.models import build_vae
from pyrovae.models.recipes import get_recipe


def _broadcast_mixture(logits, loc, scale):
    return dist.MixtureSameFamily(dist.Categorical(logits=logits), dist.Normal(loc, scale).to_event(1))


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--prior", choices=("vamp", "mog"), default="vamp")
    p.add_argument("--components", type=int, default=500)
    p.add_argument("--points", type=int, default=20, help="test points")
    p.add_argument("--samples", type=int, default=1000, help="importance samples K")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=None, help="write the result here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    # the likelihood benchmark's wide network (784-512-512-50 GELU) with the chosen mixture prior
    vae = build_vae(get_recipe("vamp-large", prior=args.prior, num_components=args.components)).eval()
    x = (torch.rand(args.points, 1, 28, 28) < 0.15).float()
    times: dict[str, list[float]] = {"matmul": [], "broadcast": []}
    results = {}
    for _ in range(args.reps):
        for name in ("broadcast", "matmul"):
            patch = (mock.patch("pyrovae.priors.diagonal_normal_mixture", _broadcast_mixture) if name == "broadcast"
                     else mock.patch("pyrovae.priors.diagonal_normal_mixture", distributions.diagonal_normal_mixture))
            with patch:
                torch.manual_seed(1)
                t = time.perf_counter()
                results[name] = evaluate.log_likelihood(vae, x, num_samples=args.samples, batch_size=args.points).log_px
                times[name].append(time.perf_counter() - t)
    out = {
        "prior": args.prior, "components": args.components, "points": args.points, "samples": args.samples,
        "threads": args.threads, "seconds": times,
        "ratio_min": min(times["broadcast"]) / min(times["matmul"]),
        "max_abs_diff_log_px": float((results["matmul"] - results["broadcast"]).abs().max()),
    }
    print(
        f"{args.prior} K={args.components}: broadcast {min(times['broadcast']):.2f}s, "
        f"matmul {min(times['matmul']):.2f}s, "
        f"ratio {out['ratio_min']:.1f}x (same draws: max |diff| {out['max_abs_diff_log_px']:.2e} nats)"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return out


if __name__ == "__main__":
    main()
