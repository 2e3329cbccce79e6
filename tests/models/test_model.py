"""The VAE's model and guide under Pyro's ELBOs: every prior and likelihood with MLP and conv
nets, minibatch scaling, beta, leading particle dims, and clear errors for bad input."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import SVI, JitTrace_ELBO, RenyiELBO, Trace_ELBO, TraceMeanField_ELBO
from pyro.optim import Adam
from torch import nn
from torch.distributions import kl_divergence

from pyrovae import VAE, likelihoods, nets, priors
from pyrovae.models import VAEConfig, build_vae

X_SHAPE = (1, 8, 8)
Z = 3
B = 6

PRIORS = {
    "standard_normal": lambda enc: priors.StandardNormal(Z),
    "learned_gaussian": lambda enc: priors.LearnedGaussian(Z),
    "mog": lambda enc: priors.MixtureOfGaussians(Z, 4),
    "vamp": lambda enc: priors.VampPrior(enc, 5, X_SHAPE),
    "user_laplace": lambda enc: dist.Laplace(torch.zeros(Z), torch.ones(Z)).to_event(1),
}
LIKELIHOODS = {
    "bernoulli": (likelihoods.Bernoulli, None),
    "continuous_bernoulli": (likelihoods.ContinuousBernoulli, None),
    "gaussian_fixed": (lambda: likelihoods.Gaussian(scale=0.2), None),
    "gaussian_learned": (lambda: likelihoods.Gaussian(), None),
    "laplace": (lambda: likelihoods.Laplace(), None),
    "categorical": (lambda: likelihoods.Categorical(4), 4),
}


def make_data(name: str, n: int = B) -> torch.Tensor:
    if name == "bernoulli":
        return torch.bernoulli(torch.full((n, *X_SHAPE), 0.3))
    if name == "categorical":
        return torch.randint(0, 4, (n, *X_SHAPE)).float()
    return torch.rand(n, *X_SHAPE)


def make_vae(prior: str, lik: str, net: str) -> VAE:
    make_lik, k = LIKELIHOODS[lik]
    if net == "mlp":
        enc = nets.MLPEncoder(X_SHAPE, (16,), Z)
        dec = nets.MLPDecoder(Z, (16,), X_SHAPE, num_classes=k)
    else:
        enc = nets.ConvEncoder(X_SHAPE, Z, channels=(4, 8), hidden=16)
        dec = nets.ConvDecoder(Z, X_SHAPE, channels=(8, 4), hidden=16, num_classes=k)
    return VAE(enc, dec, PRIORS[prior](enc), make_lik())


@pytest.mark.parametrize("net", ["mlp", "conv"])
@pytest.mark.parametrize("lik", sorted(LIKELIHOODS))
@pytest.mark.parametrize("prior", sorted(PRIORS))
def test_svi_step_every_prior_and_likelihood(prior, lik, net):
    vae = make_vae(prior, lik, net)
    x = make_data(lik)
    svi = SVI(vae.model, vae.guide, Adam({"lr": 1e-2}), Trace_ELBO())
    before = {k: v.detach().clone() for k, v in vae.state_dict().items()}
    loss = svi.step(x, num_data=100)
    assert torch.isfinite(torch.tensor(loss))
    changed = [k for k, v in vae.state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.startswith("encoder") for k in changed) and any(k.startswith("decoder") for k in changed)
    if prior in ("learned_gaussian", "mog", "vamp"):
        assert any(k.startswith("prior.") and "encoder" not in k for k in changed), "prior parameters did not train"
    if lik in ("gaussian_learned", "laplace"):
        assert "likelihood.raw_scale" in changed

    tr = poutine.trace(vae.model).get_trace(x, num_data=100)
    tr.compute_log_prob()
    assert tr.nodes["z"]["value"].shape == (B, Z)
    assert tr.nodes["z"]["fn"].event_shape == (Z,)
    assert tr.nodes["x"]["fn"].event_shape == X_SHAPE
    assert tr.nodes["x"]["log_prob"].shape == (B,)
    assert tr.nodes["z"]["scale"] == pytest.approx(100 / B)
    gtr = poutine.trace(vae.guide).get_trace(x, num_data=100)
    assert gtr.nodes["z"]["value"].shape == (B, Z)
    assert vae.sample(4).shape == (4, *X_SHAPE)
    assert vae.reconstruct(x).shape == (B, *X_SHAPE)


@pytest.mark.parametrize(
    "elbo",
    [
        TraceMeanField_ELBO(),
        JitTrace_ELBO(),
        Trace_ELBO(num_particles=4, vectorize_particles=True),
        RenyiELBO(alpha=0.0, num_particles=4, vectorize_particles=True),
        RenyiELBO(alpha=0.5, num_particles=3),
    ],
    ids=["meanfield", "jit", "vectorized", "iwae", "renyi"],
)
def test_other_pyro_elbos(elbo):
    vae = make_vae("mog", "bernoulli", "mlp")
    svi = SVI(vae.model, vae.guide, Adam({"lr": 1e-2}), elbo)
    x = make_data("bernoulli")
    losses = [svi.step(x, num_data=50) for _ in range(3)]
    assert all(torch.isfinite(torch.tensor(losses)))


class ProtocolEncoder(nn.Module):
    """A user's encoder with no z_dim/x_shape attributes, following the contract only."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(5, 2 * Z)

    def forward(self, x):
        loc, raw = self.lin(x).chunk(2, -1)
        return loc, nn.functional.softplus(raw) + 1e-3


class StrictDecoder(nn.Module):
    """A user's decoder that only accepts the plain (batch, z_dim) protocol."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(Z, 5)

    def forward(self, z):
        assert z.dim() == 2, f"decoder got z of shape {tuple(z.shape)}"
        return self.lin(z)


def test_leading_particle_dims_with_user_networks():
    vae = VAE(ProtocolEncoder(), StrictDecoder(), priors.StandardNormal(Z), likelihoods.Gaussian(1.0), x_shape=(5,))
    x = torch.randn(7, 5)
    elbo = Trace_ELBO(num_particles=4, vectorize_particles=True, max_plate_nesting=1)
    loss = SVI(vae.model, vae.guide, Adam({"lr": 1e-2}), elbo).step(x)
    assert torch.isfinite(torch.tensor(loss))
    z = torch.randn(4, 7, Z)
    assert vae.decode(z).batch_shape == (4, 7)
    assert vae.decode(z).event_shape == (5,)


def test_num_data_scales_the_loss():
    vae = make_vae("standard_normal", "bernoulli", "mlp")
    x = make_data("bernoulli")
    elbo = Trace_ELBO()
    pyro.set_rng_seed(1)
    unscaled = elbo.loss(vae.model, vae.guide, x)
    pyro.set_rng_seed(1)
    scaled = elbo.loss(vae.model, vae.guide, x, num_data=60)
    assert scaled == pytest.approx(60 / B * unscaled, rel=1e-5)
    with pytest.raises(ValueError, match="num_data=3 is smaller than the batch size 6"):
        elbo.loss(vae.model, vae.guide, x, num_data=3)


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0, 2.0])
def test_beta_scales_the_kl_term(beta):
    vae = make_vae("standard_normal", "bernoulli", "mlp")
    vae.beta = beta
    x = make_data("bernoulli")
    pyro.set_rng_seed(3)
    loss = TraceMeanField_ELBO().loss(vae.model, vae.guide, x)
    pyro.set_rng_seed(3)
    with torch.no_grad():
        q = vae.encode(x)
        z = q.rsample()  # the same draw the guide makes
        recon = vae.decode(z).log_prob(x).sum()
        kl = kl_divergence(q, vae.prior()).sum()
    # beta = 0 leaves only the reconstruction; beta = 1 is the analytic ELBO
    assert loss == pytest.approx(float(-(recon - beta * kl)), rel=1e-5)


def test_beta_must_be_nonnegative():
    vae = make_vae("standard_normal", "bernoulli", "mlp")
    with pytest.raises(ValueError, match="beta must be >= 0"):
        vae.beta = -1


def test_wrong_shape_is_a_clear_error():
    vae = make_vae("standard_normal", "bernoulli", "mlp")
    with pytest.raises(ValueError, match=r"x has shape \(6, 1, 28, 28\) but this VAE expects .*1, 8, 8"):
        Trace_ELBO().loss(vae.model, vae.guide, torch.zeros(6, 1, 28, 28))


def test_grey_levels_to_bernoulli_is_a_clear_error():
    vae = make_vae("standard_normal", "bernoulli", "mlp")
    with pytest.raises(ValueError, match="Bernoulli likelihood needs binary data"):
        Trace_ELBO().loss(vae.model, vae.guide, torch.rand(B, *X_SHAPE))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_data_is_a_clear_error(bad):
    vae = make_vae("standard_normal", "gaussian_fixed", "mlp")
    x = torch.rand(B, *X_SHAPE)
    x[0, 0, 0, 0] = bad
    with pytest.raises(ValueError, match="NaN or inf"):
        Trace_ELBO().loss(vae.model, vae.guide, x)


def test_out_of_support_for_categorical_and_continuous_bernoulli():
    with pytest.raises(ValueError, match=r"Categorical\(4\) needs integer class indices"):
        likelihoods.Categorical(4).check(torch.tensor([0.0, 4.0]))
    with pytest.raises(ValueError, match=r"ContinuousBernoulli needs data in \[0, 1\]"):
        likelihoods.ContinuousBernoulli().check(torch.tensor([0.5, 1.5]))


@pytest.mark.parametrize("z_dim", [0, -2])
def test_z_dim_below_one_is_rejected(z_dim):
    with pytest.raises(ValueError, match="z_dim must be a positive integer"):
        nets.MLPEncoder(X_SHAPE, (8,), z_dim)
    with pytest.raises(ValueError, match="z_dim must be a positive integer"):
        priors.StandardNormal(z_dim)
    with pytest.raises(ValueError, match="z_dim must be a positive integer"):
        VAEConfig(z_dim=z_dim)


def test_unknown_names_are_rejected():
    with pytest.raises(ValueError, match="unknown prior 'cauchy'"):
        build_vae(prior="cauchy")
    with pytest.raises(ValueError, match="unknown likelihood 'poisson'"):
        build_vae(likelihood="poisson")
    with pytest.raises(ValueError, match="unknown likelihood 'poisson'"):
        likelihoods.by_name("poisson")


def test_mismatched_latent_sizes_are_rejected():
    enc = nets.MLPEncoder(X_SHAPE, (8,), 3)
    with pytest.raises(ValueError, match="decoder expects z_dim=4"):
        VAE(enc, nets.MLPDecoder(4, (8,), X_SHAPE))
    with pytest.raises(ValueError, match="prior is over 5 latent dimensions"):
        VAE(enc, nets.MLPDecoder(3, (8,), X_SHAPE), priors.StandardNormal(5))
    with pytest.raises(ValueError, match="event_shape"):
        priors.as_prior(dist.Normal(torch.zeros(3), 1.0))  # batch shape (3,), not event shape


def test_conv_nets_need_divisible_sizes():
    with pytest.raises(ValueError, match="divisible by 4"):
        nets.ConvEncoder((1, 10, 10), 2)


def test_a_stale_param_store_does_not_shadow_a_new_model():
    x = make_data("bernoulli")
    old = make_vae("learned_gaussian", "bernoulli", "mlp")
    SVI(old.model, old.guide, Adam({"lr": 1e-2}), Trace_ELBO()).step(x)
    new = make_vae("learned_gaussian", "bernoulli", "mlp")
    new.sync_param_store()
    store = pyro.get_param_store()
    assert store["decoder$$$net.0.weight"] is new.decoder.net[0].weight
    assert store["prior.loc"] is new.prior.loc
