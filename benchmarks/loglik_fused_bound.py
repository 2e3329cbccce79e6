"""How close can importance-sampled log p(x) get to its GEMMs on a CPU? A hand-fused bound.

:func:`pyrovae.evaluate.log_likelihood` runs eagerly: each element-wise step of a decoder
chunk is one pass over memory. This script asks what is left when that cost is taken away as
far as this machine allows. It writes one chunk of the estimator for the benchmark's model
(``784-400-z`` MLP, softplus, Bernoulli) by hand, with ``torch.compile`` fusing the
element-wise work into two loops:

- the hidden layer: bias and softplus, as ``relu(h) + log(1 + exp(-|h|))`` (the cheapest of
  the forms tried: one ``exp`` and one ``log`` per unit);
- the output layer: bias, ``x . l`` and the Bernoulli log-normaliser
  ``sum_j softplus(l_j) = sum_j relu(l_j) - log prod_j sigmoid(|l_j|)``, the product taken over
  groups of 98 pixels (one ``exp`` per pixel, one ``log`` per group; the product of 98 factors
  in (1/2, 1] stays a normal float32).

The matrix products are ``mm`` plus a bias in the fused loop, not ``addmm``: on a CPU,
``addmm`` first copies the bias into its output, one more pass.

It prints, per chunk of ``--chunk`` samples of ``--batch-size`` points, the best of
``--reps``:

- ``gemm``: the two decoder products alone, on the same shapes (as ``loglik_speed.py``);
- ``elementwise``: the two fused loops alone, on stored products;
- ``fused chunk``: the whole chunk, fused (draws, the products, the two loops, log q and log p(z));
- ``eager chunk``: the library's own chunk (``pyrovae.evaluate.importance._log_weights``).

and each one's GEMM share. ``elementwise`` bounds the share from above as
``gemm / (gemm + elementwise)``: that is what a perfect schedule (no other work, products as
fast in the pipeline as alone) would reach.

Run::

    python benchmarks/loglik_fused_bound.py --threads 2 --json benchmarks/results/loglik_fused_bound_cpu.json

It needs a C++ compiler for ``torch.compile`` (inductor's CPU code); it compiles for a few
seconds first.

References:

1. Burda, Y., Grosse, R. and Salakhutdinov, R. (2016). Importance Weighted Autoencoders. ICLR.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

GROUP = 98  # pixels per product in the Bernoulli normaliser: 784 = 8 x 98


def _best_ms(fn, reps: int, inner: int = 20) -> float:
    for _ in range(3):
        fn()
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        best = min(best, (time.perf_counter() - start) / inner)
    return 1e3 * best


def _softplus(h: torch.Tensor) -> torch.Tensor:
    return h.clamp_min(0) + torch.log(1 + torch.exp(-h.abs()))


def _bernoulli_sum(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    # (k, b, 784), (b, 784) -> (k, b): sum_j x_j l_j - softplus(l_j)
    linear = (x * logits - logits.clamp_min(0)).sum(-1)
    product = torch.sigmoid(logits.abs()).unflatten(-1, (-1, GROUP)).prod(-1)  # (k, b, 8)
    return linear + torch.log(product).sum(-1)


def build(vae) -> dict:
    """The hand-fused pieces for ``vae``'s MLP decoder (``Linear, Softplus, Linear``)."""
    first, _, last = vae.decoder.net
    w1, b1, w2, b2 = first.weight.detach(), first.bias.detach(), last.weight.detach(), last.bias.detach()

    def hidden(pre: torch.Tensor) -> torch.Tensor:
        return _softplus(pre + b1)

    def output(pre: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return _bernoulli_sum(pre + b2, x)

    def chunk(eps: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        # (k, b, z) noise, (b, z) guide, (b, 784) data -> (k, b) log-weights (up to constants that cancel)
        z = loc + scale * eps
        h = _softplus(z @ w1.T + b1)
        log_px_z = _bernoulli_sum(h @ w2.T + b2, x)
        return log_px_z - 0.5 * (z * z).sum(-1) + 0.5 * (eps * eps).sum(-1) + scale.log().sum(-1)

    fused = {name: torch.compile(fn, dynamic=False) for name, fn in (("hidden", hidden), ("output", output),
                                                                      ("chunk", chunk))}
    return {**fused, "weights": (w1, w2)}


def main(args: argparse.Namespace) -> dict:
    from loglik_speed import _model
    from loglik_speed import parse_args as loglik_args

    from pyrovae import data
    from pyrovae.evaluate.importance import _log_weights

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    opts = loglik_args(["--z-dim", str(args.z_dim), "--train-n", str(args.train_n), "--device", "cpu"])
    vae, what = _model(opts, torch.device("cpu"))
    _, test = data.load_mnist()
    x_img = data.binarize(test.images[: args.batch_size], "static", seed=0)  # (b, 1, 28, 28)
    x = x_img.flatten(1)  # (b, 784)
    k, b = args.chunk, args.batch_size
    fused = build(vae)
    w1, w2 = fused["weights"]
    with torch.no_grad():
        q = vae.encode(x_img)
        loc, scale = q.base_dist.loc, q.base_dist.scale  # (b, z)
        eps = torch.randn(k, b, loc.shape[-1])
        pre1 = (loc + scale * eps).reshape(k * b, -1) @ w1.T  # (k b, 400)
        hid = fused["hidden"](pre1)
        pre2 = (hid @ w2.T).view(k, b, -1)  # (k, b, 784)
        start = time.perf_counter()
        fused["output"](pre2, x), fused["chunk"](eps, loc, scale, x)
        compile_s = time.perf_counter() - start
        ms = {
            "gemm": _best_ms(lambda: (eps.reshape(k * b, -1) @ w1.T, hid @ w2.T), args.reps),
            "elementwise": _best_ms(lambda: (fused["hidden"](pre1), fused["output"](pre2, x)), args.reps),
            "fused chunk": _best_ms(lambda: fused["chunk"](torch.randn(k, b, loc.shape[-1]), loc, scale, x), args.reps),
            "eager chunk": _best_ms(lambda: _log_weights(vae, x_img, q, k), args.reps),
        }
        z = loc + scale * eps  # the same draws both ways
        library = (vae.prior().log_prob(z) + vae.decode(z).log_prob(x_img) - q.log_prob(z))  # (k, b)
        max_diff = float((fused["chunk"](eps, loc, scale, x) - library).abs().max())  # the 2 pi terms cancel
    result = {
        "model": what, "threads": torch.get_num_threads(), "chunk_samples": k, "batch_size": b,
        "compile_seconds": compile_s, "ms_per_chunk": ms,
        "gemm_share": {name: ms["gemm"] / t for name, t in ms.items() if name.endswith("chunk")},
        "bound_perfect_schedule": ms["gemm"] / (ms["gemm"] + ms["elementwise"]),
        "fused_vs_library_max_abs_diff_nats": max_diff
    }
    print(f"model: {what}; {result['threads']} threads; chunk of {k} samples x {b} points; "
          f"compiled in {compile_s:.1f} s")
    for name, t in ms.items():
        share = f"  GEMM share {100 * ms['gemm'] / t:.0f}%" if name.endswith("chunk") else ""
        print(f"  {name:12s} {t:6.2f} ms{share}")
    print(f"  a perfect schedule, gemm / (gemm + elementwise): {100 * result['bound_perfect_schedule']:.0f}%")
    print(f"  fused chunk against the library's, same draws: max |difference| {max_diff:.2g} nats")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return result


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--chunk", type=int, default=13,
                   help="samples per chunk (13 = log_likelihood's CPU default at batch 100)")
    p.add_argument("--batch-size", type=int, default=100, help="data points per chunk")
    p.add_argument("--z-dim", type=int, default=32, help="latent size of the briefly trained model")
    p.add_argument("--train-n", type=int, default=10000, help="training images for the brief training")
    p.add_argument("--reps", type=int, default=5, help="timing repetitions (best is kept)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="write the result here")
    return p.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
