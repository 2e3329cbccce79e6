"""What each term of the VAE loss does: reconstruction only, KL only, both, and a β sweep.

With a 2-D latent (so the codes can be drawn without projection) three VAEs are trained:

- **reconstruction only** (β = 0): ``VAE(..., beta=0)`` masks the ``"z"`` site, leaving
  E_q[log p(x|z)]. Codes spread out into separated clusters with gaps between them;
- **KL only**: a likelihood whose log-probability is masked (written in this script, four
  lines) leaves only KL(q(z|x) ‖ p(z)). Every code collapses onto the prior and carries
  nothing about x;
- **both** (β = 1, the ELBO): clusters, packed around the origin without gaps.

Then a β sweep (Higgins et al. 2017) on the same model trades one term against the other.
For every setting the script reports, on the test set, the reconstruction error
−E_q[log p(x|z)] and KL(q(z|x) ‖ p(z)) in nats per image.

Run::

    python examples/loss_terms.py --epochs 10
    python examples/loss_terms.py --epochs 1 --subset 500 --test-subset 200 --betas 0.5 2 --out /tmp/x

References:

1. Kingma, D. P. and Welling, M. (2014). Auto-Encoding Variational Bayes. ICLR.
2. Higgins, I. et al. (2017). beta-VAE: Learning Basic Visual Concepts with a Constrained
   Variational Framework. ICLR.
3. Seed article 000 (the three latent pictures: reconstruction only, KL only, both) and seed
   article 001 (β weighting the KL term).
"""

from __future__ import annotations

import argparse

import pyro.distributions as dist

from pyrovae import data, evaluate, inspect, likelihoods, plots
from pyrovae.cli import experiment
from pyrovae.models import build_vae
from pyrovae.train import fit


class KLOnly(likelihoods.Bernoulli):
    """A Bernoulli whose log-probability is masked out, so the ELBO keeps only its KL term."""

    def forward(self, out, event_dim=None) -> dist.Distribution:
        return super().forward(out, event_dim).mask(False)


def _train_and_measure(args, train, test, x_test, beta: float, kl_only: bool = False, z_dim: int = 2):
    vae = build_vae(z_dim=z_dim, hidden=tuple(args.hidden), beta=beta)
    if kl_only:
        vae.likelihood = KLOnly()
    fit(vae, train, test, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, progress=False, device="cpu")
    vae.likelihood = likelihoods.Bernoulli()  # measure every model with the real likelihood
    recon, kl = evaluate.elbo_terms(vae, x_test)  # each (N_test,)
    return vae, {"recon_error": float(-recon.mean()), "kl": float(kl.mean()), "elbo": float((recon - kl).mean())}


def main(args: argparse.Namespace) -> dict:
    run = experiment.start(args)
    train, test = experiment.mnist_subset(args)
    x_test = data.binarize(test.images, "static", seed=0)  # (N_test, 1, 28, 28)

    settings = {"reconstruction only (beta=0)": (0.0, False), "KL only": (1.0, True), "both (beta=1)": (1.0, False)}
    fig = plots.new_figure((15, 4.4))
    three = {}
    for ax, (name, (beta, kl_only)) in zip(fig.subplots(1, 3), settings.items()):
        vae, three[name] = _train_and_measure(args, train, test, x_test, beta, kl_only)
        codes = inspect.encode_dataset(vae, test.images, test.labels)
        plots.latent_scatter(
            codes.loc,
            codes.labels,
            ax=ax,
            title=f"{name}\nrecon err {three[name]['recon_error']:.0f}, KL {three[name]['kl']:.1f} nats",
        )
        print(f"{name}: {three[name]}")
    plots.save(fig, run.path("loss_terms_latents.png"))

    sweep = {}
    for beta in args.betas:
        _, sweep[beta] = _train_and_measure(args, train, test, x_test, beta, z_dim=args.sweep_z_dim)
        print(f"beta={beta:g}: {sweep[beta]}")
    fig = plots.new_figure((6, 4))
    ax = fig.subplots()
    betas = list(sweep)
    ax.plot(betas, [sweep[b]["recon_error"] for b in betas], "o-", label="reconstruction error  -E_q[log p(x|z)]")
    ax.plot(betas, [sweep[b]["kl"] for b in betas], "s-", label="KL(q(z|x) || p(z))")
    ax.set_xscale("log")
    ax.set_xlabel("beta (weight of the KL term)")
    ax.set_ylabel("nats per test image")
    ax.set_title(f"beta sweep, z_dim = {args.sweep_z_dim}")
    ax.legend()
    plots.save(fig, run.path("loss_terms_beta_sweep.png"))
    return run.finish("loss_terms", {"epochs": args.epochs, "latent_2d": three, "sweep_z_dim": args.sweep_z_dim,
                                     "beta_sweep": {f"{b:g}": v for b, v in sweep.items()}}, key="latent_2d")


def _parser() -> argparse.ArgumentParser:
    p = experiment.parser(__doc__, epochs=10, hidden=(512, 256))
    p.add_argument("--betas", type=float, nargs="+", default=[0.1, 0.3, 1.0, 3.0, 10.0], help="KL weights of the sweep")
    p.add_argument("--sweep-z-dim", type=int, default=10, help="latent dimension of the beta sweep")
    return p


if __name__ == "__main__":
    main(_parser().parse_args())
