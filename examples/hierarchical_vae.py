"""A two-layer VAE on MNIST: Burda et al.'s 784-200-200-100-100-50 network, bottom-up or Ladder guide.

The model is p(z2) p(z1|z2) p(x|z1) (:class:`pyrovae.models.HierarchicalVAE`); the guide is
either Burda et al.'s bottom-up q(z1|x) q(z2|z1) or the Ladder VAE's top-down q(z2|x) q(z1|z2, x),
which shares the model's z2 -> z1 path. The script trains with :func:`pyrovae.fit` (KL warm-up
and free bits keep the top layer alive), then reports the test ELBO, the importance-sampled
log p(x) with its standard error, the KL of each layer and the active units of each layer, and
draws

- samples from the model, and
- the top layer's part: each row decodes one z2 ~ p(z2), each column holds z1's noise fixed
  (z1 = mu(z2) + sigma(z2) * eps, one eps per column), so down a column only z2 changes.

Run::

    python examples/hierarchical_vae.py --epochs 50 --guide top_down --checkpoint runs/hvae.pt
    python examples/hierarchical_vae.py --epochs 1 --subset 500 --test-subset 100 --ll-samples 10 --out /tmp/x

A run given ``--checkpoint`` writes it after every epoch and, run again, resumes from it
bit for bit (``fit(checkpoint=..., resume=True)``), so a run of many hours can be made in pieces.
``--z-dims`` and ``--hidden`` choose the network (one comma-separated group of widths per layer),
``--loss iwae --particles K`` the IWAE bound, ``--final-lr`` a geometric learning-rate decay.
The long runs of the likelihood table::

    # Burda et al.'s network at IWAE K=5
    python examples/hierarchical_vae.py --loss iwae --particles 5 --epochs 300 --final-lr 1e-4 \
        --threads 1 --checkpoint runs/hier/burda-iwae5.pt --ll-samples 5000 --ll-examples 10000 \
        --out runs/hier/burda-iwae5
    # wider, top-down, residual, GELU, same objective
    python examples/hierarchical_vae.py --guide top_down --combine residual --activation gelu \
        --hidden 512,512 256,256 --loss iwae --particles 5 --epochs 300 --final-lr 1e-4 \
        --warmup-epochs 10 --threads 1 --checkpoint runs/hier/wide-iwae5.pt \
        --ll-samples 5000 --ll-examples 10000 --out runs/hier/wide-iwae5

Measured on one CPU thread, 20 epochs with 5 epochs of KL warm-up, 500 test images, K = 500
(``--epochs 20 --warmup-epochs 5 --threads 1``, then the flags below):

========================================================= ========= ============ ===============
flags                                                     test ELBO log p(x)     active (z1, z2)
========================================================= ========= ============ ===============
(none: Burda's network, bottom-up, tanh)                  -117.58   -110.59±0.02 (58, 0)
``--guide top_down --free-bits 1``                        -136.88   -131.21±0.02 (83, 1)
``--guide top_down --combine residual --activation gelu`` -100.14   -92.70±0.02  (39, 1)
========================================================= ========= ============ ===============

The figures in ``examples/figures`` are from the last run. Burda et al.'s 82.90 nats need
their 3^8-epoch schedule and the IWAE bound (``--loss iwae``).

References:

1. Burda, Y., Grosse, R. and Salakhutdinov, R. (2016). Importance Weighted Autoencoders. ICLR.
2. Sønderby, C. K., Raiko, T., Maaløe, L., Sønderby, S. K. and Winther, O. (2016). Ladder
   Variational Autoencoders. NeurIPS.
3. Kingma, D. P. et al. (2016). Improved Variational Inference with Inverse Autoregressive Flow.
   NeurIPS (free bits).
"""

from __future__ import annotations

import argparse

from pyrovae import data, evaluate, fit, inspect, plots
from pyrovae.cli import experiment
from pyrovae.cli.args import nonnegative_float, positive_float, positive_int
from pyrovae.models import build_hierarchical_vae
from pyrovae.train import schedules


def main(args: argparse.Namespace) -> dict:
    run = experiment.start(args)
    train, test = experiment.mnist_subset(args)
    x_test = data.binarize(test.images, "static", seed=0)  # (N_test, 1, 28, 28), fixed draw
    hvae = build_hierarchical_vae(guide=args.guide, combine=args.combine, activation=args.activation,
                                  free_bits=args.free_bits, z_dims=args.z_dims, hidden=args.hidden)
    schedule = schedules.exponential_lr(args.lr, args.final_lr, args.epochs) if args.final_lr else None
    history = fit(hvae, train, test, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, loss=args.loss,
                  num_particles=args.particles, lr_schedule=schedule, warmup_epochs=args.warmup_epochs,
                  device=args.device, seed=args.seed, checkpoint=args.checkpoint, resume=args.checkpoint is not None)
    hvae.cpu().eval()

    x_ll = x_test[: args.ll_examples]
    ll = evaluate.log_likelihood(hvae, x_ll, num_samples=args.ll_samples, batch_size=50)
    kl = hvae.kl_per_layer(x_test, num_samples=10).mean(0)  # (L,)
    active = hvae.active_units(x_test)

    plots.image_grid(hvae.sample(64), nrow=16, title="samples from p(z2) p(z1|z2), decoded (mean of p(x|z1))",
                     path=run.path("hierarchical_vae_samples.png"))
    grid = inspect.top_layer_grid(hvae, args.rows, args.columns)  # (rows * columns, 1, 28, 28)
    plots.image_grid(grid, nrow=args.columns, row_labels=[f"z2 #{i + 1}" for i in range(args.rows)],
                     title="rows: one z2 ~ p(z2) each; columns: z1's noise held fixed",
                     path=run.path("hierarchical_vae_top_layer.png"))
    return run.finish("hierarchical_vae", {
        "epochs": args.epochs, "guide": args.guide, "loss": args.loss, "particles": args.particles,
        "free_bits": args.free_bits, "config": hvae.config, "train_seconds": sum(history.seconds),
        "train_elbo_per_epoch": history.train_elbo, "test_elbo_per_epoch": history.test_elbo,
        "test_elbo": float(evaluate.elbo(hvae, x_test, num_samples=10).mean()),
        "log_px": float(ll.log_px.mean()), "log_px_stderr": float(ll.stderr.pow(2).sum().sqrt() / len(x_ll)),
        "log_px_examples": len(x_ll), "log_px_samples": args.ll_samples,
        "kl_per_layer": kl.tolist(), "active_units_per_layer": list(active), "z_dims": list(hvae.z_dims),
    }, key="log_px")


def _parser() -> argparse.ArgumentParser:
    p = experiment.parser(__doc__, epochs=10)
    p.add_argument("--guide", choices=("bottom_up", "top_down"), default="bottom_up", help="which guide")
    p.add_argument("--combine", choices=("precision", "residual"), default="precision",
                   help="top-down guide: precision-weighted (LVAE) or residual (NVAE) posterior")
    p.add_argument("--activation", default="tanh", help="hidden non-linearity (Burda et al.: tanh)")
    p.add_argument("--loss", default="trace", help="objective by name: trace, meanfield or iwae")
    p.add_argument("--z-dims", type=positive_int, nargs="+", default=[100, 50], help="latent sizes, z1 first")
    p.add_argument("--hidden", type=_widths, nargs="+", default=[(200, 200), (100, 100)], metavar="W,W",
                   help="guide MLP widths per layer, comma-separated, one group per latent layer (the model mirrors "
                        "them); Burda et al.: 200,200 100,100")
    p.add_argument("--particles", type=positive_int, default=None, help="K of --loss iwae (default: the loss's own)")
    p.add_argument("--lr", type=positive_float, default=1e-3, help="Adam learning rate")
    p.add_argument("--final-lr", type=positive_float, default=None,
                   help="decay the learning rate geometrically to this at the last epoch (default: constant)")
    p.add_argument("--warmup-epochs", type=nonnegative_float, default=0.0, help="epochs of linear KL warm-up")
    p.add_argument("--free-bits", type=nonnegative_float, default=0.0, help="KL floor per layer, nats (0 = off)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--checkpoint", default=None, help="write a checkpoint there every epoch and resume from it")
    p.add_argument("--ll-samples", type=positive_int, default=500, help="K, importance samples of log p(x)")
    p.add_argument("--ll-examples", type=positive_int, default=500, help="test images scored for log p(x)")
    p.add_argument("--rows", type=positive_int, default=6, help="z2 draws in the top-layer figure")
    p.add_argument("--columns", type=positive_int, default=8, help="fixed z1 noises in the top-layer figure")
    return p


def _widths(text: str) -> tuple[int, ...]:
    """``"200,200"`` -> ``(200, 200)``, for ``--hidden``."""
    try:
        widths = tuple(int(w) for w in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 200,200, got {text!r}") from None
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"widths must be positive integers, got {text!r}")
    return widths


if __name__ == "__main__":
    main(_parser().parse_args())
