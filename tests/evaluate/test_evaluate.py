"""Evaluation against closed form on a linear-Gaussian VAE, and collapse diagnostics on MNIST.

Tolerances are stated next to each assertion; everything linear-Gaussian is float64.
"""

from __future__ import annotations

import math

import pyro
import pytest
import torch
from torch import nn

from pyrovae import VAE, evaluate, likelihoods, nets, priors
from pyrovae.evaluate.importance import _Stream
from pyrovae.train import fit
from tests import linear_gaussian as lg
from tests.small_models import trained_vae


def _off_guide(W, b, sigma, seed=1):
    # the exact posterior mean map, perturbed, with scales 1.3x the posterior's (a guide a
    # little broader than p(z|x), so the importance weights have finite variance)
    A, c, _scale = lg.exact_guide(W, b, sigma)
    g = torch.Generator().manual_seed(seed)
    A = A + 0.05 * torch.randn(A.shape, generator=g, dtype=A.dtype)
    _, cov = lg.exact_posterior(W, b, sigma, b[None])
    return A, c + 0.05, 1.3 * cov.diagonal().sqrt()


def _data(W, b, sigma, n, seed=2):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, W.shape[1], generator=g, dtype=W.dtype)
    return z @ W.T + b + sigma * torch.randn(n, W.shape[0], generator=g, dtype=W.dtype)


def test_streaming_log_mean_exp_matches_direct_computation():
    lw = 30 * torch.randn(4, 1000, dtype=torch.float64) + torch.arange(4.0, dtype=torch.float64)[:, None] * 100
    s = _Stream(4, torch.device("cpu"))
    for chunk in lw.split(77, dim=1):  # uneven chunks; the running max changes between them
        s.update(chunk)
    log_px, se = s.log_mean_exp()
    direct = torch.logsumexp(lw, 1) - math.log(1000)
    w = torch.exp(lw - lw.max(1, keepdim=True).values)
    direct_se = w.std(1) / math.sqrt(1000) / w.mean(1)
    assert torch.allclose(log_px, direct, atol=1e-9)
    assert torch.allclose(se, direct_se, rtol=1e-6)


def test_streaming_ess_and_inclusive_kl_match_direct_computation():
    lw = 5 * torch.randn(3, 800, dtype=torch.float64) + torch.tensor([[0.0], [300.0], [-300.0]], dtype=torch.float64)
    s = _Stream(3, torch.device("cpu"))
    for chunk in lw.split(123, dim=1):  # the running maximum moves between chunks
        s.update(chunk)
    w = torch.softmax(lw, 1)  # (3, 800) self-normalised weights
    log_px = torch.logsumexp(lw, 1) - math.log(800)
    assert torch.allclose(s.ess(), 1.0 / (w * w).sum(1), rtol=1e-9)
    assert torch.allclose(s.inclusive_kl(), (w * lw).sum(1) - log_px, atol=1e-8)
    # the SNIS inclusive KL is log K - H(wbar): never above log K
    entropy = -(w * w.log()).sum(1)
    assert torch.allclose(s.inclusive_kl(), math.log(800) - entropy, atol=1e-8)


def test_importance_stats_agree_with_log_likelihood():
    W, b, sigma = lg.random_problem(D=6, k=2)
    vae = lg.build(W, b, sigma, *_off_guide(W, b, sigma))
    x = _data(W, b, sigma, 8)
    torch.manual_seed(0)
    stats = evaluate.importance_stats(vae, x, num_samples=600, batch_size=3, chunk=250)  # uneven chunks
    torch.manual_seed(0)
    log_px, _ = evaluate.log_likelihood(vae, x, num_samples=600, batch_size=3, chunk_size=250)
    assert set(stats) == {"log_px", "inclusive_kl", "ess"} and stats["ess"].shape == (8,)
    assert torch.allclose(stats["log_px"], log_px.cpu(), atol=1e-10)  # the same streams, the same draws
    assert bool(((stats["ess"] >= 1) & (stats["ess"] <= 600)).all())
    assert bool(((stats["inclusive_kl"] >= 0) & (stats["inclusive_kl"] <= math.log(600))).all())
    with pytest.raises(ValueError, match="num_samples must be >= 2"):
        evaluate.importance_stats(vae, x, num_samples=1)


def test_log_likelihood_is_exact_when_the_guide_is_the_posterior():
    W, b, sigma = lg.random_problem(D=5, k=3, orthogonal=True)
    vae = lg.build(W, b, sigma, *lg.exact_guide(W, b, sigma))
    x = _data(W, b, sigma, 10)
    log_px, se = evaluate.log_likelihood(vae, x, num_samples=50)
    # every weight equals p(x): the estimate is exact up to float64 rounding
    assert torch.allclose(log_px, lg.exact_log_px(W, b, sigma, x), atol=1e-8)
    assert float(se.max()) < 1e-6
    assert float(evaluate.elbo_gap(vae, x, num_samples=50).abs().max()) < 1e-8


def test_log_likelihood_within_three_standard_errors_of_exact():
    W, b, sigma = lg.random_problem(D=6, k=2)
    vae = lg.build(W, b, sigma, *_off_guide(W, b, sigma))
    x = _data(W, b, sigma, 20)
    exact = lg.exact_log_px(W, b, sigma, x)
    log_px, se = evaluate.log_likelihood(vae, x, num_samples=3000, batch_size=7, chunk_size=400)
    assert log_px.shape == se.shape == (20,)
    z = (log_px - exact) / se
    assert float(z.abs().max()) < 3.0, z  # each point within 3 standard errors
    assert float(se.max()) < 0.05  # and the errors are small: the guide is close
    # the K-sample bound sits below log p(x) in expectation: on average, not above it by > 1 se
    assert float(z.mean()) < 1.0


def test_the_estimator_checks_the_data_once_and_leaves_pyros_validation_as_it_was():
    from pyro.infer.util import is_validation_enabled

    from pyrovae.evaluate.importance import _importance_streams

    W, b, sigma = lg.random_problem(D=5, k=3, orthogonal=True)
    vae = lg.build(W, b, sigma, *lg.exact_guide(W, b, sigma))
    x = _data(W, b, sigma, 9)
    for enabled in (True, False):
        with pyro.validation_enabled(enabled):
            for _stream in _importance_streams(vae, x, 20, batch_size=4):
                assert is_validation_enabled() is enabled  # the chunks' switch ends before each yield
            with pytest.raises(ValueError, match=r"NaN|finite"):  # bad data still stop it, up front
                evaluate.log_likelihood(vae, x.clone().index_fill_(0, torch.tensor([3]), float("nan")), 20)


def test_log_likelihood_progress_bar_counts_batches(capsys):
    W, b, sigma = lg.random_problem(D=5, k=3, orthogonal=True)
    vae = lg.build(W, b, sigma, *lg.exact_guide(W, b, sigma))
    x = _data(W, b, sigma, 10)
    log_px, _ = evaluate.log_likelihood(vae, x, num_samples=50, batch_size=4, progress=True)
    assert torch.allclose(log_px, lg.exact_log_px(W, b, sigma, x), atol=1e-8)  # the bar changes nothing
    err = capsys.readouterr().err
    assert "log p(x), K=50" in err and "3/3" in err  # 10 points in batches of 4


def test_elbo_terms_sum_to_the_elbo_and_match_closed_form():
    W, b, sigma = lg.random_problem(D=6, k=2)
    A, c, scale = _off_guide(W, b, sigma)
    vae = lg.build(W, b, sigma, A, c, scale)
    x = _data(W, b, sigma, 30)
    terms = evaluate.elbo_terms(vae, x, num_samples=4000, batch_size=8)
    recon, kl = terms  # the two-term unpacking still works
    assert terms.kl_method == "analytic" and terms.analytic_kl
    assert torch.equal(terms.elbo, recon - kl)
    torch.manual_seed(3)
    one = evaluate.elbo_terms(vae, x)
    torch.manual_seed(3)
    assert torch.equal(evaluate.elbo(vae, x), one.recon - one.kl)  # same draws, same sum
    exact_recon, exact_kl = lg.closed_form_elbo(W, b, sigma, A, c, scale, x)
    assert torch.allclose(kl, exact_kl, atol=1e-10)  # analytic KL: exact
    # MC recon with S=4000: the per-draw sd of log p(x|z) is < 1 nat here, so the standard
    # error is < 0.016 nats; allow 0.05
    assert torch.allclose(recon, exact_recon, atol=0.05)


def test_elbo_gap_matches_exact_kl_to_the_posterior():
    W, b, sigma = lg.random_problem(D=6, k=2)
    A, c, scale = _off_guide(W, b, sigma)
    vae = lg.build(W, b, sigma, A, c, scale)
    x = _data(W, b, sigma, 10)
    gap = evaluate.elbo_gap(vae, x, num_samples=5000)
    mean, cov = lg.exact_posterior(W, b, sigma, x)
    exact = lg.kl_gaussians(x @ A.T + c, torch.diag(scale**2), mean, cov)
    assert float(gap.min()) >= 0  # Jensen: never negative
    # both parts of the estimate have standard errors < 0.01 nats at K=5000 here; allow 0.03
    assert torch.allclose(gap, exact, atol=0.03), (gap, exact)


def test_monte_carlo_kl_is_reported_and_matches_the_analytic_value():
    W, b, sigma = lg.random_problem(D=6, k=2)
    vae = lg.build(W, b, sigma, *_off_guide(W, b, sigma))
    x = _data(W, b, sigma, 5)
    analytic = evaluate.elbo_terms(vae, x)
    # a one-component mixture at N(0, I) is the same prior without a registered closed form
    mog = priors.MixtureOfGaussians(2, 1).double()
    with torch.no_grad():
        mog.locs.zero_()
        mog.raw_scales.fill_(math.log(math.expm1(1.0 - 1e-4)))  # softplus(raw) + 1e-4 = 1
    vae.prior = mog
    mc = evaluate.elbo_terms(vae, x, num_samples=20000)
    assert mc.kl_method == "monte_carlo" and not evaluate.kl_is_analytic(vae)
    assert torch.allclose(mc.kl, analytic.kl, atol=0.05)  # MC se < 0.01 nats at S = 20000
    per_dim = evaluate.kl_per_dim(vae, x, num_samples=20000)  # against the mixture's marginals
    assert torch.allclose(per_dim.sum(1), analytic.kl, atol=0.05)


def test_kl_per_dim_sums_to_kl_and_mutual_information_matches_closed_form():
    W, b, sigma = lg.random_problem(D=4, k=2, orthogonal=True)
    vae = lg.build(W, b, sigma, *lg.exact_guide(W, b, sigma))
    x = _data(W, b, sigma, 2000)
    per_dim = evaluate.kl_per_dim(vae, x)
    assert per_dim.shape == (2000, 2)
    assert torch.allclose(per_dim.sum(1), evaluate.elbo_terms(vae, x).kl, atol=1e-10)
    info = evaluate.aggregate_posterior(vae, x)
    assert info.mutual_information + info.aggregate_kl == pytest.approx(info.mean_kl, abs=1e-9)
    # data drawn from the model and the exact guide: q(z) = p(z), I(x;z) = 1/2 log det(I + W'W/s^2)
    exact_mi = 0.5 * float(torch.logdet(torch.eye(2, dtype=W.dtype) + W.T @ W / sigma**2))
    assert evaluate.mutual_information(vae, x) == pytest.approx(exact_mi, abs=0.1)  # finite-N bias < 0.1 at N=2000
    assert abs(evaluate.aggregate_kl(vae, x)) < 0.1
    assert evaluate.active_units(vae, x) == 2


def test_bad_input_is_rejected_with_a_clear_message():
    W, b, sigma = lg.random_problem()
    vae = lg.build(W, b, sigma, *lg.exact_guide(W, b, sigma))
    with pytest.raises(ValueError, match="num_samples must be >= 2"):
        evaluate.log_likelihood(vae, _data(W, b, sigma, 3), num_samples=1)
    with pytest.raises(ValueError, match="non-empty"):
        evaluate.log_likelihood(vae, torch.zeros(0, 6, dtype=torch.float64))
    with pytest.raises(ValueError, match="N >= 2"):
        evaluate.active_units(vae, _data(W, b, sigma, 1))


class _IgnoresZ(nn.Module):
    """A decoder whose output does not depend on z: the optimum has q(z|x) = p(z)."""

    def __init__(self, x_shape):
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(x_shape))

    def forward(self, z):
        return self.logits.expand(len(z), *self.logits.shape)


def test_a_decoder_that_ignores_z_collapses_every_dimension(mnist_small):
    x_train, _, x_test, _ = mnist_small
    vae = VAE(nets.MLPEncoder((1, 28, 28), (16,), 3), _IgnoresZ((1, 28, 28)), priors.StandardNormal(3),
              likelihoods.Bernoulli())
    # 20 steps at a high learning rate: the KL term alone drives q(z|x) to the prior
    # (measured activity < 1e-3 per dimension, threshold 0.01)
    fit(vae, x_train[:500], epochs=2, batch_size=50, lr=3e-2, device="cpu", progress=False)
    x = (x_test > 0.5).float()
    assert evaluate.active_units(vae, x) == 0
    report = evaluate.collapse_report(vae, x)
    assert "0 of 3 latent dimensions are active" in report
    assert "all 3 dimensions are collapsed" in report
    assert evaluate.mutual_information(vae, x) < 0.05


def test_a_healthy_model_has_active_units_and_information():
    vae, x, _ = trained_vae()
    assert evaluate.active_units(vae, x) > 0
    report = evaluate.collapse_report(vae, x)
    assert "No dimension is collapsed" in report
    assert evaluate.mutual_information(vae, x) > 1.0  # nats; at most log(500) = 6.2
    recon, kl = evaluate.elbo_terms(vae, x)
    log_px, _se = evaluate.log_likelihood(vae, x[:50], num_samples=500)
    assert float(log_px.mean()) >= float((recon - kl)[:50].mean()) - 1.0  # IWAE bound above the ELBO


def test_evaluate_command_writes_json(tmp_path, capsys):
    import json

    from pyrovae import cli
    from pyrovae.models import build_vae
    from pyrovae.train.checkpoint import save_checkpoint

    ckpt = tmp_path / "checkpoint.pt"
    save_checkpoint(ckpt, build_vae(z_dim=3, hidden=(16,)))
    out = tmp_path / "eval.json"
    assert cli.main(["evaluate", str(ckpt), "--samples", "8", "--n", "30", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["n"] == 30 and result["log_px_samples"] == 8 and result["z_dim"] == 3
    assert result["elbo"] == pytest.approx(result["recon"] - result["kl"], abs=1e-4)
    assert result["kl_method"] == "analytic"
    assert "latent dimensions are active" in capsys.readouterr().out
    assert cli.main(["evaluate", str(ckpt), "--samples", "1"]) == 2  # a clear error, not a traceback
