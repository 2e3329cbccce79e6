"""Global latent variables: a decoder with ``PyroSample`` weights is drawn once per step,
outside the ``"data"`` plate, and trained by a global guide next to the amortised q(z|x)."""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import SVI, Predictive, Trace_ELBO
from pyro.nn import PyroModule, PyroSample
from pyro.optim import Adam
from torch import nn

import pyrovae
from pyrovae import VAE, evaluate, likelihoods, nets, priors

D, Z, H, B = 6, 2, 5, 4
WEIGHTS = ("decoder.net.0.weight", "decoder.net.2.weight")


class BayesianDecoder(PyroModule):
    """z (b, Z) -> (b, D) through an MLP whose weights are random (biases are parameters)."""

    def __init__(self, z_dim: int = Z, hidden: int = H, out: int = D) -> None:
        super().__init__()
        self.net = PyroModule[nn.Sequential](
            PyroModule[nn.Linear](z_dim, hidden), nn.Tanh(), PyroModule[nn.Linear](hidden, out)
        )
        for i in (0, 2):
            lin = self.net[i]
            scale = 1.0 / math.sqrt(lin.in_features)
            lin.weight = PyroSample(dist.Normal(0.0, scale).expand([lin.out_features, lin.in_features]).to_event(2))

    def forward(self, z):
        return self.net(z)


def make_vae(**kwargs) -> VAE:
    return VAE(nets.MLPEncoder((D,), (8,), Z), BayesianDecoder(), priors.StandardNormal(Z), likelihoods.Gaussian(0.5),
               **kwargs)


def test_global_sites_are_drawn_once_outside_the_plate():
    vae = make_vae()
    x = torch.randn(B, D)
    trace = poutine.trace(vae.model).get_trace(x, num_data=40)
    for name, shape in zip(WEIGHTS, [(H, Z), (D, H)]):
        site = trace.nodes[name]
        assert site["value"].shape == shape and site["cond_indep_stack"] == ()
        assert site["scale"] == 1.0  # the global KL counts once, whatever num_data is
    assert trace.nodes["z"]["scale"] == pytest.approx(40 / B)
    assert [f.name for f in trace.nodes["x"]["cond_indep_stack"]] == ["data"]
    # every data point went through the same weights: recompute the decoder by hand
    w0, w1 = (trace.nodes[n]["value"] for n in WEIGHTS)
    net = vae.decoder.net
    z = trace.nodes["z"]["value"]
    loc = torch.tanh(z @ w0.T + net[0].bias) @ w1.T + net[2].bias
    assert torch.allclose(trace.nodes["x"]["fn"].base_dist.loc, loc, atol=1e-6)


def test_the_auto_global_guide_covers_the_global_sites_only():
    vae = make_vae()
    assert type(vae.global_guide).__name__ == "AutoNormal"
    names = [n for n, _ in vae.named_parameters() if n.startswith("global_guide.")]
    assert len(names) == 4  # locs and scales of the two weights, made at construction
    trace = poutine.trace(vae.guide).get_trace(torch.randn(B, D))
    sampled = {n for n, s in trace.nodes.items() if s["type"] == "sample" and not s["infer"].get("is_auxiliary")}
    assert sampled == {*WEIGHTS, "data", "z"}


def test_svi_trains_the_global_guide_next_to_the_encoder():
    vae = make_vae()
    x = torch.randn(20, D)
    svi = SVI(vae.model, vae.guide, Adam({"lr": 0.05}), Trace_ELBO())
    before = {n: p.detach().clone() for n, p in vae.named_parameters()}
    losses = [svi.step(x, num_data=20) for _ in range(30)]
    assert all(math.isfinite(v) for v in losses)
    for name, p in vae.named_parameters():
        if name.startswith(("global_guide.", "encoder.", "decoder.")):
            assert not torch.equal(p, before[name]), name
    assert sum(losses[-5:]) < sum(losses[:5])


def test_fit_drives_a_bayesian_decoder():
    vae = make_vae()
    x = torch.randn(40, D)
    before = {n: p.detach().clone() for n, p in vae.named_parameters() if n.startswith("global_guide.")}
    history = pyrovae.fit(vae, x, epochs=3, batch_size=10, binarize=None, progress=False)
    assert all(math.isfinite(v) for v in history.train_elbo)
    assert all(not torch.equal(p, before[n]) for n, p in vae.named_parameters() if n in before)


def test_condition_globals_fixes_the_decoder_weights():
    vae = make_vae()
    z = torch.randn(3, Z)
    with torch.no_grad():
        assert not torch.equal(vae.decode_mean(z), vae.decode_mean(z))  # outside: prior draws each call
        values = vae.sample_globals()
        assert set(values) == set(WEIGHTS)
        with vae.condition_globals(values):
            first = vae.decode_mean(z)
            assert torch.equal(first, vae.decode_mean(z))
        with vae.condition_globals() as drawn:
            assert set(drawn) == set(WEIGHTS)
            recon, kl = evaluate.elbo_terms(vae, torch.randn(5, D))
    assert recon.shape == kl.shape == (5,)


def test_posterior_predictive_with_global_sites():
    vae = make_vae()
    x = torch.randn(B, D)
    draws = Predictive(vae.model, guide=vae.guide, num_samples=3)(x, observe=False)
    assert draws["x"].shape == (3, B, D) and draws["z"].shape == (3, B, Z)
    assert draws[WEIGHTS[0]].shape == (3, 1, H, Z)  # Predictive's own broadcast layout for a global site
    prior = Predictive(vae.model, num_samples=3)(x=None, batch_size=2)
    assert prior["x"].shape == (3, 2, D)


def test_the_global_guide_round_trips_through_the_param_store(tmp_path):
    vae = make_vae()
    x = torch.randn(10, D)
    svi = SVI(vae.model, vae.guide, Adam({"lr": 0.05}), Trace_ELBO())
    for _ in range(3):
        svi.step(x)
    saved = {k: v.detach().clone() for k, v in vae.state_dict().items()}
    pyro.get_param_store().save(tmp_path / "p.pt")
    pyro.clear_param_store()
    pyro.set_rng_seed(9)
    fresh = make_vae()
    pyro.get_param_store().load(tmp_path / "p.pt")
    with poutine.block():
        fresh.guide(x)
        fresh.model(x)
    for k, v in fresh.state_dict().items():
        assert torch.equal(v, saved[k]), k


class PlainDecoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = PyroModule[nn.Linear](Z, D)
        self.lin.weight = PyroSample(dist.Normal(0.0, 1.0).expand([D, Z]).to_event(2))

    def forward(self, z):
        return self.lin(z)


def test_a_plain_decoder_holding_pyrosample_layers_is_refused():
    with pytest.raises(TypeError, match=r"decoder\.lin \(PyroLinear\) has PyroSample attributes \['weight'\] but "
                                        r"sits inside the plain nn\.Module decoder \(PlainDecoder\).*PyroModule"):
        VAE(nets.MLPEncoder((D,), (8,), Z), PlainDecoder(), priors.StandardNormal(Z), likelihoods.Gaussian(0.5))


def test_no_global_guide_when_asked_or_when_there_are_no_global_sites():
    assert make_vae(global_guide=None).global_guide is None
    point = VAE(nets.MLPEncoder((D,), (8,), Z), nets.MLPDecoder(Z, (8,), (D,)), priors.StandardNormal(Z))
    assert point.global_guide is None
    with pytest.raises(ValueError, match="has no global guide"):
        point.sample_globals()
    with pytest.raises(TypeError, match="global_guide must be 'auto', None or a callable"):
        make_vae(global_guide=3)


def test_a_jit_elbo_traces_a_bayesian_decoder_without_warnings_from_pyrovae():
    import warnings

    from pyro.infer import JitTrace_ELBO

    vae = make_vae()
    svi = SVI(vae.model, vae.guide, Adam({"lr": 0.01}), JitTrace_ELBO(ignore_jit_warnings=False))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        losses = [svi.step(torch.randn(10, D), num_data=10) for _ in range(3)]
    assert all(math.isfinite(v) for v in losses)
    assert not [w for w in caught if "pyrovae" in w.filename], [
        str(w.message) for w in caught if "pyrovae" in w.filename
    ]
