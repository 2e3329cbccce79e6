"""The one posterior summary (pyrovae.evaluate.posterior) and the collapse diagnostics built on
it, for the three kinds of guide: diagonal Normal, IAF flow (Monte Carlo moments) and the
Autoencoder's point mass. Every case has a known answer.

The flow cases use an *affine* IAF: zero MADE weights and chosen biases make each step
``z -> exp(l) * z + m`` whatever x is, so q(z|x) is again a diagonal Normal with known
moments while still going through the flow code path (``TransformedDistribution``, no
closed-form mean). Everything is float64.
"""

from __future__ import annotations

import math

import pyro
import pytest
import torch

from pyrovae import evaluate, inspect, likelihoods, nets, priors
from pyrovae.evaluate.posterior import encode_all, guide_kind, moments
from pyrovae.flows import IAFGuide
from pyrovae.models import VAE, Autoencoder
from tests.linear_gaussian import LinearEncoder

D_X, Z = 5, 4
F64 = {"dtype": torch.float64}
SHIFTS = (torch.tensor([0.5, -1.0, 0.2, 0.3], **F64), torch.tensor([1.0, 0.0, -0.4, 0.1], **F64))  # m of each step
LOG_SCALES = (torch.tensor([math.log(3.0), 0.2, -0.5, 0.0], **F64), torch.tensor([0.1, -0.3, 0.4, 0.2], **F64))  # l
# composite map of the two steps: z = a * z0 + b with a = exp(l1 + l2), b = exp(l2) m1 + m2
A_FLOW = torch.exp(LOG_SCALES[0] + LOG_SCALES[1])
B_FLOW = torch.exp(LOG_SCALES[1]) * SHIFTS[0] + SHIFTS[1]


def _encoder(collapsed: bool = True, scale: torch.Tensor | None = None) -> LinearEncoder:
    """loc = A x + c; with ``collapsed``, rows 2 and 3 of A are zero: z[2], z[3] ignore x."""
    g = torch.Generator().manual_seed(0)
    A = torch.randn(Z, D_X, generator=g, dtype=torch.float64)
    if collapsed:
        A[2:] = 0
    c = torch.tensor([0.1, -0.2, 0.3, 0.0], dtype=torch.float64)
    return LinearEncoder(A, c, torch.full((Z,), 0.5, dtype=torch.float64) if scale is None else scale)


def _affine_iaf() -> IAFGuide:
    guide = IAFGuide(Z, 2 * Z, num_flows=2).double()
    with torch.no_grad():
        for step, m, log_s in zip(guide.steps, SHIFTS, LOG_SCALES):
            step.nn.layers[-1].bias.copy_(torch.cat([m, log_s]))  # (mean, log-scale) per dim; weights are 0
    return guide


def _decoder() -> torch.nn.Module:
    return nets.MLPDecoder(Z, (8,), (D_X,)).double()


def _data(n: int) -> torch.Tensor:
    return torch.randn(n, D_X, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def _flow_vae(encoder: LinearEncoder) -> VAE:
    return VAE(encoder, _decoder(), priors.StandardNormal(Z).double(), likelihoods.Gaussian(1.0),
               guide_flow=_affine_iaf())


def _equivalent_normal_vae(encoder: LinearEncoder) -> VAE:
    """The plain-Normal VAE whose q(z|x) equals the affine flow's: loc' = a loc + b, scale' = a scale."""
    A, c = encoder.linear.weight.detach(), encoder.linear.bias.detach()
    twin = LinearEncoder(A_FLOW[:, None] * A, A_FLOW * c + B_FLOW, A_FLOW * encoder.scale)
    return VAE(twin, _decoder(), priors.StandardNormal(Z).double(), likelihoods.Gaussian(1.0))


# ---------------------------------------------------------------------------------------
# the summary itself
# ---------------------------------------------------------------------------------------
def test_the_three_kinds_of_guide_are_told_apart():
    enc, x = _encoder(), _data(3)
    normal = VAE(enc, _decoder(), priors.StandardNormal(Z).double(), likelihoods.Gaussian(1.0))
    assert guide_kind(normal.encode(x)) == "normal"
    assert guide_kind(_flow_vae(enc).encode(x)) == "monte_carlo"
    assert guide_kind(Autoencoder(enc, _decoder(), likelihood=likelihoods.Gaussian(1.0)).encode(x)) == "point_mass"


def test_affine_flow_moments_are_exact():
    enc, x = _encoder(collapsed=False), _data(50)
    summary = encode_all(_flow_vae(enc), x, batch_size=16)  # uneven batches
    loc, scale = enc(x)
    assert summary.kind == "monte_carlo" and summary.loc.shape == summary.scale.shape == (50, Z)
    # the shared noise is standardised per dimension, so an affine map's moments come out exact
    assert torch.allclose(summary.loc, A_FLOW * loc + B_FLOW, atol=1e-10)
    assert torch.allclose(summary.scale, A_FLOW * scale, atol=1e-10)


def test_monte_carlo_moments_of_a_nonlinear_flow_match_a_large_independent_sample():
    enc, x = _encoder(collapsed=False), _data(6)
    guide = IAFGuide(Z, 2 * Z, num_flows=2, hidden=(8,)).double()
    with torch.no_grad():
        for p in guide.parameters():
            p.add_(0.5 * torch.randn_like(p))  # a genuinely non-linear, x-dependent flow
    vae = VAE(enc, _decoder(), priors.StandardNormal(Z).double(), likelihoods.Gaussian(1.0), guide_flow=guide)
    got = encode_all(vae, x, num_samples=4096)
    with torch.no_grad():
        z = vae.encode(x).sample((100_000,))  # (S, 6, Z)
    ref_mean, ref_sd = z.mean(0), z.std(0)
    # standard errors: sd/64 for the 4096-draw mean, sd/316 for the reference; allow 0.1 sd
    assert ((got.loc - ref_mean).abs() < 0.1 * ref_sd).all()
    assert ((got.scale - ref_sd).abs() < 0.1 * ref_sd).all()
    # deterministic: the same noise on every call
    assert torch.equal(encode_all(vae, x, num_samples=4096).loc, got.loc)


def test_point_mass_summary_is_the_code_with_zero_spread():
    enc, x = _encoder(), _data(10)
    ae = Autoencoder(enc, _decoder(), likelihood=likelihoods.Gaussian(1.0))
    summary = moments(ae.encode(x))
    assert summary.kind == "point_mass"
    assert torch.equal(summary.loc, enc(x)[0]) and torch.equal(summary.scale, torch.zeros(10, Z, dtype=torch.float64))
    codes = inspect.encode_dataset(ae, x)
    assert codes.kind == "point_mass" and float(codes.scale.abs().max()) == 0.0


def test_encode_dataset_honours_the_flow():
    enc, x = _encoder(collapsed=False), _data(20)
    codes = inspect.encode_dataset(_flow_vae(enc), x, labels=torch.arange(20))
    loc, _ = enc(x)
    assert codes.kind == "monte_carlo" and codes.labels.tolist() == list(range(20))
    assert torch.allclose(codes.loc, A_FLOW * loc + B_FLOW, atol=1e-10)  # not the encoder's loc


# ---------------------------------------------------------------------------------------
# collapse diagnostics under an IAF guide
# ---------------------------------------------------------------------------------------
def test_iaf_guide_collapsed_dims_are_inactive_and_activity_is_the_flows():
    enc, x = _encoder(), _data(300)
    vae = _flow_vae(enc)
    activity = evaluate.unit_activity(vae, x)
    loc, _ = enc(x)
    # Var_x(a loc + b) = a^2 Var_x(loc); the base Normal's activity would miss the factor a^2 (9 for z[0])
    assert torch.allclose(activity, A_FLOW**2 * loc.var(0), rtol=1e-8, atol=1e-12)
    assert activity[2] == 0 and activity[3] == 0  # shared noise: exactly 0, not Monte Carlo noise
    assert evaluate.active_units(vae, x) == 2
    report = evaluate.collapse_report(vae, x)
    assert "2 of 4 latent dimensions are active" in report
    assert "Collapsed (2): z[2], z[3]." in report and "Active (2): z[0], z[1]." in report


def test_iaf_guide_kl_per_dim_matches_the_closed_form_and_is_zero_where_q_is_the_prior():
    # z[2], z[3]: constant base N(c, s^2) chosen so that the flow maps it onto N(0, 1) = p(z_d)
    scale = torch.tensor([0.5, 0.5, 1.0, 1.0], dtype=torch.float64) / torch.cat([torch.ones(2), A_FLOW[2:]])
    enc = _encoder(scale=scale)
    with torch.no_grad():
        enc.linear.bias[2:] = -B_FLOW[2:] / A_FLOW[2:]
    vae, x = _flow_vae(enc), _data(40)
    per_dim = evaluate.kl_per_dim(vae, x)
    loc, s = enc(x)
    exact = torch.distributions.kl_divergence(torch.distributions.Normal(A_FLOW * loc + B_FLOW, A_FLOW * s),
                                              torch.distributions.Normal(0.0, 1.0))
    assert torch.allclose(per_dim, exact, atol=1e-9)
    assert float(per_dim[:, 2:].abs().max()) < 1e-9  # collapsed dims carry no KL
    assert float(per_dim[:, :2].min()) > 0.1


def test_iaf_guide_mutual_information_equals_the_equivalent_normal_guides():
    enc, x = _encoder(), _data(200)
    flow, twin = _flow_vae(enc), _equivalent_normal_vae(enc)
    pyro.set_rng_seed(5)
    got = evaluate.aggregate_posterior(flow, x, num_samples=2, batch_size=200)  # flow densities, pair by pair
    pyro.set_rng_seed(5)
    want = evaluate.aggregate_posterior(twin, x, num_samples=2, batch_size=200)  # the Normal mixture's matmul
    # one batch each, so both draw the same base noise: the estimates agree up to rounding
    assert got.mutual_information == pytest.approx(want.mutual_information, abs=1e-6)
    assert got.aggregate_kl == pytest.approx(want.aggregate_kl, abs=1e-6)
    assert got.mutual_information + got.aggregate_kl == pytest.approx(got.mean_kl, abs=1e-9)
    assert 0.5 < got.mutual_information < math.log(200)
    # more batches: the flow path stitches the (c, N) table from per-batch densities
    pyro.set_rng_seed(5)
    batched = evaluate.aggregate_posterior(flow, x, num_samples=2, batch_size=64)
    assert batched.mutual_information == pytest.approx(want.mutual_information, abs=0.15)  # fresh draws: MC noise


# ---------------------------------------------------------------------------------------
# collapse diagnostics under the Autoencoder's point mass
# ---------------------------------------------------------------------------------------
def test_autoencoder_collapse_diagnostics():
    enc, x = _encoder(), _data(100)
    ae = Autoencoder(enc, _decoder(), likelihood=likelihoods.Gaussian(1.0))
    activity = evaluate.unit_activity(ae, x)
    assert torch.allclose(activity, enc(x)[0].var(0), rtol=1e-12)
    assert activity[2] == 0 and activity[3] == 0 and evaluate.active_units(ae, x) == 2
    with pytest.raises(ValueError, match="point mass"):
        evaluate.kl_per_dim(ae, x)
    # a deterministic encoder with distinct codes holds all log N nats of the data set
    info = evaluate.aggregate_posterior(ae, x)
    assert info.mutual_information == pytest.approx(math.log(100), abs=1e-12)
    assert info.aggregate_kl == math.inf and info.mean_kl == math.inf
    report = evaluate.collapse_report(ae, x)
    assert "Collapsed (2): z[2], z[3]." in report and "point mass" in report
    assert "mean KL" not in report  # no KL column: it is infinite


def test_autoencoder_mutual_information_is_the_entropy_of_the_codes():
    x = _data(60)
    enc = _encoder()
    with torch.no_grad():
        enc.linear.weight.zero_()  # every code is c: fully collapsed
    ae = Autoencoder(enc, _decoder(), likelihood=likelihoods.Gaussian(1.0))
    assert evaluate.mutual_information(ae, x) == 0.0
    assert evaluate.active_units(ae, x) == 0

    class TwoCodes(torch.nn.Module):  # a one-bit code: x[:, 0] > 0 or not
        z_dim, x_shape = Z, (D_X,)

        def forward(self, x):
            loc = (x[:, :1] > 0).to(x.dtype).expand(-1, Z)
            return loc, torch.ones_like(loc)

    ae = Autoencoder(TwoCodes(), _decoder(), likelihood=likelihoods.Gaussian(1.0))
    p = float((x[:, 0] > 0).double().mean())
    assert evaluate.mutual_information(ae, x) == pytest.approx(-p * math.log(p) - (1 - p) * math.log(1 - p), abs=1e-12)


def test_posterior_grid_uses_the_flow_density_and_refuses_a_point_mass():
    enc = LinearEncoder(torch.randn(2, D_X, dtype=torch.float64), torch.zeros(2, dtype=torch.float64),
                        torch.tensor([0.4, 0.7], dtype=torch.float64))
    guide = IAFGuide(2, 4, num_flows=1).double()
    with torch.no_grad():
        guide.steps[0].nn.layers[-1].bias.copy_(torch.tensor([0.3, -0.2, math.log(2.0), 0.0], **F64))
    vae = VAE(enc, nets.MLPDecoder(2, (8,), (D_X,)).double(), priors.StandardNormal(2).double(),
              likelihoods.Gaussian(1.0), guide_flow=guide)
    x = _data(1)
    g = inspect.posterior_grid(vae, x[0], n=61)
    with torch.no_grad():
        loc, scale = enc(x)
    want_loc = torch.tensor([2.0, 1.0], dtype=torch.float64) * loc[0] + torch.tensor([0.3, -0.2], dtype=torch.float64)
    assert torch.allclose(g.q_loc, want_loc, atol=1e-10)
    assert torch.allclose(g.q_scale, torch.tensor([2.0, 1.0], dtype=torch.float64) * scale[0], atol=1e-10)
    # the grid density of q is the flow's: the Normal with those moments, up to grid normalisation
    zz = torch.stack(torch.meshgrid(g.z1, g.z0, indexing="ij")[::-1], -1)  # (n, n, 2) as (z0, z1)
    exact = torch.distributions.Normal(want_loc, g.q_scale).log_prob(zz).sum(-1)
    diff = g.log_q - exact
    assert float(diff.max() - diff.min()) < 1e-8  # equal up to the normalising constant
    ae = Autoencoder(enc, nets.MLPDecoder(2, (8,), (D_X,)).double(), likelihood=likelihoods.Gaussian(1.0))
    with pytest.raises(ValueError, match="point mass"):
        inspect.posterior_grid(ae, x[0])
