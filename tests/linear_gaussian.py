r"""A linear-Gaussian VAE, whose evidence and posterior are known in closed form.

.. math::

    z \sim \mathcal{N}(0, I_k), \qquad x \mid z \sim \mathcal{N}(W z + b, \sigma^2 I_D)
    \;\Rightarrow\; p(x) = \mathcal{N}(b, W W^\top + \sigma^2 I_D),

    p(z \mid x) = \mathcal{N}(\Sigma W^\top (x - b) / \sigma^2, \Sigma), \qquad
    \Sigma = (I_k + W^\top W / \sigma^2)^{-1}.

The guide is linear too: ``loc = A x + c`` with a fixed diagonal ``scale``. With orthogonal
columns of W the exact posterior is diagonal, and :func:`exact_guide` makes q equal to it.
Everything is float64 so that closed forms and estimators can be compared tightly.
"""

from __future__ import annotations

import torch
from torch import nn

from pyrovae import VAE, likelihoods, priors


class LinearEncoder(nn.Module):
    """x ``(b, D)`` -> (A x + c, scale), each ``(b, k)``."""

    def __init__(self, A: torch.Tensor, c: torch.Tensor, scale: torch.Tensor) -> None:
        super().__init__()
        self.z_dim, self.x_shape = A.shape[0], (A.shape[1],)
        self.linear = nn.Linear(A.shape[1], A.shape[0]).double()
        with torch.no_grad():
            self.linear.weight.copy_(A)
            self.linear.bias.copy_(c)
        self.register_buffer("scale", scale.double().clone())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loc = self.linear(x)  # (b, k)
        return loc, self.scale.expand_as(loc)


def exact_posterior(
    W: torch.Tensor, b: torch.Tensor, sigma: float, x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior mean ``(N, k)`` and covariance ``(k, k)`` of z given x ``(N, D)``."""
    k = W.shape[1]
    cov = torch.linalg.inv(torch.eye(k, dtype=W.dtype) + W.T @ W / sigma**2)  # (k, k)
    mean = (x - b) @ W @ cov / sigma**2  # (N, k); cov is symmetric
    return mean, cov


def exact_log_px(W: torch.Tensor, b: torch.Tensor, sigma: float, x: torch.Tensor) -> torch.Tensor:
    """log p(x) ``(N,)``."""
    D = W.shape[0]
    cov = W @ W.T + sigma**2 * torch.eye(D, dtype=W.dtype)
    return torch.distributions.MultivariateNormal(b, cov).log_prob(x)


def exact_guide(W: torch.Tensor, b: torch.Tensor, sigma: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(A, c, scale) of the linear guide equal to the exact posterior (needs W^T W diagonal)."""
    _, cov = exact_posterior(W, b, sigma, b[None])
    A = cov @ W.T / sigma**2  # (k, D)
    return A, -A @ b, cov.diagonal().sqrt()


def build(W: torch.Tensor, b: torch.Tensor, sigma: float, A: torch.Tensor, c: torch.Tensor, scale: torch.Tensor) -> VAE:
    """The linear-Gaussian VAE with decoder ``W z + b`` and guide ``N(A x + c, diag scale^2)``."""
    D, k = W.shape
    decoder = nn.Linear(k, D).double()
    with torch.no_grad():
        decoder.weight.copy_(W)
        decoder.bias.copy_(b)
    prior = priors.StandardNormal(k).double()
    return VAE(LinearEncoder(A, c, scale), decoder, prior, likelihoods.Gaussian(scale=sigma), x_shape=(D,), z_dim=k)


def random_problem(D: int = 6, k: int = 2, sigma: float = 0.5, orthogonal: bool = False, seed: int = 0):
    """A random (W, b, sigma); with ``orthogonal`` W's columns are orthogonal (diagonal posterior)."""
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(D, k, generator=g, dtype=torch.float64)
    if orthogonal:
        Q, _ = torch.linalg.qr(W)
        W = Q * torch.linspace(1.5, 0.7, k, dtype=torch.float64)
    b = 0.3 * torch.randn(D, generator=g, dtype=torch.float64)
    return W, b, sigma


def closed_form_elbo(W, b, sigma, A, c, scale, x) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact (E_q[log p(x|z)], KL(q || p(z))) per data point for the linear guide."""
    m = x @ A.T + c  # (N, k)
    S = scale**2  # (k,)
    D = W.shape[0]
    resid = x - m @ W.T - b  # (N, D)
    recon = (-0.5 * D * torch.log(torch.tensor(2 * torch.pi * sigma**2, dtype=x.dtype))
             - 0.5 * (resid**2).sum(1) / sigma**2 - 0.5 * (W**2 * S).sum() / sigma**2)
    kl = 0.5 * (S.sum() + (m**2).sum(1) - len(S) - torch.log(S).sum())
    return recon, kl


def kl_gaussians(m_q, cov_q, m_p, cov_p) -> torch.Tensor:
    """KL(N(m_q, cov_q) || N(m_p, cov_p)) for rows of means ``(N, k)`` and shared covariances."""
    q = torch.distributions.MultivariateNormal(m_q, cov_q)
    p = torch.distributions.MultivariateNormal(m_p, cov_p)
    return torch.distributions.kl_divergence(q, p)
