"""The VAE with Pyro's own tools: ``Predictive`` (prior and posterior predictive draws through
the generative mode), the param store's ``save``/``load`` round trip for every part, and the
JIT ELBOs without TracerWarnings from pyrovae."""

from __future__ import annotations

import warnings

import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import SVI, JitTrace_ELBO, JitTraceMeanField_ELBO, Predictive, Trace_ELBO
from pyro.optim import Adam

from pyrovae import VAE, flows, likelihoods, nets, priors

X_SHAPE = (6,)
Z = 2
B = 8


def make_vae(prior: str = "standard_normal", likelihood=None, guide_flow: bool = False) -> VAE:
    enc = nets.MLPEncoder(X_SHAPE, (8,), Z)
    dec = nets.MLPDecoder(Z, (8,), X_SHAPE)
    make = {
        "standard_normal": lambda: priors.StandardNormal(Z),
        "learned_gaussian": lambda: priors.LearnedGaussian(Z),
        "mog": lambda: priors.MixtureOfGaussians(Z, 3),
        "vamp": lambda: priors.VampPrior(enc, 4, X_SHAPE),
        "flow": lambda: flows.FlowPrior(Z, num_flows=2),
    }
    flow = flows.IAFGuide(Z, flows.context_dim_of(enc)) if guide_flow else None
    return VAE(enc, dec, make[prior](), likelihood if likelihood is not None else likelihoods.Bernoulli(),
               guide_flow=flow)


def binary(n: int = B) -> torch.Tensor:
    return torch.bernoulli(torch.full((n, *X_SHAPE), 0.5))


# -- Predictive ---------------------------------------------------------------------------
def test_prior_predictive_draws():
    vae = make_vae()
    draws = Predictive(vae.model, num_samples=7)(x=None, batch_size=3)
    assert draws["x"].shape == (7, 3, *X_SHAPE) and draws["z"].shape == (7, 3, Z)
    assert set(draws["x"].unique().tolist()) <= {0.0, 1.0}  # Bernoulli draws
    assert draws["z"].std() > 0.5  # N(0, I) draws, not a constant


def test_posterior_predictive_draws_are_not_the_data():
    vae = make_vae()
    x = binary()
    draws = Predictive(vae.model, guide=vae.guide, num_samples=5)(x, observe=False)
    assert draws["x"].shape == (5, B, *X_SHAPE) and draws["z"].shape == (5, B, Z)
    assert not torch.equal(draws["x"][0], x) and not torch.equal(draws["x"][0], draws["x"][1])
    # with the data observed, Predictive hands the data back (the documented reason for observe=False)
    observed = Predictive(vae.model, guide=vae.guide, num_samples=2)(x)
    assert torch.equal(observed["x"][0], x)


def test_posterior_predictive_follows_the_guide():
    # a guide pinned to z = 0 with a tiny scale makes every draw decode the same means
    vae = make_vae(likelihood=likelihoods.Gaussian(scale=1e-3))
    with torch.no_grad():
        vae.encoder.head.linear.weight.zero_()
        vae.encoder.head.linear.bias.copy_(torch.tensor([0.0, 0.0, -20.0, -20.0]))
    x = torch.rand(3, *X_SHAPE)
    draws = Predictive(vae.model, guide=vae.guide, num_samples=4)(x, observe=False)
    expected = vae.decode_mean(torch.zeros(3, Z))
    assert torch.allclose(draws["x"], expected.expand(4, 3, *X_SHAPE), atol=0.02)


def test_generative_mode_needs_a_batch_size_and_the_guide_needs_data():
    vae = make_vae()
    with pytest.raises(ValueError, match=r"generative mode and needs batch_size=n >= 1, got None"):
        vae.model(None)
    with pytest.raises(ValueError, match=r"the guide q\(z\|x\) needs data x"):
        vae.guide(None, batch_size=2)
    with pytest.raises(ValueError, match=r"batch_size=3 but x holds 8 data points"):
        vae.model(binary(), batch_size=3)


# -- the param store round trip -----------------------------------------------------------
CASES = {
    "standard_normal": {},
    "learned_gaussian": {},
    "mog": {},
    "vamp": {},
    "flow": {"guide_flow": True},
    "gaussian_scale": {"likelihood": "learned"},
}


def _build(case: str) -> VAE:
    kwargs = dict(CASES[case])
    prior = case if case != "gaussian_scale" else "standard_normal"
    if kwargs.pop("likelihood", None):
        kwargs["likelihood"] = likelihoods.Gaussian(scale=None)
    return make_vae(prior, **kwargs)


def _state(vae: VAE) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in vae.state_dict().items()}


@pytest.mark.parametrize("case", sorted(CASES))
def test_param_store_save_and_load_round_trips_every_part(case, tmp_path):
    x = binary() if case != "gaussian_scale" else torch.rand(B, *X_SHAPE)
    vae = _build(case)
    svi = SVI(vae.model, vae.guide, Adam({"lr": 0.05}), Trace_ELBO())
    for _ in range(5):
        svi.step(x)
    saved = _state(vae)
    path = tmp_path / "params.pt"
    pyro.get_param_store().save(path)

    pyro.clear_param_store()
    pyro.set_rng_seed(123)  # other initial weights, other MADE masks and permutations
    fresh = _build(case)
    assert any(not torch.equal(v, saved[k]) for k, v in fresh.state_dict().items())
    pyro.get_param_store().load(path)
    with poutine.block():  # one call of the guide and the model takes the saved values
        fresh.guide(x)
        fresh.model(x)
    for k, v in fresh.state_dict().items():
        assert torch.equal(v, saved[k]), k

    svi = SVI(fresh.model, fresh.guide, Adam({"lr": 0.05}), Trace_ELBO())
    svi.step(x)
    store = pyro.get_param_store()
    held = {id(store[name]) for name in store}
    params = {n: p for n, p in fresh.named_parameters() if not n.startswith("prior.encoder.")}  # VampPrior's is shared
    assert all(id(p) in held for p in params.values())  # SVI trains the tensors the networks use
    after = _state(fresh)
    assert all(not torch.equal(after[n], saved[n]) for n in params if n.endswith("bias"))
    for k, _ in fresh.named_buffers():  # MADE masks and permutations, N(0, I)'s loc and scale
        assert torch.equal(after[k], saved[k]), k


@pytest.mark.parametrize("case", ["flow", "mog"])
def test_load_param_store_takes_the_saved_values_without_a_call(case, tmp_path):
    vae = _build(case)
    SVI(vae.model, vae.guide, Adam({"lr": 0.05}), Trace_ELBO()).step(binary())
    pyro.get_param_store().save(tmp_path / "p.pt")
    pyro.clear_param_store()
    pyro.set_rng_seed(7)
    fresh = _build(case)
    pyro.get_param_store().load(tmp_path / "p.pt")
    fresh.load_param_store()
    x = binary()
    z = torch.randn(B, Z)
    with torch.no_grad():  # the same q(z|x) (an IAF's density needs its saved masks) and the same p(z)
        assert torch.allclose(fresh.encode(x).log_prob(z), vae.encode(x).log_prob(z))
        assert torch.allclose(fresh.prior().log_prob(z), vae.prior().log_prob(z))
        assert torch.equal(fresh.decode_mean(z), vae.decode_mean(z))


def test_loading_keeps_a_torch_optimiser_valid(tmp_path):
    x = binary()
    vae = make_vae("learned_gaussian")
    Trace_ELBO().loss(vae.model, vae.guide, x)
    with torch.no_grad():
        vae.prior.loc.fill_(0.7)
    pyro.get_param_store().save(tmp_path / "p.pt")
    pyro.clear_param_store()
    fresh = make_vae("learned_gaussian")
    optimiser = torch.optim.SGD(fresh.parameters(), lr=0.1)
    pyro.get_param_store().load(tmp_path / "p.pt")
    fresh.load_param_store()
    assert torch.equal(fresh.prior.loc, torch.full((Z,), 0.7))
    optimiser.zero_grad()
    Trace_ELBO().differentiable_loss(fresh.model, fresh.guide, x).backward()
    optimiser.step()
    assert not torch.equal(fresh.prior.loc, torch.full((Z,), 0.7))  # the optimiser holds the tensors in use


def test_a_store_from_another_model_is_a_clear_error():
    Trace_ELBO().loss(make_vae().model, make_vae().guide, binary())  # registers an 8-unit encoder
    bigger = VAE(nets.MLPEncoder(X_SHAPE, (16,), Z), nets.MLPDecoder(Z, (8,), X_SHAPE), priors.StandardNormal(Z))
    with pytest.raises(
        ValueError,
        match=r"param store holds 'encoder\$\$\$body\.0\.weight' with shape \(8, 6\) but this "
        r"VAE's encoder \(MLPEncoder\) has shape \(16, 6\).*pyro\.clear_param_store\(\)",
    ):
        Trace_ELBO().loss(bigger.model, bigger.guide, binary())
    bigger.sync_param_store()  # or take this model's values
    assert torch.isfinite(torch.tensor(Trace_ELBO().loss(bigger.model, bigger.guide, binary())))


# -- JIT ----------------------------------------------------------------------------------
@pytest.mark.parametrize("elbo", [JitTrace_ELBO, JitTraceMeanField_ELBO])
def test_jit_elbos_trace_without_warnings_from_pyrovae(elbo):
    vae = make_vae()
    x = binary()
    svi = SVI(vae.model, vae.guide, Adam({"lr": 1e-2}), elbo(ignore_jit_warnings=False))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        losses = [svi.step(x, num_data=40) for _ in range(3)]
    assert all(torch.isfinite(torch.tensor(losses)))
    ours = [w for w in caught if "pyrovae" in w.filename]
    assert not ours, [f"{w.filename}:{w.lineno}: {w.message}" for w in ours]
    tracer = [w for w in caught if w.category is torch.jit.TracerWarning]
    assert tracer, "the JIT ELBO did not trace (the test would pass vacuously)"
