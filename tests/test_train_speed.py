"""fit's fast path estimates the same ELBO as plain ``SVI(Trace_ELBO)``.

Three levels: on one draw the lean estimator equals ``Trace_ELBO``'s loss and gradient exactly;
over many draws fit's own per-step losses (with the learning rate at 0, so the parameters stay
put) agree with ``SVI.evaluate_loss`` within Monte Carlo error; and a few epochs of fit and of
``SVI`` reach similar held-out ELBOs.
"""

from __future__ import annotations

import math

import pyro
import pytest
import torch
from pyro.infer import SVI, Trace_ELBO
from pyro.optim import Adam

from pyrovae.data import binarize
from pyrovae.infer import reparam_trace_elbo
from pyrovae.models import build_vae
from pyrovae.train import fit


def small_vae(**kw):
    return build_vae(hidden=(32,), z_dim=4, **kw)


def _grads(vae):
    return [p.grad.clone() for p in vae.parameters()]


@pytest.mark.parametrize("beta", [1.0, 0.5, 0.0])
@pytest.mark.parametrize("validation", [False, True])
def test_lean_estimator_equals_trace_elbo_on_the_same_draw(mnist_small, beta, validation):
    x = binarize(mnist_small[0][:40], "static", seed=1)
    vae = small_vae(beta=beta)
    with pyro.validation_enabled(validation):
        pyro.set_rng_seed(3)
        lean = reparam_trace_elbo(vae.model, vae.guide, x, num_data=2000)
        lean.backward()
        g_lean = _grads(vae)
        vae.zero_grad()
        pyro.set_rng_seed(3)
        ref = Trace_ELBO().differentiable_loss(vae.model, vae.guide, x, num_data=2000)
        ref.backward()
    assert lean.item() == pytest.approx(ref.item(), rel=1e-6)
    for a, b in zip(g_lean, _grads(vae)):
        # the same sums in another order: float32 rounding, relative to the gradient's size
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * float(b.abs().max()))


def test_lean_estimator_declines_a_non_reparameterised_guide():
    import pyro.distributions as dist

    def model():
        pyro.sample("k", dist.Bernoulli(0.3))

    def guide():
        pyro.sample("k", dist.Bernoulli(0.5))

    assert reparam_trace_elbo(model, guide) is None


def test_fit_step_estimates_the_svi_trace_elbo_within_mc_error(mnist_small):
    """fit's per-step losses (lr = 0) against SVI(Trace_ELBO).evaluate_loss, same parameters.

    Tolerance: the difference of the two means must be within 4 combined standard errors
    (a false failure has probability ~6e-5)."""
    x = binarize(mnist_small[0][:200], "static", seed=2)
    n = len(x)
    vae = small_vae()
    init = {k: v.clone() for k, v in vae.state_dict().items()}
    # 30 epochs of 4 steps: 120 single-draw estimates of the full-data loss, averaged per epoch
    h = fit(vae, x, epochs=30, batch_size=50, binarize=None, lr=0.0, device="cpu", progress=False)
    for k, v in vae.state_dict().items():
        assert torch.equal(v, init[k]), k  # lr = 0: the estimates are all at the same parameters
    fit_epochs = torch.tensor(h.train_elbo)  # (30,) per-example ELBO, each a mean of 4 batches

    pyro.clear_param_store()
    svi = SVI(vae.model, vae.guide, Adam({"lr": 0.0}), Trace_ELBO())
    pyro.set_rng_seed(11)
    svi_draws = torch.tensor([-svi.evaluate_loss(xb, num_data=n) / n for _ in range(30) for xb in x.split(50)])
    svi_epochs = svi_draws.reshape(30, 4).mean(1)  # (30,) the same averaging as fit's history

    diff = fit_epochs.mean() - svi_epochs.mean()
    se = math.sqrt(fit_epochs.var() / len(fit_epochs) + svi_epochs.var() / len(svi_epochs))
    assert abs(float(diff)) < 4 * se + 1e-3, (float(diff), se)
    assert se < 1.0  # the test has power: the standard error is well under a nat


def test_a_few_epochs_of_fit_and_of_svi_reach_similar_elbo(mnist_small):
    x, _, xt, _ = mnist_small
    x, xt = x[:600], xt[:200]
    pyro.set_rng_seed(5)  # the same initialisation for both runs
    h_fit = fit(small_vae(), x, xt, epochs=2, batch_size=50, device="cpu", progress=False, seed=0)
    pyro.clear_param_store()
    pyro.set_rng_seed(5)
    h_svi = fit(small_vae(), x, xt, epochs=2, batch_size=50, device="cpu", progress=False, seed=0,
                optim=Adam({"lr": 1e-3}), loss=Trace_ELBO())  # the SVI.step path
    # same initialisation and seeds, so the same draws: the two differ only in float rounding
    # (one fused Adam against pyro.optim's per-parameter Adams, the estimator's summation
    # order); 1 nat is far above that and far below the ~70-nat progress of these two epochs
    for a, b in zip(h_fit.test_elbo, h_svi.test_elbo):
        assert abs(a - b) < 1.0, (h_fit.test_elbo, h_svi.test_elbo)
    assert h_fit.test_elbo[-1] > h_fit.test_elbo[0]
