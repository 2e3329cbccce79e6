"""The workhorse check of the core: train the library's model and guide on data from a
linear-Gaussian VAE, whose exact posterior and log p(x) are closed-form, and compare."""

from __future__ import annotations

import pytest
import torch
from pyro.infer import TraceMeanField_ELBO
from torch import nn

from pyrovae import VAE, likelihoods, priors
from pyrovae.train import fit
from tests.linear_gaussian import closed_form_elbo, exact_log_px, exact_posterior, random_problem


class TrainableLinearEncoder(nn.Module):
    """q(z|x) = N(A x + c, diag(softplus(r)^2)): the exact posterior's family when W^T W is diagonal."""

    def __init__(self, D: int, k: int) -> None:
        super().__init__()
        self.z_dim, self.x_shape = k, (D,)
        self.linear = nn.Linear(D, k).double()
        self.raw_scale = nn.Parameter(torch.zeros(k, dtype=torch.float64))

    def forward(self, x):
        loc = self.linear(x)  # (b, k)
        return loc, nn.functional.softplus(self.raw_scale).expand_as(loc)


@pytest.mark.filterwarnings("ignore:.*was not registered in the param store")
def test_trained_guide_matches_exact_posterior_and_elbo_matches_log_px():
    W, b, sigma = random_problem(D=6, k=2, sigma=0.5, orthogonal=True, seed=1)
    g = torch.Generator().manual_seed(2)
    z = torch.randn(2000, 2, generator=g, dtype=torch.float64)
    x = z @ W.T + b + sigma * torch.randn(2000, 6, generator=g, dtype=torch.float64)  # (N, D)

    decoder = nn.Linear(2, 6).double()
    with torch.no_grad():
        decoder.weight.copy_(W)
        decoder.bias.copy_(b)
    decoder.requires_grad_(False)  # the generative model is the known one; only the guide learns
    encoder = TrainableLinearEncoder(6, 2)
    vae = VAE(encoder, decoder, priors.StandardNormal(2).double(), likelihoods.Gaussian(scale=sigma))
    loss = TraceMeanField_ELBO(num_particles=16, vectorize_particles=True)
    for lr in (3e-2, 3e-3):  # a coarse then a fine phase, so Adam's noise settles near the optimum
        fit(vae, x, epochs=8, batch_size=250, binarize=None, loss=loss, lr=lr, device="cpu", progress=False)

    mean, cov = exact_posterior(W, b, sigma, x)
    with torch.no_grad():
        loc, scale = encoder(x)
    # guide mean within 0.05 everywhere (posterior sds are ~0.3-0.6), guide sd within 3% of exact
    assert (loc - mean).abs().max() < 0.05
    torch.testing.assert_close(scale[0], cov.diagonal().sqrt(), rtol=0.03, atol=0)
    # the exact posterior is in the guide's family, so the ELBO gap closes: within 0.01 nats on average
    recon, kl = closed_form_elbo(W, b, sigma, encoder.linear.weight.detach(), encoder.linear.bias.detach(),
                                 scale[0], x)
    gap = exact_log_px(W, b, sigma, x) - (recon - kl)  # (N,) = KL(q || p(z|x)) >= 0
    assert gap.min() > -1e-9
    assert gap.mean() == pytest.approx(0.0, abs=0.01)
