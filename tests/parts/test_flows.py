"""The IAF guide and the flow prior: log-densities against change of variables (Jacobians by
autograd), normalisation on a grid, identity initialisation, and one SVI step each."""

from __future__ import annotations

import math

import pyro.distributions as dist
import pytest
import torch
from pyro.infer import SVI, Trace_ELBO
from pyro.optim import Adam
from torch import nn

from pyrovae import VAE, likelihoods
from pyrovae.flows import FlowPrior, IAFGuide, context_dim_of, encoder_context
from pyrovae.models import VAEConfig, build_vae
from pyrovae.nets import MLPDecoder, MLPEncoder


def _perturb(module: nn.Module, std: float = 0.3) -> None:
    # move the flows away from their identity start, so the checks see a real bijection
    with torch.no_grad():
        for p in module.parameters():
            p.add_(std * torch.randn_like(p))


def _log_det(fn, u: torch.Tensor) -> torch.Tensor:
    """log |det d fn(u) / du| for each row of ``u`` ``(n, d)``, by autograd."""
    return torch.stack([torch.linalg.slogdet(torch.autograd.functional.jacobian(fn, row))[1] for row in u])


def test_affine_flow_prior_starts_at_standard_normal():
    prior = FlowPrior(3, num_flows=2)
    p = prior()
    assert p.event_shape == (3,) and p.batch_shape == ()
    z = torch.randn(5, 3)
    assert torch.allclose(p.log_prob(z), dist.Normal(0.0, 1.0).log_prob(z).sum(-1), atol=1e-6)


@pytest.mark.parametrize("kind", ["affine", "spline"])
def test_flow_prior_change_of_variables(kind):
    prior = FlowPrior(2, num_flows=2, hidden=(8,), kind=kind)
    _perturb(prior)
    p = prior()

    def f(z):  # z -> u, the direction the density is computed in
        for step in prior.steps:
            z = step(z)
        return z

    z = 1.5 * torch.randn(6, 2)
    u = f(z)
    expected = dist.Normal(0.0, 1.0).log_prob(u).sum(-1) + _log_det(f, z)
    assert torch.allclose(p.log_prob(z.clone()), expected, atol=1e-4)
    # sampling inverts the steps: the sample's density agrees with a fresh evaluation
    zs = p.sample((4,))  # (4, 2)
    assert zs.shape == (4, 2)
    assert torch.allclose(p.log_prob(zs), p.log_prob(zs.clone()), atol=1e-4)


def test_flow_prior_integrates_to_one():
    prior = FlowPrior(2, num_flows=2, hidden=(8,))
    _perturb(prior)
    grid = torch.linspace(-10.0, 10.0, 201)
    zz = torch.cartesian_prod(grid, grid)  # (201^2, 2)
    with torch.no_grad():
        mass = prior().log_prob(zz).exp().sum() * (grid[1] - grid[0]) ** 2
    assert mass.item() == pytest.approx(1.0, abs=2e-3)


def test_iaf_guide_change_of_variables_and_shapes():
    z_dim, context_dim, batch = 2, 3, 4
    guide = IAFGuide(z_dim, context_dim, num_flows=2, hidden=(8,))
    _perturb(guide)
    loc, scale, h = torch.randn(batch, z_dim), 0.5 + torch.rand(batch, z_dim), torch.randn(batch, context_dim)
    q = guide(loc, scale, h)
    assert q.batch_shape == (batch,) and q.event_shape == (z_dim,)
    z = q.rsample((7,))
    assert z.shape == (7, batch, z_dim) and q.log_prob(z).shape == (7, batch)

    # one data point at a time: z = g(u; h) with u ~ N(loc, scale)
    for n in range(batch):
        qn = guide(loc[n : n + 1], scale[n : n + 1], h[n : n + 1])

        def g(u, qn=qn):
            for t in qn.transforms:
                u = t(u)
            return u

        u = loc[n] + scale[n] * torch.randn(3, z_dim)  # (3, z_dim)
        zn = torch.stack([g(row[None])[0] for row in u])
        expected = dist.Normal(loc[n], scale[n]).log_prob(u).sum(-1) - _log_det(lambda r: g(r[None])[0], u)
        assert torch.allclose(qn.log_prob(zn.clone()[:, None]).squeeze(1), expected, atol=1e-4)  # by inversion
    # the sample's own density (cached log-scales) equals the inverted one
    zs = q.sample()
    assert torch.allclose(q.log_prob(zs), q.log_prob(zs.clone()), atol=1e-4)


def test_iaf_guide_starts_at_the_encoder_normal():
    encoder = MLPEncoder((5,), (6,), z_dim=2)
    guide = IAFGuide(2, context_dim_of(encoder), num_flows=3)
    x = torch.rand(4, 5)
    q = guide.encode(encoder, x)
    loc, scale = encoder(x)
    z = torch.randn(4, 2)
    assert torch.allclose(q.log_prob(z), dist.Normal(loc, scale).log_prob(z).sum(-1), atol=1e-5)


def test_encoder_context_for_other_encoders():
    class Tiny(nn.Module):
        z_dim = 3

        def forward(self, x):
            return x[:, :3], torch.ones_like(x[:, :3])

    loc, scale, h = encoder_context(Tiny(), torch.randn(2, 5))
    assert context_dim_of(Tiny()) == 6 and h.shape == (2, 6)
    with pytest.raises(ValueError, match="context"):
        IAFGuide(3, 6)(loc, scale, torch.zeros(2, 4))
    with pytest.raises(ValueError, match="hidden"):
        FlowPrior(4, hidden=(2,))
    with pytest.raises(ValueError, match="kind"):
        FlowPrior(4, kind="planar")


def test_library_encoders_have_the_context_protocol():
    from pyrovae.nets import ConvEncoder, NoisyEncoder, RNNEncoder

    cases = [
        (MLPEncoder((5,), (6, 7), z_dim=2), torch.rand(3, 5), 7),  # the last hidden layer
        (ConvEncoder((1, 8, 8), z_dim=2, channels=(2, 3), hidden=9), torch.rand(3, 1, 8, 8), 9),
        (RNNEncoder(seq_len=4, vocab_size=5, z_dim=2, hidden=6), torch.randint(0, 5, (3, 4)), 12),  # both directions
    ]
    for encoder, x, width in cases:
        assert encoder.context_dim == width == context_dim_of(encoder)
        loc, scale, h = encoder_context(encoder, x)
        assert h.shape == (3, width)
        plain_loc, plain_scale = encoder(x)
        assert torch.equal(loc, plain_loc) and torch.equal(scale, plain_scale)  # one pass, same outputs
        assert torch.equal(encoder.head(h)[0], loc)  # h is what the Gaussian head reads
    noisy = NoisyEncoder(cases[0][0], "flip", 0.5).eval()  # eval: no corruption
    assert context_dim_of(noisy) == 7
    assert torch.equal(encoder_context(noisy, cases[0][1])[2], encoder_context(cases[0][0], cases[0][1])[2])


def test_encoders_without_the_protocol_fall_back_or_fail_clearly():
    from pyrovae.nets import NoisyEncoder

    class Plain(nn.Module):
        z_dim, x_shape = 3, (5,)

        def forward(self, x):
            return x[:, :3], torch.ones_like(x[:, :3])

    noisy = NoisyEncoder(Plain(), "flip", 0.1)  # wraps an encoder without context: (loc, log scale)
    assert noisy.context_dim is None and context_dim_of(noisy) == 6

    class HalfProtocol(Plain):
        context_dim = 4  # declares a width but cannot produce h

    with pytest.raises(TypeError, match="HalfProtocol declares context_dim but has no forward_with_context"):
        encoder_context(HalfProtocol(), torch.randn(2, 5))

    class Anonymous(nn.Module):
        def forward(self, x):
            return x, torch.ones_like(x)

    with pytest.raises(ValueError, match="cannot tell the context width of Anonymous"):
        context_dim_of(Anonymous())


def _small_vae(**kw) -> VAE:
    x_shape, z_dim = (6,), 2
    encoder = MLPEncoder(x_shape, (8,), z_dim)
    return VAE(encoder, MLPDecoder(z_dim, (8,), x_shape), likelihood=likelihoods.Bernoulli(), **kw)


@pytest.mark.parametrize("which", ["guide", "prior"])
def test_one_svi_step_trains_the_flow(which):
    kw = {"guide_flow": IAFGuide(2, 8, hidden=(4,))} if which == "guide" else {"prior": FlowPrior(2, hidden=(4,))}
    vae = _small_vae(**kw)
    flow = vae.guide_flow if which == "guide" else vae.prior
    _perturb(flow, 0.1)  # off the identity start, so every flow weight gets a gradient
    x = (torch.rand(10, 6) < 0.5).float()
    elbo = Trace_ELBO()
    loss = elbo.differentiable_loss(vae.model, vae.guide, x, num_data=100)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in flow.parameters())
    before = [p.detach().clone() for p in flow.parameters()]
    svi = SVI(vae.model, vae.guide, Adam({"lr": 1e-2}), elbo)
    assert math.isfinite(svi.step(x, num_data=100))
    assert all(not torch.equal(b, p) for b, p in zip(before, flow.parameters()))  # the param store saw them


def test_builder_fields_round_trip():
    config = VAEConfig(x_shape=(6,), z_dim=2, hidden=(8,), prior="flow", guide_flows=2, flow_hidden=(4,))
    vae = build_vae(VAEConfig.from_dict(config.to_dict()))
    assert isinstance(vae.prior, FlowPrior) and isinstance(vae.guide_flow, IAFGuide)
    q = vae.encode(torch.rand(3, 6))
    assert isinstance(q, dist.TransformedDistribution) and q.batch_shape == (3,) and q.event_shape == (2,)
    assert build_vae(x_shape=(6,), z_dim=2, hidden=(8,)).guide_flow is None
    with pytest.raises(ValueError, match="guide_flows"):
        VAEConfig(guide_flows=-1)
