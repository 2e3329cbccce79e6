"""ReparamTrace_ELBO against Pyro's Trace_ELBO on the same draws (value and gradient, one
particle and vectorised, reparameterised and not), inside plain SVI, and how fit picks its
loss; plus the shared trace helpers of pyrovae.infer.util."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import SVI, JitTrace_ELBO, Trace_ELBO
from pyro.optim import Adam

from pyrovae.infer import ReparamTrace_ELBO, make_loss, resolve_loss
from pyrovae.infer.util import data_plate_frame, per_datum_log_prob, sample_sites
from pyrovae.models import build_vae
from pyrovae.train import TrainConfig, Trainer, fit

TOL = 1e-5  # relative: the same sums in another order, in float32


def small_vae(beta=1.0):
    torch.manual_seed(0)
    return build_vae(x_shape=(20,), z_dim=3, hidden=(16,), beta=beta)


def batch():
    return (torch.rand(30, 20, generator=torch.Generator().manual_seed(1)) < 0.4).float()


def value_and_grads(elbo, model, guide, params, *args, seed=3, **kwargs):
    for p in params:
        p.grad = None
    pyro.set_rng_seed(seed)
    loss = elbo.differentiable_loss(model, guide, *args, **kwargs)
    loss.backward()
    # a parameter the loss does not reach (the prior's, at beta = 0) counts as a zero gradient
    return loss.item(), [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in params]


def assert_same(ours, ref):
    assert ours[0] == pytest.approx(ref[0], rel=TOL)
    for a, b in zip(ours[1], ref[1]):
        torch.testing.assert_close(a, b, rtol=TOL, atol=TOL * float(b.abs().max()))


@pytest.mark.parametrize("beta", [1.0, 0.3, 0.0])
@pytest.mark.parametrize("particles, vectorize", [(1, False), (3, True), (2, False)])
@pytest.mark.parametrize("validation", [False, True])
def test_same_value_and_gradient_as_trace_elbo_on_the_same_draw(beta, particles, vectorize, validation):
    vae, x = small_vae(beta), batch()
    params = list(vae.parameters())
    kw = {"num_particles": particles, "vectorize_particles": vectorize, "max_plate_nesting": 1 + int(vectorize)}
    with pyro.validation_enabled(validation):
        ours = value_and_grads(ReparamTrace_ELBO(**kw), vae.model, vae.guide, params, x, num_data=3000)
        ref = value_and_grads(Trace_ELBO(**kw), vae.model, vae.guide, params, x, num_data=3000)
    assert_same(ours, ref)
    assert abs(ours[0]) > 1000  # a real, scaled loss (not a trivially equal zero)


def test_loss_and_loss_and_grads_match_trace_elbo():
    vae, x = small_vae(), batch()
    pyro.set_rng_seed(7)
    ours = ReparamTrace_ELBO().loss(vae.model, vae.guide, x, num_data=300)
    pyro.set_rng_seed(7)
    ref = Trace_ELBO().loss(vae.model, vae.guide, x, num_data=300)
    assert isinstance(ours, float) and ours == pytest.approx(ref, rel=TOL)
    params = list(vae.parameters())
    pyro.set_rng_seed(8)
    value = ReparamTrace_ELBO().loss_and_grads(vae.model, vae.guide, x, num_data=300)
    grads = [p.grad.clone() for p in params]
    for p in params:
        p.grad = None
    assert_same((value, grads), value_and_grads(Trace_ELBO(), vae.model, vae.guide, params, x, seed=8, num_data=300))


def test_plain_svi_steps_like_trace_elbo():
    x = batch()
    runs = []
    for elbo in (ReparamTrace_ELBO(), Trace_ELBO()):
        pyro.clear_param_store()
        vae = small_vae()
        svi = SVI(vae.model, vae.guide, Adam({"lr": 1e-2}), elbo)
        pyro.set_rng_seed(9)
        losses = [svi.step(x, num_data=300) for _ in range(5)]
        runs.append((losses, torch.cat([p.detach().flatten() for p in vae.parameters()])))
    (ours, p_ours), (ref, p_ref) = runs
    assert ours == pytest.approx(ref, rel=TOL)
    assert ours[-1] < ours[0]  # it trains
    torch.testing.assert_close(p_ours, p_ref, rtol=1e-4, atol=1e-6)


def discrete_pair():
    def model(x):
        p = pyro.param("p", torch.tensor(0.3), constraint=dist.constraints.unit_interval)
        with pyro.plate("data", len(x)):
            k = pyro.sample("k", dist.Bernoulli(p))
            pyro.sample("x", dist.Normal(k, 1.0), obs=x)

    def guide(x):
        q = pyro.param("q", torch.full((len(x),), 0.6), constraint=dist.constraints.unit_interval)
        loc = pyro.param("loc", torch.tensor(0.5))
        with pyro.plate("data", len(x)):
            pyro.sample("k", dist.Bernoulli(q))
        pyro.sample("u", dist.Normal(loc, 1.0))  # a reparameterised site beside the discrete one

    def model_u(x):
        model(x)
        pyro.sample("u", dist.Normal(0.0, 2.0))

    return model_u, guide


def test_non_reparameterised_guide_gets_trace_elbos_score_function_term():
    model, guide = discrete_pair()
    x = torch.tensor([0.2, 1.5, -0.3, 0.9])
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    guide(x), model(x)  # create the params
    names = ["p", "q", "loc"]
    params = [pyro.param(n).unconstrained() for n in names]
    ours = value_and_grads(ReparamTrace_ELBO(), model, guide, params, x, seed=2)
    ref = value_and_grads(Trace_ELBO(), model, guide, params, x, seed=2)
    assert_same(ours, ref)
    assert float(ours[1][1].abs().sum()) > 0  # q moves only through the score-function term


def test_fit_chooses_the_loss_by_name_never_by_class():
    assert type(resolve_loss(None)) is ReparamTrace_ELBO
    assert type(resolve_loss("trace")) is ReparamTrace_ELBO
    assert type(resolve_loss(None, validate=True)) is Trace_ELBO  # Pyro's own, with all its checks
    assert type(make_loss("trace-pyro")) is Trace_ELBO
    mine = Trace_ELBO()
    assert resolve_loss(mine) is mine  # an object is used as it is
    assert resolve_loss("trace", 4).num_particles == 4 and resolve_loss("trace", 4).vectorize_particles
    with pytest.raises(ValueError, match="loss must be a Pyro ELBO"):
        resolve_loss(3.0)
    cfg = TrainConfig(epochs=1, batch_size=10)
    assert Trainer(small_vae(), cfg, loss=mine, device="cpu").loss is mine
    assert type(Trainer(small_vae(), cfg, device="cpu").loss) is ReparamTrace_ELBO
    validating = TrainConfig(epochs=1, batch_size=10, validate=True)
    assert type(Trainer(small_vae(), validating, device="cpu").loss) is Trace_ELBO
    assert type(Trainer(small_vae(), cfg, loss="jit", device="cpu").loss) is JitTrace_ELBO


def test_fit_with_pyros_trace_elbo_object_trains_like_the_default():
    x = batch()
    runs = []
    for loss in (None, Trace_ELBO(), "trace-pyro"):
        vae = small_vae()
        fit(vae, x, epochs=2, batch_size=10, binarize=None, loss=loss, device="cpu", progress=False, seed=1)
        runs.append(torch.cat([p.detach().flatten() for p in vae.parameters()]))
        pyro.clear_param_store()
    for other in runs[1:]:  # the same draws, steps and estimator: float rounding only
        torch.testing.assert_close(runs[0], other, rtol=1e-4, atol=1e-6)


# -- infer.util --------------------------------------------------------------------------------
def test_per_datum_log_prob_puts_particles_then_data_first():
    frame = type("Frame", (), {"dim": -2, "size": 5})()
    lp = torch.arange(4 * 5 * 3, dtype=torch.float).reshape(4, 5, 3)  # (K, B, another plate)
    out = per_datum_log_prob(lp, frame, num_particles=4, max_plate_nesting=3)
    assert torch.equal(out, lp.sum(-1))  # (K, B)
    one = per_datum_log_prob(torch.ones(5, 1), frame, num_particles=1, max_plate_nesting=2)
    assert one.shape == (1, 5) and torch.equal(one, torch.ones(1, 5))  # broadcast dims expand, no particle dim


def test_sample_sites_skip_subsample_sites_and_data_plate_frame_names_the_problem():
    vae, x = small_vae(), batch()
    trace = pyro.poutine.trace(vae.model).get_trace(x, num_data=300)
    names = [name for name, _ in sample_sites(trace)]
    assert names == ["z", "x"]  # not the plate's "data" subsample site
    assert data_plate_frame(trace.nodes["z"], "data", estimator="E", role="model", name="z").size == 30
    with pytest.raises(ValueError, match="E needs every sample site inside the vectorised plate 'batch'; "
                                         "model site 'z' is outside plate 'batch'"):
        data_plate_frame(trace.nodes["z"], "batch", estimator="E", role="model", name="z")
