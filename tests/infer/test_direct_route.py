"""The direct route of ReparamTrace_ELBO (pyrovae.models.direct, pyrovae.infer.direct_route):
the same value and gradient as SVI(Trace_ELBO) on the same draws, the proof on the first step,
and every case where it must stay on the traced route."""

from __future__ import annotations

import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO

from pyrovae import nets, priors
from pyrovae.infer import ReparamTrace_ELBO
from pyrovae.models import VAE, build_vae
from pyrovae.models.direct import direct_applies, direct_loss
from pyrovae.train import fit

from .test_infer_reparam import assert_same, batch, small_vae, value_and_grads

KEY = "_direct_route"


def fit_like(vae):
    # what fit does on its torch route: no pyro.module per step, Pyro's validation off
    vae.__dict__["_register_params"] = False
    return pyro.validation_enabled(False)


@pytest.mark.parametrize("beta", [1.0, 0.3, 0.0])
@pytest.mark.parametrize("prior", ["standard_normal", "mog", "vamp"])
def test_direct_route_gives_trace_elbos_value_and_gradient_on_the_same_draws(beta, prior):
    torch.manual_seed(0)
    vae, x = build_vae(x_shape=(20,), z_dim=3, hidden=(16,), beta=beta, prior=prior), batch()
    params = list(vae.parameters())
    elbo = ReparamTrace_ELBO()
    with fit_like(vae):
        first = value_and_grads(elbo, vae.model, vae.guide, params, x, num_data=3000, seed=3)  # traced, proves
        assert vae.__dict__[KEY] is True
        ours = value_and_grads(elbo, vae.model, vae.guide, params, x, num_data=3000, seed=4)  # direct
        ref = value_and_grads(Trace_ELBO(), vae.model, vae.guide, params, x, num_data=3000, seed=4)
    assert_same(ours, ref)
    assert_same(first, value_and_grads(Trace_ELBO(), vae.model, vae.guide, params, x, num_data=3000, seed=3))
    assert abs(ours[0]) > 1000 and ours[0] != first[0]  # a real loss, and another draw


def test_direct_loss_matches_the_traced_estimator_without_num_data():
    vae, x = small_vae(), batch()
    with fit_like(vae):
        vae.guide(x)  # protocol checks on the first batch
        pyro.set_rng_seed(5)
        direct = direct_loss(vae, x)
        pyro.set_rng_seed(5)
        traced = Trace_ELBO().differentiable_loss(vae.model, vae.guide, x)
    assert float(direct.detach()) == pytest.approx(float(traced.detach()), rel=1e-5)
    with pytest.raises(ValueError, match="num_data=10 is smaller than the batch size 30"):
        direct_loss(vae, x, num_data=10)


def test_the_direct_route_is_taken_only_where_nothing_could_tell_it_apart():
    vae = small_vae()
    assert not direct_applies(vae)  # registration on: SVI with pyro.optim needs the param-store sites
    vae.__dict__["_register_params"] = False
    with pyro.validation_enabled(True):
        assert not direct_applies(vae)
    with pyro.validation_enabled(False):
        assert direct_applies(vae)
        with poutine.scale(scale=2.0):  # a user's handler must see the sites
            assert not direct_applies(vae)
        assert not direct_applies(object())


class ExtraSiteVAE(VAE):
    def model(self, x=None, num_data=None, **kw):  # overridden: another model than VAE's own
        pyro.sample("w", pyro.distributions.Normal(0.0, 1.0))
        return super().model(x, num_data, **kw)


def test_an_overridden_model_stays_on_the_traced_route():
    torch.manual_seed(0)
    vae = ExtraSiteVAE(nets.MLPEncoder((20,), (16,), 3), nets.MLPDecoder(3, (16,), (20,)), priors.StandardNormal(3))
    assert not direct_applies(vae)


class SitePrior(torch.nn.Module):
    """A prior that adds a site of its own: the direct sum would miss it."""

    def forward(self):
        pyro.sample("tau", pyro.distributions.Normal(0.0, 1.0))
        return pyro.distributions.Normal(torch.zeros(3), torch.ones(3)).to_event(1)


def test_a_part_with_a_site_of_its_own_keeps_the_traced_route_for_good():
    torch.manual_seed(0)
    vae = VAE(nets.MLPEncoder((20,), (16,), 3), nets.MLPDecoder(3, (16,), (20,)), SitePrior(), global_guide=None)
    x = batch()
    params = list(vae.encoder.parameters()) + list(vae.decoder.parameters())
    with fit_like(vae):
        first = value_and_grads(ReparamTrace_ELBO(), vae.model, vae.guide, params, x, num_data=3000, seed=3)
        assert vae.__dict__[KEY] is False
        again = value_and_grads(ReparamTrace_ELBO(), vae.model, vae.guide, params, x, num_data=3000, seed=4)
    assert_same(first, value_and_grads(Trace_ELBO(), vae.model, vae.guide, params, x, num_data=3000, seed=3))
    assert_same(again, value_and_grads(Trace_ELBO(), vae.model, vae.guide, params, x, num_data=3000, seed=4))


def test_the_networks_run_once_per_step_on_both_routes():
    vae, x = small_vae(), batch()
    calls = {"n": 0}
    forward = vae.decoder.forward

    def counted(z):
        calls["n"] += 1
        return forward(z)

    vae.decoder.forward = counted
    with fit_like(vae):
        for _ in range(3):
            ReparamTrace_ELBO().differentiable_loss(vae.model, vae.guide, x, num_data=100)
    assert calls["n"] == 3 and vae.__dict__[KEY] is True


def test_changing_a_part_makes_the_route_prove_itself_again():
    vae, x = small_vae(), batch()
    with fit_like(vae):
        ReparamTrace_ELBO().differentiable_loss(vae.model, vae.guide, x, num_data=100)
        assert vae.__dict__[KEY] is True
        vae.decoder = nets.MLPDecoder(3, (8,), (20,))
        assert vae.__dict__[KEY] is None


def test_fit_trains_on_the_direct_route_and_follows_trace_elbo():
    torch.manual_seed(0)
    x = batch().repeat(4, 1)  # (120, 20)
    histories = []
    for loss in ("trace", "trace-pyro"):
        torch.manual_seed(0)
        vae = build_vae(x_shape=(20,), z_dim=3, hidden=(16,))
        histories.append(fit(vae, x, epochs=2, batch_size=30, loss=loss, binarize=None, progress=False, seed=1))
        if loss == "trace":
            assert vae.__dict__[KEY] is True
    a, b = (h.train_elbo for h in histories)
    torch.testing.assert_close(torch.tensor(a), torch.tensor(b), rtol=1e-4, atol=1e-3)


def _generic_direct_loss(vae, x, num_data):
    # the direct route's sum of log-densities, with the fused tail switched off
    from pyrovae.models import direct

    saved = direct.fused_tail_applies
    direct.fused_tail_applies = lambda *args: False
    try:
        return direct_loss(vae, x, num_data)
    finally:
        direct.fused_tail_applies = saved


@pytest.mark.parametrize("beta", [1.0, 0.3, 0.0])
def test_the_fused_tail_is_the_generic_direct_sum_in_float64(beta, monkeypatch):
    from pyrovae.models import fused_tail

    torch.manual_seed(0)
    vae = build_vae(x_shape=(1, 6, 5), z_dim=4, hidden=(12,), beta=beta).double()
    x = torch.rand(9, 1, 6, 5, dtype=torch.float64).bernoulli()
    params = list(vae.parameters())
    calls = {"n": 0}
    apply = fused_tail._Tail.apply

    def counted(*args):
        calls["n"] += 1
        return apply(*args)

    monkeypatch.setattr(fused_tail._Tail, "apply", counted)
    with fit_like(vae):
        vae.guide(x)  # the protocol checks of the first batch
        for num_data in (None, 900):
            torch.manual_seed(7)
            fused = direct_loss(vae, x, num_data)
            fused_grads = torch.autograd.grad(fused, params, allow_unused=True)
            torch.manual_seed(7)
            generic = _generic_direct_loss(vae, x, num_data)
            generic_grads = torch.autograd.grad(generic, params, allow_unused=True)
            torch.testing.assert_close(fused, generic, rtol=1e-12, atol=1e-10)  # float64: rounding only
            for a, b in zip(fused_grads, generic_grads):
                if b is None:
                    assert a is None or not a.abs().max()
                else:
                    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    assert calls["n"] == 2  # the fused tail ran, once per num_data


def test_the_fused_tails_hand_written_gradient_passes_gradcheck():
    from pyrovae.models.fused_tail import _Tail

    g = torch.Generator().manual_seed(3)
    logits = torch.randn(4, 7, generator=g, dtype=torch.float64, requires_grad=True)
    x = torch.rand(4, 7, generator=g, dtype=torch.float64).bernoulli()
    z = torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    eps = torch.randn(4, 3, generator=g, dtype=torch.float64)
    scale = (torch.rand(4, 3, generator=g, dtype=torch.float64) + 0.2).requires_grad_()
    for beta in (1.0, 0.4, 0.0):
        assert torch.autograd.gradcheck(lambda lo, zz, s, b=beta: _Tail.apply(lo, x, zz, eps, s, 25.0, b),
                                         (logits, z, scale))


@pytest.mark.parametrize("part", ["prior", "likelihood", "flow"])
def test_other_parts_keep_the_generic_sum(part, monkeypatch):
    from pyrovae.models import fused_tail

    monkeypatch.setattr(fused_tail._Tail, "apply", lambda *a: pytest.fail("the fused tail ran for other parts"))
    kwargs = {"prior": {"prior": "mog"}, "likelihood": {"likelihood": "gaussian"}, "flow": {"guide_flows": 2}}[part]
    torch.manual_seed(0)
    vae = build_vae(x_shape=(20,), z_dim=3, hidden=(16,), **kwargs)
    x = batch() if part != "likelihood" else torch.randn(30, 20)
    with fit_like(vae):
        vae.guide(x)
        loss = direct_loss(vae, x, 3000)
    assert loss is None or torch.isfinite(loss)


def test_logits_of_another_shape_after_the_first_check_are_scored_as_the_likelihood_scores_them():
    from torch import nn

    class Shrinking(nn.Module):  # right on the checked first call, then one row that broadcasts
        def __init__(self):
            super().__init__()
            self.linear, self.calls = nn.Linear(3, 20), 0

        def forward(self, z):
            self.calls += 1
            out = self.linear(z).view(-1, 4, 5)
            return out if self.calls == 1 else out[:, :1]  # (B, 1, 5) after the first call

    torch.manual_seed(0)
    vae = VAE(encoder=nets.MLPEncoder(x_shape=(4, 5), hidden=(8,), z_dim=3), decoder=Shrinking(), z_dim=3)
    x = torch.rand(6, 4, 5).bernoulli()
    with fit_like(vae):
        vae.guide(x)
        vae.model(x)  # the decoder's checked call
        torch.manual_seed(1)
        ours = direct_loss(vae, x, 60)
        vae.decoder.calls = 1
        torch.manual_seed(1)
        generic = _generic_direct_loss(vae, x, 60)
    torch.testing.assert_close(ours, generic)
