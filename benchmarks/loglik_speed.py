"""Importance-sampled log p(x): pyrovae's vectorised estimator against a per-point loop.

The reference is a loop in the style of Pythae's ``VAE.get_nll`` (pythae/models/vae/vae_model.py):
one test point at a time, the point repeated ``loop_batch`` times, re-encoded, K samples drawn
in chunks of ``loop_batch``, decoded to probabilities, scored with ``binary_cross_entropy``,
and reduced with ``logsumexp`` and ``.item()`` per point. pyrovae's
:func:`pyrovae.evaluate.log_likelihood` encodes each batch once and pushes many points and
samples through the decoder per call, with a streaming log-sum-exp.

The loop is timed on ``--loop-n`` points and extrapolated linearly to ``--n`` (it does the
same work for every point); the output says so. Both estimates are compared on the shared
points (they agree within their standard errors).

What to expect: on a GPU the loop is bound by kernel launches and Python overhead, and
the vectorised estimator wins by orders of magnitude. On a CPU both are compute-bound on
the decoder; the vectorised path saves the loop's re-encoding of every chunk (about half
the work for a symmetric MLP) and its many small calls, so expect about 2x there (1.9x
measured on the 2-core development machine, K = 5000, 784-400-32 MLP). The default chunk
on a CPU is small (2^20 decoder outputs per call) because cache-sized temporaries are
faster than large ones there.

Run::

    python benchmarks/loglik_speed.py --n 10000 --samples 5000 --json out.json
    python benchmarks/loglik_speed.py --checkpoint runs/mnist/checkpoint.pt --device cuda

References:

1. Burda, Y., Grosse, R. and Salakhutdinov, R. (2016). Importance Weighted Autoencoders. ICLR.
2. Chadebec, C. et al. (2022). Pythae: Unifying Generative Autoencoders in Python. NeurIPS
   Datasets and Benchmarks (``get_nll``).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as F


def pythae_style_nll(vae, data: torch.Tensor, n_samples: int, batch_size: int = 100) -> np.ndarray:
    """log p(x) per point, one point at a time, as Pythae's ``get_nll`` computes it
    (re-encoding the repeated point for every chunk; probabilities through BCE)."""
    n_full_batch = max(1, n_samples // batch_size)
    n_samples = min(n_samples, batch_size)
    log_p = []
    for i in range(len(data)):
        x = data[i].unsqueeze(0)
        log_p_x = []
        for _ in range(n_full_batch):
            x_rep = torch.cat(n_samples * [x])
            mu, std = vae.encoder(x_rep)
            log_var = 2 * torch.log(std)
            z = mu + std * torch.randn_like(std)
            log_q_z_given_x = -0.5 * (log_var + (z - mu) ** 2 / torch.exp(log_var)).sum(dim=-1)
            log_p_z = -0.5 * (z**2).sum(dim=-1)
            recon_x = torch.sigmoid(vae.decoder(z))
            log_p_x_given_z = -F.binary_cross_entropy(
                recon_x.reshape(x_rep.shape[0], -1), x_rep.reshape(x_rep.shape[0], -1), reduction="none"
            ).sum(dim=-1)
            log_p_x.append(log_p_x_given_z + log_p_z - log_q_z_given_x)  # the 2*pi constants cancel
        log_p_x = torch.cat(log_p_x)
        log_p.append((torch.logsumexp(log_p_x, 0) - np.log(len(log_p_x))).item())
    return np.array(log_p)


def _model(args: argparse.Namespace, device: torch.device):
    from pyrovae import data
    from pyrovae.models import build_vae
    from pyrovae.train import fit
    from pyrovae.train.checkpoint import load_checkpoint

    if args.checkpoint:
        vae, _ = load_checkpoint(args.checkpoint, map_location=device)
        return vae.eval(), f"checkpoint {args.checkpoint}"
    train, _ = data.load_mnist()
    hidden = tuple(w for part in args.hidden for w in part)  # "512,512" and the old "512 512" alike
    vae = build_vae(z_dim=args.z_dim, hidden=hidden)
    fit(vae, train.images[: args.train_n], epochs=1, batch_size=128, device=device, progress=False)
    widths = "-".join(map(str, hidden))
    return vae.eval(), f"MLP 784-{widths}-{args.z_dim}, Bernoulli, 1 epoch on {args.train_n} images"


def gemm_shapes(vae, samples: int, batch_size: int, chunk: int) -> list[tuple[int, int, int]]:
    """``(rows, in, out)`` of every matrix product the estimator makes for one batch: each
    encoder ``nn.Linear`` once on ``batch_size`` rows, and each decoder ``nn.Linear`` on
    ``batch_size * k`` rows for every chunk of ``k`` samples (the last chunk shorter)."""
    def linears(net):
        return [(m.in_features, m.out_features) for m in net.modules() if isinstance(m, torch.nn.Linear)]

    shapes = [(batch_size, i, o) for i, o in linears(vae.encoder)]
    for start in range(0, samples, chunk):
        k = min(chunk, samples - start)
        shapes += [(batch_size * k, i, o) for i, o in linears(vae.decoder)]
    return shapes


def gemm_floor(vae, n: int, samples: int, batch_size: int, chunk: int, device: torch.device, reps: int = 3) -> float:
    """Seconds of only the estimator's matrix products on the same shapes (:func:`gemm_shapes`),
    as ``x @ W.T`` without the bias: best of ``reps`` for one batch, times the number of batches."""
    mats = {shape: (torch.randn(shape[0], shape[1], device=device), torch.randn(shape[2], shape[1], device=device))
            for shape in set(gemm_shapes(vae, samples, batch_size, chunk))}
    products = [mats[shape] for shape in gemm_shapes(vae, samples, batch_size, chunk)]

    def one_batch():
        for a, w in products:
            a @ w.T

    one_batch()
    best = float("inf")
    for _ in range(reps):
        _sync(device)
        t0 = time.perf_counter()
        one_batch()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return best * -(-n // batch_size)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(args: argparse.Namespace) -> dict:
    from pyrovae import data, evaluate
    from pyrovae._util.device import resolve_device
    from pyrovae.likelihoods import Bernoulli

    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    vae, what = _model(args, device)
    if not isinstance(vae.likelihood, Bernoulli):
        raise TypeError("the Pythae-style reference loop is written for a Bernoulli likelihood")
    _, test = data.load_mnist()
    x = data.binarize(test.images[: args.n], "static", seed=0).to(device)
    loop_n = min(args.loop_n, args.n)

    with torch.no_grad():
        evaluate.log_likelihood(vae, x[:2], num_samples=2 * args.chunk or 200)  # warm-up
        _sync(device)
        t0 = time.perf_counter()
        max_elements = args.max_elements or (2**24 if device.type == "cuda" else 2**20)
        log_px, se = evaluate.log_likelihood(vae, x, num_samples=args.samples, batch_size=args.batch_size,
                                             chunk_size=args.chunk or None, max_elements=max_elements)
        _sync(device)
        fast = time.perf_counter() - t0
        x_numel = x[0].numel()
        chunk = args.chunk or max(1, min(args.samples, max_elements // (args.batch_size * x_numel)))
        gemm = gemm_floor(vae, args.n, args.samples, args.batch_size, chunk, device)
        t0 = time.perf_counter()
        ref = pythae_style_nll(vae, x[:loop_n], args.samples, args.loop_batch)
        _sync(device)
        loop = time.perf_counter() - t0
    loop_full = loop * args.n / loop_n
    diff = (log_px[:loop_n].cpu().numpy() - ref)
    result = {
        "model": what,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "n": args.n,
        "samples": args.samples,
        "vectorised_seconds": fast,
        "loop_points_timed": loop_n,
        "loop_seconds_measured": loop,
        "loop_seconds_extrapolated": loop_full,
        "speedup": loop_full / fast,
        "gemm_floor_seconds": gemm,
        "gemm_share": gemm / fast,
        "chunk": chunk,
        "mean_log_px": float(log_px.mean()),
        "mean_stderr": float(se.mean()),
        "mean_abs_diff_vs_loop": float(np.abs(diff).mean()),
    }
    print(f"model: {what}; device {device}, {result['threads']} threads")
    print(f"vectorised log p(x), K={args.samples}, {args.n} points: {fast:.1f}s "
          f"(mean log p(x) {result['mean_log_px']:.2f}, mean se {result['mean_stderr']:.3f})")
    print(f"its matrix products alone, same shapes (chunk {chunk} samples): {gemm:.1f}s, "
          f"{100 * gemm / fast:.0f}% of the estimator's time")
    print(f"per-point loop (Pythae get_nll style): {loop:.1f}s for {loop_n} points, "
          f"extrapolated linearly to {args.n} points: {loop_full:.1f}s")
    print(f"speed-up: {result['speedup']:.1f}x; the two estimates differ by {result['mean_abs_diff_vs_loop']:.3f} nats "
          "on average over the shared points (Monte Carlo noise)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


def parse_args(argv=None) -> argparse.Namespace:
    from pyrovae.cli.args import hidden_widths

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default=None, help="a pyrovae checkpoint (default: train a small model briefly)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--n", type=int, default=10000, help="test points for the vectorised estimator (10000 = all)")
    p.add_argument("--loop-n", type=int, default=100, help="test points timed for the per-point loop (extrapolated)")
    p.add_argument("--samples", type=int, default=5000, help="importance samples K")
    p.add_argument("--batch-size", type=int, default=100, help="data points per batch (vectorised)")
    p.add_argument("--chunk", type=int, default=0, help="samples per decoder call (vectorised; 0 = automatic)")
    p.add_argument("--max-elements", type=int, default=0,
                   help="decoder outputs per call (vectorised; 0 = 2^20 on CPU, 2^24 on CUDA)")
    p.add_argument("--loop-batch", type=int, default=100, help="samples per call in the loop (Pythae's batch_size)")
    p.add_argument("--z-dim", type=int, default=32, help="latent size of the trained model")
    p.add_argument("--hidden", type=hidden_widths, nargs="+", default=[(400,)],
                   help="hidden widths of the trained model, comma-separated like pyrovae train (default 400)")
    p.add_argument("--train-n", type=int, default=10000, help="training images for the brief training")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = leave as is)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="write the result here")
    return p.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
