"""KL directions: closed forms, Monte Carlo, the toy asymmetry, minibatch wake-φ, the VAE study."""

from __future__ import annotations

import json
import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import ReweightedWakeSleep

from pyrovae import kl, plots
from pyrovae.infer import MinibatchRWS
from pyrovae.kl import fit as kl_fit
from pyrovae.kl import guides as kl_guides
from pyrovae.kl import toy as kl_toy


# ---------------------------------------------------------------------------------------
# 1. KL in both directions
# ---------------------------------------------------------------------------------------
def _kl_diag_normal(m1, s1, m2, s2):
    # KL(N(m1, s1^2) || N(m2, s2^2)), summed over dims: the textbook formula
    return (torch.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5).sum(-1)


def test_kl_both_directions_match_closed_form_and_monte_carlo_within_3_se():
    m1, s1 = torch.tensor([0.0, 1.0]), torch.tensor([1.0, 0.5])
    m2, s2 = torch.tensor([1.0, -1.0]), torch.tensor([2.0, 0.8])
    p, q = dist.Normal(m1, s1).to_event(1), dist.Normal(m2, s2).to_event(1)
    fwd, rev = kl.kl_both(p, q)
    assert fwd.exact and rev.exact
    assert torch.allclose(fwd.value, _kl_diag_normal(m1, s1, m2, s2), atol=1e-5)
    assert torch.allclose(rev.value, _kl_diag_normal(m2, s2, m1, s1), atol=1e-5)
    assert float(fwd.value) != pytest.approx(float(rev.value), abs=0.1)  # the asymmetry is real here
    for a, b, truth in ((p, q, fwd.value), (q, p, rev.value)):
        mc = kl.kl(a, b, num_samples=20000, exact=False)
        assert not mc.exact and float(mc.stderr) > 0
        assert abs(float(mc.value - truth)) < 3 * float(mc.stderr)


def test_kl_monte_carlo_fallback_for_mixture_and_asymmetry_report():
    p = kl_toy.bimodal_target()
    q = dist.Normal(torch.zeros(2), torch.ones(2)).to_event(1)
    rep = kl.asymmetry(p, q, num_samples=5000)
    assert not rep.forward.exact and not rep.reverse.exact  # no closed form for a mixture
    assert float(rep.forward.stderr) > 0 and float(rep.reverse.stderr) > 0
    assert float(rep.difference) == pytest.approx(float(rep.forward.value - rep.reverse.value))
    assert "KL(p||q)" in str(rep) and "±" in str(rep)
    with pytest.raises(NotImplementedError):
        kl.kl(p, q, exact=True)


def test_kl_rejects_bad_input():
    q = dist.Normal(torch.zeros(2), torch.ones(2)).to_event(1)
    with pytest.raises(ValueError, match="Distribution"):
        kl.kl(torch.zeros(2), q)
    with pytest.raises(ValueError, match="event shape"):
        kl.kl(dist.Normal(torch.zeros(3), torch.ones(3)).to_event(1), q)
    with pytest.raises(ValueError, match="direction"):
        kl.fit_gaussian(q, "sideways")
    with pytest.raises(ValueError, match="alpha"):
        kl.fit_gaussian(q, "renyi")
    with pytest.raises(ValueError, match="dim"):
        kl.fit_gaussian(lambda z: -z.pow(2).sum(-1), "reverse")


# ---------------------------------------------------------------------------------------
# 2. The toy: mode-seeking against mass-covering, asserted across 3 seeds
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_toy_reverse_seeks_a_mode_forward_covers_both(seed):
    res = kl_toy.run_toy(seed=seed, alphas=(), rws=False, steps=400, kl_samples=10000, grid_size=0)
    modes, spread = res.modes, res.target_scale  # (2, 2), (2,)
    rev, fwd = res.reverse, res.forward
    # reverse: mean within 0.5 of one mode, narrower than the target on every axis
    assert (rev.q.mean - modes).norm(dim=-1).min() < 0.5
    assert (rev.q.stddev < spread).all()
    assert rev.modes_covered == 1
    # forward: mean between the modes (projection onto the segment in its middle half,
    # within 0.5 of the segment) and spread covering both (each within 2 sd)
    a, b = modes
    t = float((fwd.q.mean - a) @ (b - a) / (b - a).pow(2).sum())
    assert 0.25 < t < 0.75
    assert (fwd.q.mean - (a + t * (b - a))).norm() < 0.5
    assert fwd.modes_covered == 2
    # each fit wins, by more than 3 standard errors, on the direction it minimised
    se = lambda x, y: 3 * math.hypot(float(x.stderr), float(y.stderr))
    assert float(fwd.kl_pq.value) < float(rev.kl_pq.value) - se(fwd.kl_pq, rev.kl_pq)
    assert float(rev.kl_qp.value) < float(fwd.kl_qp.value) - se(rev.kl_qp, fwd.kl_qp)
    # and the reverse fit pays only ~log 2 for dropping one of two equal modes
    assert float(rev.kl_qp.value) == pytest.approx(math.log(2), abs=0.05)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_forward_from_unnormalised_density_uses_wake_phi_and_matches_moments(seed):
    p = kl_toy.bimodal_target()
    pyro.set_rng_seed(seed)
    log_p_tilde = lambda z: p.log_prob(z) + 7.3
    q = kl.fit_gaussian(log_p_tilde, "forward", dim=2, steps=400)
    # the forward-KL optimum among Gaussians matches p's moments: mean 0, sd sqrt(0.25 + 2.25)
    assert q.mean.abs().max() < 0.3
    assert torch.allclose(q.stddev, torch.full((2,), math.sqrt(2.5)), rtol=0.15)


def test_forward_ml_equals_sample_moments():
    samples = torch.randn(3000, 2) * torch.tensor([0.5, 2.0]) + torch.tensor([1.0, -1.0])
    q = kl_fit.fit_forward_ml(samples, steps=300)
    assert torch.allclose(q.mean, samples.mean(0), atol=0.05)
    assert torch.allclose(q.stddev, samples.std(0), rtol=0.05)


def test_toy_with_renyi_sweep_and_figure(tmp_path):
    res = kl_toy.run_toy(seed=0, alphas=(0.0,), rws=False, steps=200, kl_samples=2000, grid_size=40)
    assert set(res.fits) == {"reverse KL(q||p)", "forward KL(p||q), ML", "Rényi α=0"}
    g = res.grid
    cell = float(g["xs"][1] - g["xs"][0]) ** 2
    assert float(g["p"].sum()) * cell == pytest.approx(1.0, abs=0.02)  # the grid holds p's mass
    fig = plots.kl_fits(res, path=tmp_path / "toy.png")
    assert len(fig.axes) == 3 and (tmp_path / "toy.png").stat().st_size > 10000
    row = res.to_dict()["fits"][0]
    assert {"kl_pq", "kl_qp", "modes_covered", "loc", "scale"} <= set(row)


# ---------------------------------------------------------------------------------------
# 3. Minibatch wake-φ on a linear-Gaussian model with a closed-form posterior
# ---------------------------------------------------------------------------------------
W = torch.tensor([0.5, -1.0, 2.0])  # decoder weights: x | z ~ N(W z, I)


def _model(x, num_data=None):
    w = pyro.param("w", W.clone())
    with pyro.plate("data", num_data or len(x), subsample=torch.arange(len(x))):
        z = pyro.sample("z", dist.Normal(0.0, 1.0).expand([1]).to_event(1))  # (..., B, 1)
        pyro.sample("x", dist.Normal(z * w, 1.0).to_event(1), obs=x)


def _guide(x, num_data=None):
    a = pyro.param("a", torch.tensor([0.1, -0.2, 0.3]))
    log_s = pyro.param("log_s", torch.tensor(-0.3))
    with pyro.plate("data", num_data or len(x), subsample=torch.arange(len(x))):
        pyro.sample("z", dist.Normal((x * a).sum(-1, keepdim=True), log_s.exp()).to_event(1))


def _direct_rws(x, z, scale):
    # the per-data-point estimator written out by hand; z: (K, B, 1) fixed particles
    w, a, log_s = pyro.param("w"), pyro.param("a"), pyro.param("log_s")
    log_p = dist.Normal(0.0, 1.0).log_prob(z[..., 0]) + dist.Normal(z * w, 1.0).log_prob(x).sum(-1)  # (K, B)
    log_q = dist.Normal((x * a).sum(-1), log_s.exp()).log_prob(z[..., 0])  # (K, B)
    K = z.shape[0]
    theta = -scale * (torch.logsumexp(log_p - log_q.detach(), 0) - math.log(K)).sum()
    wbar = torch.softmax((log_p - log_q).detach(), 0)
    phi = -scale * (wbar * log_q).sum()
    return log_p, log_q, theta, phi


def test_wake_phi_matches_direct_per_datum_computation_with_subsample_scale():
    x = torch.randn(4, 3)
    est = MinibatchRWS(num_particles=6, max_plate_nesting=1)
    N = 100
    pyro.set_rng_seed(3)
    wts = est.per_datum_weights(_model, _guide, x, num_data=N)
    z = wts.z["z"]  # (K, B, 1)
    assert z.shape == (6, 4, 1) and not z.requires_grad and wts.scale == N / 4
    log_p, log_q, theta, phi = _direct_rws(x, z, N / 4)
    assert torch.allclose(wts.log_p, log_p, atol=1e-5) and torch.allclose(wts.log_q, log_q, atol=1e-5)
    params = [pyro.param(n).unconstrained() for n in ("w", "a", "log_s")]
    direct_grads = torch.autograd.grad(theta + phi, params)
    pyro.set_rng_seed(3)  # the same particles again
    loss = est.differentiable_loss(_model, _guide, x, num_data=N)
    assert float(loss.detach()) == pytest.approx(float(theta), rel=1e-5)  # the value is -L_K
    grads = torch.autograd.grad(loss, params)
    for g, d in zip(grads, direct_grads):
        assert torch.allclose(g, d, rtol=1e-4, atol=1e-5)
    pyro.set_rng_seed(3)
    assert float(est.wake_phi_loss(_model, _guide, x, num_data=N)) == pytest.approx(float(phi), rel=1e-5)


def test_wake_phi_scales_once_by_num_data_over_batch():
    x = torch.randn(5, 3)
    est = MinibatchRWS(num_particles=4, max_plate_nesting=1)
    pyro.set_rng_seed(1)
    full = est.loss(_model, _guide, x)
    pyro.set_rng_seed(1)
    scaled = est.loss(_model, _guide, x, num_data=1000)
    assert scaled == pytest.approx(full * 1000 / 5, rel=1e-5)  # linear in N/B, not inside the log-sum-exp
    pyro.set_rng_seed(1)
    phi = est.wake_phi_loss(_model, _guide, x)
    pyro.set_rng_seed(1)
    assert float(est.wake_phi_loss(_model, _guide, x, num_data=1000)) == pytest.approx(float(phi) * 200, rel=1e-5)


def test_wake_phi_equals_pyro_rws_for_one_data_point():
    x = torch.randn(1, 3)
    mine = MinibatchRWS(num_particles=8, max_plate_nesting=1)
    ref = ReweightedWakeSleep(num_particles=8, insomnia=1.0, vectorize_particles=True, max_plate_nesting=1)
    pyro.set_rng_seed(7)
    theta_ref, phi_ref = ref.loss(_model, _guide, x)
    pyro.set_rng_seed(7)
    assert mine.loss(_model, _guide, x) == pytest.approx(float(theta_ref), rel=1e-5)
    pyro.set_rng_seed(7)
    assert float(mine.wake_phi_loss(_model, _guide, x)) == pytest.approx(float(phi_ref), rel=1e-5)


def test_wake_phi_gradient_estimates_inclusive_kl_gradient():
    # with many particles the wake-phi gradient approaches grad of sum_n KL(p(z|x_n) || q(z|x_n))
    x = torch.tensor([[0.5, -1.0, 1.5], [-0.3, 0.2, -2.0]])
    est = MinibatchRWS(num_particles=40000, max_plate_nesting=1)
    pyro.param("a", torch.tensor([0.6, 0.2, -0.1]))  # guide means ~0.7 away from the posterior means
    pyro.set_rng_seed(0)
    phi = est.wake_phi_loss(_model, _guide, x, num_data=20)  # B = 2: scale 10
    params = [pyro.param(n).unconstrained() for n in ("a", "log_s")]
    g_est = torch.autograd.grad(phi, params)
    v = 1.0 / (1.0 + W.pow(2).sum())  # posterior variance
    m = v * (x @ W)  # (B,) posterior means
    a, log_s = pyro.param("a"), pyro.param("log_s")
    exact = 10 * _kl_diag_normal(m[:, None], v.sqrt().expand(2, 1), (x @ a)[:, None], log_s.exp().expand(2, 1)).sum()
    g_exact = torch.autograd.grad(exact, params)
    for g, e in zip(g_est, g_exact):
        assert torch.allclose(g, e, rtol=0.05, atol=0.05 * float(e.abs().max()))


def test_wake_phi_refuses_global_sites_and_mixed_scales():
    def model_global(x, num_data=None):
        mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
        with pyro.plate("data", len(x)):
            pyro.sample("x", dist.Normal(mu, 1.0), obs=x[:, 0])

    def guide_global(x, num_data=None):
        pyro.sample("mu", dist.Normal(pyro.param("m", torch.tensor(0.0)), 1.0))

    with pytest.raises(ValueError, match="outside plate"):
        MinibatchRWS(3).loss(model_global, guide_global, torch.randn(4, 3))
    beta_model = pyro.poutine.scale(_model, scale=1.0)  # sanity: a common scale is fine
    MinibatchRWS(3).loss(beta_model, _guide, torch.randn(4, 3))

    def beta_guide(x, num_data=None):
        with pyro.poutine.scale(scale=0.5):
            _guide(x, num_data)

    with pytest.raises(ValueError, match="scales"):
        MinibatchRWS(3).loss(_model, beta_guide, torch.randn(4, 3))
    with pytest.raises(ValueError, match="num_particles"):
        MinibatchRWS(1)


# ---------------------------------------------------------------------------------------
# 4. The VAE comparison, tiny, and the CLI
# ---------------------------------------------------------------------------------------
def test_compare_guides_tiny_run_and_posterior_figure(mnist_small, tmp_path):
    x_train, _, x_test, _ = mnist_small
    comp = kl_guides.compare_guides(x_train[:300], x_test[:40], epochs=2, z_dim=2, hidden=(32,), particles=3,
                                     batch_size=50, eval_samples=64, seed=0)
    assert list(comp.results) == ["elbo", "iwae", "rws"]
    for r in comp.results.values():
        assert len(r.history) == 2 and all(math.isfinite(v) for v in r.history.train_elbo)
        assert -800 < r.elbo < 0 and r.log_px < 0
        assert r.reverse_gap > 0  # IS log p(x) sits above the ELBO (gap ≈ KL(q||p))
        assert 0 <= r.inclusive_kl <= math.log(64) + 1e-6  # SNIS inclusive KL is capped at log S
        assert 1 <= r.ess <= 64
    assert "| RWS" in comp.table()
    paired = comp.paired()
    assert set(paired) == {"iwae", "rws"}
    r_e, r_i = comp.results["elbo"], comp.results["iwae"]
    assert paired["iwae"]["d_log_px"] == pytest.approx(r_i.log_px - r_e.log_px, abs=1e-3)
    digits = comp.test_x[:2]
    grids = [kl_guides.posterior_grids(r.vae, digits, size=40) for r in comp.results.values()]
    for column in grids:
        for g in column:
            area = float((g.z0[1] - g.z0[0]) * (g.z1[1] - g.z1[0]))
            assert float(g.log_post.exp().sum()) * area == pytest.approx(1.0, abs=1e-4)
            assert g.kl_q_p >= 0 and g.kl_p_q >= 0
    fig = plots.posterior_vs_guides(digits, grids, list(kl_guides.METHODS.values()), path=tmp_path / "post.png")
    assert len(fig.axes) >= 8


class _LinearDecoder(torch.nn.Module):
    def __init__(self, w: torch.Tensor, b: torch.Tensor) -> None:
        super().__init__()
        self.w, self.b = w, b  # (D, z_dim), (D,)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z @ self.w.T + self.b  # (batch, D)


class _PosteriorEncoder(torch.nn.Module):
    # the exact posterior of the linear-Gaussian model, its mean shifted by `shift` posterior
    # standard deviations in every dim (0: the exact guide)
    def __init__(self, w: torch.Tensor, b: torch.Tensor, sigma: float, shift: float) -> None:
        super().__init__()
        self.w, self.b, self.sigma, self.shift = w, b, sigma, shift
        self.var = 1.0 / (1.0 + (w * w).sum(0) / sigma**2)  # (z_dim,) diagonal: orthogonal columns

    def forward(self, x: torch.Tensor):
        loc = self.var * ((x - self.b) @ self.w) / self.sigma**2 + self.shift * self.var.sqrt()  # (batch, z_dim)
        return loc, self.var.sqrt().expand_as(loc)


@pytest.mark.parametrize("shift", [0.0, 0.5])
def test_importance_stats_on_linear_gaussian_vae(shift):
    from pyrovae import VAE, likelihoods, priors

    w, b, sigma = torch.tensor([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]]), torch.tensor([0.5, -0.5, 0.0]), 0.5
    vae = VAE(_PosteriorEncoder(w, b, sigma, shift), _LinearDecoder(w, b), priors.StandardNormal(2),
              likelihoods.Gaussian(scale=sigma), x_shape=(3,), z_dim=2)
    x = torch.randn(6, 3)
    marginal = dist.MultivariateNormal(b, w @ w.T + sigma**2 * torch.eye(3))
    stats = kl_guides.importance_stats(vae, x, num_samples=4000, chunk=1000)
    # inclusive KL(p(z|x) || q): equal variances, means `shift` sd apart in each of 2 dims
    exact_kl = 2 * shift**2 / 2
    # IS error of log p(x) ~ sqrt((e^{2 shift^2} - 1) / S) ~ 0.013 nats here: allow 0.05
    assert torch.allclose(stats["log_px"], marginal.log_prob(x), atol=0.05)
    assert torch.allclose(stats["inclusive_kl"], torch.full((6,), exact_kl), atol=0.02 + 0.1 * exact_kl)
    if shift == 0:
        assert torch.allclose(stats["ess"], torch.full((6,), 4000.0), rtol=1e-3)  # all weights equal
    else:
        assert (stats["ess"] < 4000 * 0.9).all()


def test_cli_kl_demo_and_compare_write_figure_and_json(tmp_path):
    from pyrovae.cli import main

    assert main(["kl-demo", "--out", str(tmp_path / "demo"), "--steps", "150", "--alphas", "0"]) == 0
    numbers = json.loads((tmp_path / "demo" / "kl_toy.json").read_text())
    assert len(numbers["fits"]) == 4 and (tmp_path / "demo" / "kl_toy.png").exists()
    assert main(["kl-compare", "--epochs", "1", "--subset", "200", "--test-subset", "20", "--hidden", "16",
                 "--eval-samples", "16", "--particles", "2", "--digits", "2", "--methods", "elbo", "rws",
                 "--out", str(tmp_path / "cmp")]) == 0
    numbers = json.loads((tmp_path / "cmp" / "kl_compare.json").read_text())
    assert set(numbers["results"]) == {"elbo", "rws"}
    assert (tmp_path / "cmp" / "posterior_vs_guides.png").exists()
