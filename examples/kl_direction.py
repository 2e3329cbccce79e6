"""Which way round the KL goes: mode-seeking reverse KL against mass-covering forward KL.

Two parts, both from :mod:`pyrovae.kl.toy` and :mod:`pyrovae.kl.guides`:

1. **Toy.** One diagonal Gaussian q is fitted to a mixture of two well-separated 2-D
   Gaussians p, by reverse KL(q‖p) (SVI with Trace_ELBO, what a VAE does), by forward
   KL(p‖q) (maximum likelihood on samples of p, and wake-φ from p's density), and along the
   Rényi-α path between them. Each fit is scored in both directions, with the number of p's
   modes it covers (Deep Learning book, Fig. 3.6).
2. **VAE.** The same 2-D-latent VAE is trained three ways on MNIST, with identical
   initialisation: Trace_ELBO (reverse KL), the IWAE bound (RenyiELBO, α = 0) and reweighted
   wake-sleep (an inclusive-KL guide update). For each guide: test ELBO, importance-sampled
   log p(x), the reverse gap log p(x) − ELBO and a self-normalised estimate of the inclusive
   KL(p(z|x)‖q), with the true posterior drawn against each guide for a few test digits.

Run::

    python examples/kl_direction.py --epochs 5
    python examples/kl_direction.py --epochs 1 --subset 300 --test-subset 50 --steps 50 --eval-samples 50 --out /tmp/x

References:

1. Goodfellow, I., Bengio, Y. and Courville, A. (2016). Deep Learning, §3.13, Fig. 3.6.
2. Minka, T. (2005). Divergence measures and message passing. Microsoft Research TR.
3. Li, Y. and Turner, R. E. (2016). Rényi Divergence Variational Inference. NeurIPS.
4. Burda, Y., Grosse, R. and Salakhutdinov, R. (2016). Importance Weighted Autoencoders. ICLR.
5. Bornschein, J. and Bengio, Y. (2015). Reweighted Wake-Sleep. ICLR.
6. Seed article 004, side note 3: the two directions of the KL.
"""

from __future__ import annotations

import argparse

from pyrovae import plots
from pyrovae.cli import experiment
from pyrovae.kl import guides as kl_guides
from pyrovae.kl import toy as kl_toy


def main(args: argparse.Namespace) -> dict:
    run = experiment.start(args)
    toy = kl_toy.run_toy(seed=args.seed, steps=args.steps)
    plots.kl_fits(toy, path=run.path("kl_toy.png"))
    print(toy.table())

    train, test = experiment.mnist_subset(args)
    comp = kl_guides.compare_guides(train.images, test.images, epochs=args.epochs, z_dim=2, hidden=tuple(args.hidden),
                                     particles=args.particles, batch_size=args.batch_size, seed=args.seed,
                                     eval_samples=args.eval_samples)
    digits = comp.test_x[: args.digits]  # (digits, 1, 28, 28)
    plots.posterior_vs_guides(digits, [kl_guides.posterior_grids(r.vae, digits) for r in comp.results.values()],
                              [kl_guides.METHODS[m] for m in comp.results], path=run.path("kl_vae_posteriors.png"))
    print(comp.table())
    return run.finish("kl_direction", {
        "toy": toy.to_dict(),
        "toy_modes_covered": {"reverse": toy.reverse.modes_covered, "forward": toy.forward.modes_covered},
        "vae": comp.to_dict(),
        "vae_table": comp.table(),
    }, key="toy_modes_covered")


def _parser() -> argparse.ArgumentParser:
    p = experiment.parser(__doc__, epochs=5, hidden=(200,))
    p.add_argument("--steps", type=int, default=600, help="SVI steps per toy fit")
    p.add_argument("--particles", type=int, default=5, help="z samples per data point per step (every method)")
    p.add_argument("--eval-samples", type=int, default=1000, help="importance samples per test digit")
    p.add_argument("--digits", type=int, default=4, help="test digits in the posterior figure")
    return p


if __name__ == "__main__":
    main(_parser().parse_args())
