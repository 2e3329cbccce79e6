r"""The hierarchical VAE: importance-sampled log p(x) against a two-layer linear-Gaussian model
with a closed-form marginal, sites and shapes for L = 2 and 3, every ELBO with both guides,
free bits, per-layer diagnostics, fit with a bitwise resume, and the config.

The linear-Gaussian model:

.. math::

    z_2 \sim \mathcal{N}(0, I),\quad z_1 | z_2 \sim \mathcal{N}(A z_2 + a, D_1),\quad
    x | z_1 \sim \mathcal{N}(B z_1 + b, \sigma^2 I)
    \;\Rightarrow\; x \sim \mathcal{N}\big(B a + b,\; B (A A^\top + D_1) B^\top + \sigma^2 I\big).
"""

from __future__ import annotations

import math

import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO
from torch.distributions import kl_divergence

from pyrovae import evaluate, likelihoods, nets, priors
from pyrovae.infer import IWAE_ELBO, MinibatchRWS
from pyrovae.models import HierarchicalConfig, HierarchicalPrior, HierarchicalVAE, build_hierarchical_vae
from pyrovae.train import checkpoint as ckpt
from pyrovae.train import fit

D_X, D1, D2, SIGMA = 5, 3, 2, 0.4
GUIDES = ("bottom_up", "top_down")
# the mean-field check warns for the bottom-up guide, whose site order differs from the model's
pytestmark = pytest.mark.filterwarnings("ignore:Failed to verify mean field restriction")


def _linear_problem(seed: int = 0):
    """(A, a, d1, B, b) with A axis-aligned and B's columns orthogonal, so that the exact
    posterior factorises into diagonal Gaussians of either guide's family (see _exact_guide)."""
    g = torch.Generator().manual_seed(seed)
    A = torch.zeros(D1, D2, dtype=torch.float64)
    A[range(D2), range(D2)] = torch.tensor([1.2, -0.8], dtype=torch.float64)
    a = 0.3 * torch.randn(D1, generator=g, dtype=torch.float64)
    d1 = 0.3 + 0.5 * torch.rand(D1, generator=g, dtype=torch.float64)  # sd of z1 | z2
    Q, _ = torch.linalg.qr(torch.randn(D_X, D1, generator=g, dtype=torch.float64))
    B = Q * torch.tensor([1.5, 1.0, 0.7], dtype=torch.float64)  # B^T B diagonal
    b = 0.3 * torch.randn(D_X, generator=g, dtype=torch.float64)
    return A, a, d1, B, b


def _exact_log_px(problem, x: torch.Tensor) -> torch.Tensor:
    A, a, d1, B, b = problem
    cov = B @ (A @ A.T + torch.diag(d1**2)) @ B.T + SIGMA**2 * torch.eye(D_X, dtype=x.dtype)
    return torch.distributions.MultivariateNormal(B @ a + b, cov).log_prob(x)  # (N,)


def _linear_hvae(problem, guide: str) -> HierarchicalVAE:
    """The hierarchical VAE with linear networks set to the problem (the generative part frozen)."""
    A, a, d1, B, b = problem
    conditional = nets.MLPEncoder((D2,), (), D1).double()  # head: Linear(D2, 2 * D1) -> loc, softplus -> scale
    decoder = nets.MLPDecoder(D1, (), (D_X,)).double()
    _set_head(conditional.head, A, a, d1)
    with torch.no_grad():
        decoder.net[0].weight.copy_(B)
        decoder.net[0].bias.copy_(b)
    encoder = (nets.BottomUpEncoder((D_X,), ((), ()), (D1, D2)) if guide == "bottom_up"
               else nets.LadderEncoder((D_X,), ((), ()), (D1, D2)))
    prior = HierarchicalPrior(priors.StandardNormal(D2), [conditional], (D1, D2))
    hvae = HierarchicalVAE(encoder, decoder, prior, likelihoods.Gaussian(scale=SIGMA)).double()
    for part in (prior, decoder):
        part.requires_grad_(False)
    return hvae


def _set_head(head: nets.GaussianHead, weight: torch.Tensor, bias: torch.Tensor, scale: torch.Tensor) -> None:
    """Make a Gaussian head emit loc = weight @ h + bias and a constant scale."""
    d = len(bias)
    with torch.no_grad():
        head.linear.weight.zero_()
        head.linear.weight[:d] = weight
        head.linear.bias[:d] = bias
        head.linear.bias[d:] = torch.log(torch.expm1(scale - nets.MIN_SCALE))


def _diagonal(m: torch.Tensor) -> torch.Tensor:
    assert (m - torch.diag(m.diagonal())).abs().max() < 1e-12, "the problem's posterior is not diagonal"
    return m.diagonal()


def _exact_guide(hvae: HierarchicalVAE, problem) -> None:
    """Set the linear guide to the exact posterior p(z1, z2 | x)."""
    A, a, d1, B, b = problem
    s2 = SIGMA**2
    if not hvae.top_down:  # p(z1|x) p(z2|z1)
        prec1 = torch.linalg.inv(A @ A.T + torch.diag(d1**2)) + B.T @ B / s2
        var1 = 1 / _diagonal(prec1)
        w1 = var1[:, None] * B.T / s2
        _set_head(hvae.encoder.layers[0].head, w1, var1 * (a / _diagonal(A @ A.T + torch.diag(d1**2))) - w1 @ b,
                  var1.sqrt())
        var2 = 1 / _diagonal(torch.eye(D2, dtype=torch.float64) + A.T @ torch.diag(d1**-2) @ A)
        w2 = var2[:, None] * A.T / d1**2
        _set_head(hvae.encoder.layers[1].head, w2, -w2 @ a, var2.sqrt())
        return
    # p(z2|x), and p(z1|z2, x) as the precision-weighted combination of p(z1|z2) with a head from x
    var_hat = s2 / _diagonal(B.T @ B)
    w1 = var_hat[:, None] * B.T / s2
    _set_head(hvae.encoder.heads[0], w1, -w1 @ b, var_hat.sqrt())
    S_inv = torch.linalg.inv(B @ torch.diag(d1**2) @ B.T + s2 * torch.eye(D_X, dtype=torch.float64))
    cov2 = torch.linalg.inv(torch.eye(D2, dtype=torch.float64) + (B @ A).T @ S_inv @ B @ A)
    w2 = cov2 @ (B @ A).T @ S_inv
    _set_head(hvae.encoder.heads[1], w2, -w2 @ (B @ a + b), _diagonal(cov2).sqrt())


def _draw(problem, n: int, seed: int = 1) -> torch.Tensor:
    A, a, d1, B, b = problem
    g = torch.Generator().manual_seed(seed)
    z2 = torch.randn(n, D2, generator=g, dtype=torch.float64)
    z1 = z2 @ A.T + a + d1 * torch.randn(n, D1, generator=g, dtype=torch.float64)
    return z1 @ B.T + b + SIGMA * torch.randn(n, D_X, generator=g, dtype=torch.float64)  # (n, D_X)


@pytest.fixture(scope="module", params=GUIDES)
def trained_linear(request):
    """(hvae with a trained guide, problem, held-out x (10, D_X)) per guide."""
    pyro.clear_param_store()
    torch.manual_seed(0)
    problem = _linear_problem()
    hvae = _linear_hvae(problem, request.param)
    fit(hvae, _draw(problem, 1000), epochs=30, batch_size=100, binarize=None, lr=2e-2, device="cpu", progress=False,
        loss=Trace_ELBO(num_particles=8, vectorize_particles=True))
    return hvae.eval(), problem, _draw(problem, 10, seed=2)


@pytest.mark.parametrize("guide", GUIDES)
def test_the_exact_posterior_as_guide_gives_log_px_exactly(guide):
    # every importance weight is p(x): a sharp check of every log-density the sites contribute
    problem = _linear_problem()
    hvae = _linear_hvae(problem, guide)
    _exact_guide(hvae, problem)
    x = _draw(problem, 10, seed=2)
    exact = _exact_log_px(problem, x)
    est = evaluate.log_likelihood(hvae, x, num_samples=50)
    torch.testing.assert_close(est.log_px, exact, atol=1e-9, rtol=0)
    assert float(est.stderr.max()) < 1e-6  # zero up to the rounding of its variance formula
    torch.testing.assert_close(hvae.log_weights(x, 50), exact[:, None].expand(10, 50), atol=1e-9, rtol=0)
    torch.testing.assert_close(evaluate.elbo(hvae, x), exact, atol=1e-9, rtol=0)


def test_importance_sampled_log_px_matches_the_closed_form(trained_linear):
    hvae, problem, x = trained_linear
    exact = _exact_log_px(problem, x)
    est = evaluate.log_likelihood(hvae, x, num_samples=4000)
    diff = est.log_px - exact  # (10,)
    # each point within 5 standard errors; their mean within 3 of the mean's standard error
    assert (diff.abs() < 5 * est.stderr).all(), (diff, est.stderr)
    assert abs(float(diff.mean())) < 3 * float(est.stderr.pow(2).sum().sqrt()) / len(x)
    assert float(est.stderr.max()) < 0.05  # a trained guide: the check is a sharp one
    # the ELBO is below log p(x) by the KL to the true posterior
    elbo = evaluate.elbo(hvae, x, num_samples=2000)
    assert (elbo < exact).all()
    assert float((exact - elbo).mean()) > 1e-3


def test_log_weights_from_the_pyro_sites_give_the_same_log_px(trained_linear):
    hvae, problem, x = trained_linear
    log_w = hvae.log_weights(x, 4000)  # (10, 4000), from the model and guide traces
    assert log_w.shape == (10, 4000)
    log_px = torch.logsumexp(log_w, 1) - math.log(4000)
    w = torch.exp(log_w - log_w.max(1, keepdim=True).values)
    stderr = w.std(1) / (w.mean(1) * math.sqrt(4000))  # delta method
    diff = log_px - _exact_log_px(problem, x)
    assert (diff.abs() < 5 * stderr).all(), (diff, stderr)


@pytest.mark.parametrize("guide", GUIDES)
@pytest.mark.parametrize("z_dims", [(6, 4), (6, 4, 3)])
def test_sites_and_shapes(guide, z_dims):
    hvae = build_hierarchical_vae(x_shape=(12,), z_dims=z_dims, hidden=[(10,)] * len(z_dims), guide=guide)
    x = torch.bernoulli(torch.full((7, 12), 0.5))
    guide_trace = poutine.trace(hvae.guide).get_trace(x, num_data=70)
    model_trace = poutine.trace(poutine.replay(hvae.model, trace=guide_trace)).get_trace(x, num_data=70)
    names = [f"z{i + 1}" for i in range(len(z_dims))]
    assert [n for n, s in guide_trace.nodes.items() if s["type"] == "sample" and n != "data"] == (
        names if guide == "bottom_up" else names[::-1])
    assert [n for n, s in model_trace.nodes.items() if s["type"] == "sample" and n != "data"] == [*names[::-1], "x"]
    for name, d in zip(names, z_dims):
        for trace in (guide_trace, model_trace):
            site = trace.nodes[name]
            assert site["value"].shape == (7, d) and site["fn"].event_shape == (d,)
            assert [f.name for f in site["cond_indep_stack"]] == ["data"] and site["scale"] == 10.0
    assert model_trace.nodes["x"]["is_observed"]
    D = sum(z_dims)
    assert hvae.z_dim == D and hvae.encode(x).rsample((3,)).shape == (3, 7, D)
    assert hvae.prior().sample((5,)).shape == (5, D) and hvae.sample(5).shape == (5, 12)
    assert hvae.reconstruct(x).shape == (7, 12) and hvae.log_weights(x, 4).shape == (7, 4)
    assert hvae.kl_per_layer(x).shape == (7, len(z_dims)) and len(hvae.active_units(x)) == len(z_dims)
    with pytest.raises(ValueError, match="joint latent"):
        hvae.decode(torch.zeros(2, z_dims[0]))


def _tiny(guide: str, **kw) -> HierarchicalVAE:
    return build_hierarchical_vae(x_shape=(20,), z_dims=(4, 2), hidden=((16,), (8,)), guide=guide, **kw)


def _tiny_data(n: int = 64) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    proto = torch.rand(2, 20, generator=g)
    return torch.bernoulli(proto[torch.arange(n) % 2], generator=g)  # two clusters of binary vectors


@pytest.mark.parametrize("guide", GUIDES)
@pytest.mark.parametrize("elbo", [Trace_ELBO(), TraceMeanField_ELBO(), IWAE_ELBO(num_particles=4),
                                  MinibatchRWS(num_particles=4)], ids=lambda e: type(e).__name__)
def test_every_elbo_trains_both_guides(guide, elbo):
    hvae, x = _tiny(guide), _tiny_data()
    opt = torch.optim.Adam(hvae.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        opt.zero_grad()
        loss = elbo.differentiable_loss(hvae.model, hvae.guide, x)
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert all(math.isfinite(v) for v in losses)
    assert sum(losses[-10:]) < 0.9 * sum(losses[:10]), (losses[:10], losses[-10:])


@pytest.mark.parametrize("guide", GUIDES)
def test_svi_with_pyro_optim_trains_every_part(guide):
    # pyro.optim sees only what the model and guide register: every part must be in the param store
    hvae, x = _tiny(guide, prior="learned_gaussian"), _tiny_data(16)
    before = {k: v.clone() for k, v in hvae.state_dict().items()}
    svi = pyro.infer.SVI(hvae.model, hvae.guide, pyro.optim.Adam({"lr": 1e-2}), Trace_ELBO())
    for _ in range(3):
        svi.step(x)
    unchanged = [k for k, v in hvae.state_dict().items() if torch.equal(v, before[k])]
    assert unchanged == [], unchanged


def test_bottom_up_guide_hides_the_biased_closed_form_kl():
    x = _tiny_data(4)
    for guide, closed in (("bottom_up", False), ("top_down", True)):
        hvae = _tiny(guide)
        guide_trace = poutine.trace(hvae.guide).get_trace(x)
        model_trace = poutine.trace(poutine.replay(hvae.model, trace=guide_trace)).get_trace(x)
        q, p = guide_trace.nodes["z1"]["fn"], model_trace.nodes["z1"]["fn"]
        if closed:
            assert kl_divergence(q, p).shape == (4,)
        else:
            with pytest.raises(NotImplementedError):
                kl_divergence(q, p)
        kl_divergence(guide_trace.nodes["z2"]["fn"], model_trace.nodes["z2"]["fn"])  # the top layer: closed form


def _seeded_loss(hvae, elbo, x, seed: int = 5):
    pyro.set_rng_seed(seed)
    return elbo.differentiable_loss(hvae.model, hvae.guide, x)


@pytest.mark.parametrize("guide", GUIDES)
def test_free_bits_value_is_the_floored_objective(guide):
    x = _tiny_data(16)
    hvae = _tiny(guide)
    plain = _seeded_loss(hvae, TraceMeanField_ELBO(max_plate_nesting=1), x)
    kl = hvae.kl_per_layer(x, num_samples=1)  # for the floor decision only (its own draws)
    assert float(kl[:, 1].mean()) > 1e-3
    hvae.free_bits = 1e3  # every layer under the floor: the KL term becomes the constant 2 * 1e3 per point
    floored = _seeded_loss(hvae, TraceMeanField_ELBO(max_plate_nesting=1), x)
    pyro.set_rng_seed(5)
    guide_trace = poutine.trace(hvae.guide).get_trace(x)
    model_trace = poutine.trace(poutine.replay(hvae.model, trace=guide_trace)).get_trace(x)
    recon = model_trace.nodes["x"]["fn"].log_prob(x).sum()
    torch.testing.assert_close(floored, -recon + 2 * 1e3 * len(x), rtol=1e-6, atol=1e-3)
    assert float(plain) < float(floored)
    hvae.free_bits = 1e-6  # no layer under the floor: the ELBO
    torch.testing.assert_close(_seeded_loss(hvae, TraceMeanField_ELBO(max_plate_nesting=1), x), plain)


def test_free_bits_stop_the_kl_gradient_of_a_floored_layer():
    # bottom-up guide, Trace_ELBO: p(z1|z2) enters only z1's Monte Carlo KL term, which the factor
    # cancels draw by draw; the top prior's closed-form KL cancels exactly under TraceMeanField_ELBO
    x = _tiny_data(16)
    for elbo, part in ((Trace_ELBO(), "conditionals"), (TraceMeanField_ELBO(), "top")):
        grads = []
        for floor in (0.0, 1e3):
            hvae = _tiny("bottom_up", prior="learned_gaussian", free_bits=floor)
            _seeded_loss(hvae, elbo, x).backward()
            module = hvae.prior.conditionals if part == "conditionals" else hvae.prior.top
            grads.append(torch.cat([p.grad.flatten() for p in module.parameters()]))
        assert grads[0].abs().max() > 1e-3
        assert grads[1].abs().max() < 1e-5, part


def test_free_bits_need_the_guides_own_draws():
    x = _tiny_data(8)
    hvae = _tiny("top_down", free_bits=1e3)
    hvae.guide(x)  # stashes its conditionals
    model_trace = poutine.trace(hvae.model).get_trace(x)  # draws of its own
    assert "free_bits" not in model_trace.nodes
    with pytest.raises(ValueError, match="one number >= 0 or 2"):
        hvae.free_bits = (1.0, 2.0, 3.0)


def test_kl_per_layer_sums_to_the_kl_term():
    hvae, x = _tiny("top_down"), _tiny_data(8)
    per_layer = hvae.kl_per_layer(x, num_samples=20000).sum(1)  # (8,)
    q, p = hvae.encode(x), hvae.prior()
    with torch.no_grad():
        z = q.sample((20000,))
        total = (q.log_prob(z) - p.log_prob(z)).mean(0)  # (8,) Monte Carlo over the joint
    torch.testing.assert_close(per_layer, total, atol=0.05, rtol=0)


def test_active_units_per_layer_see_a_dead_layer():
    hvae, x = _tiny("bottom_up"), _tiny_data(64)
    with torch.no_grad():  # make q(z2|z1) ignore z1: the top layer carries nothing about x
        head = hvae.encoder.layers[1].head.linear
        head.weight.zero_()
    activity = hvae.unit_activity(x)
    assert [a.shape for a in activity] == [(4,), (2,)]
    assert hvae.active_units(x)[1] == 0 and float(activity[1].max()) < 1e-10
    assert hvae.active_units(x, threshold=0.0)[0] == 4


def test_generate_varies_the_top_layer_with_fixed_noise():
    hvae = _tiny("bottom_up")
    z2 = torch.randn(3, 2)
    eps = torch.randn(1, 4).expand(3, 4)
    out = hvae.generate(z2, [eps])
    assert out.shape == (3, 20) and not torch.allclose(out[0], out[1])
    torch.testing.assert_close(hvae.generate(z2[:1], [eps[:1]]), out[:1])
    loc, _ = hvae.prior.conditional_params(0, z2)
    torch.testing.assert_close(hvae.generate(z2, [None]), hvae.decode_mean(torch.cat([loc, z2], -1)))
    with pytest.raises(ValueError, match="below the top"):
        hvae.generate(z2, [])


def test_top_layer_grid_holds_each_columns_noise_fixed():
    from pyrovae.inspect import top_layer_grid

    hvae = _tiny("top_down").eval()
    torch.manual_seed(4)
    grid = top_layer_grid(hvae, rows=3, columns=5)  # (15, 20), row by row
    assert grid.shape == (15, 20)
    torch.manual_seed(4)  # the same draws, in the helper's order: the top layer, then one noise per column
    top = hvae.prior.top().sample((3,))
    eps = torch.randn(5, 4)
    for r in range(3):
        torch.testing.assert_close(grid[5 * r:5 * (r + 1)], hvae.generate(top[r].expand(5, 2), [eps]))
    assert not torch.allclose(grid[0], grid[5]) and not torch.allclose(grid[0], grid[1])
    with pytest.raises(ValueError, match="rows must be a positive integer"):
        top_layer_grid(hvae, rows=0)
    from pyrovae.models import build_vae

    with pytest.raises(TypeError, match="needs a HierarchicalVAE"):
        top_layer_grid(build_vae(x_shape=(20,), z_dim=2, hidden=(8,)))


@pytest.mark.parametrize("z_dims", [(4, 2), (5, 3, 2)])
def test_every_inspection_figure_of_a_hierarchical_vae(tmp_path, z_dims, monkeypatch):
    from pyrovae.cli import report
    from pyrovae.cli.report import FIGURES, inspection_figures

    torch.manual_seed(0)
    hvae = build_hierarchical_vae(z_dims=z_dims, hidden=((16,),) * len(z_dims)).eval()
    x = (torch.rand(40, 1, 28, 28) < 0.2).float()  # (40, 1, 28, 28)
    rows = {}
    real_grid = report.plots.labelled_grid

    def grid(images, **kw):
        rows[kw["path"].stem] = kw.get("row_labels")
        return real_grid(images, **kw)

    monkeypatch.setattr(report.plots, "labelled_grid", grid)
    paths, notes = inspection_figures(hvae, x, torch.arange(40) % 10, tmp_path)
    # the traversal varies units of z1, the only layer p(x|z1) reads; the top-layer grid has a row per z_L draw
    assert len(rows["traversal"]) == z_dims[0] and all(r.startswith("z1[") for r in rows["traversal"])
    assert rows["top_layer"] == [f"z{len(z_dims)} #{i}" for i in range(1, 7)]
    # everything but the 2-D-only maps, the top layer's grid included; a chain of layers has no
    # closed-form mean, so interpolation, traversal and the attribute vectors use its moments
    assert set(paths) == set(FIGURES) - {"manifold", "true_posterior"}
    assert all(p.stat().st_size > 1000 for p in paths.values())
    assert notes[0] == f"manifold, true_posterior: skipped, they need a 2-D latent (this model has z_dim={sum(z_dims)})"


def test_fit_with_warmup_and_a_bitwise_resume(tmp_path):
    x = _tiny_data(200)
    kw = {"epochs": 2, "batch_size": 50, "binarize": None, "device": "cpu", "progress": False, "seed": 3,
          "warmup_epochs": 1.0}
    torch.manual_seed(0)
    straight = _tiny("top_down", free_bits=0.1)
    init = {k: v.clone() for k, v in straight.state_dict().items()}
    h = fit(straight, x, x[:50], **kw)
    assert all(math.isfinite(v) for v in h.test_elbo) and h.beta == [1.0, 1.0]

    path = tmp_path / "h.pt"
    pyro.clear_param_store()
    first = _tiny("top_down", free_bits=0.1)
    first.load_state_dict(init)
    fit(first, x, x[:50], **{**kw, "epochs": 1}, checkpoint=path)
    pyro.clear_param_store()
    resumed = _tiny("top_down", free_bits=0.1)  # fresh weights: the checkpoint replaces them
    fit(resumed, x, x[:50], **kw, checkpoint=path, resume=True)
    for (k, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), k
    # what a loader needs to rebuild the model from the checkpoint alone: its config and the builder
    payload = ckpt.read_checkpoint(path)
    assert payload["config"]["model"] == "hierarchical" and payload["epoch"] == 2
    rebuilt, _ = ckpt.load_checkpoint(path)  # what `pyrovae evaluate` and `pyrovae inspect` do
    assert isinstance(rebuilt, HierarchicalVAE) and rebuilt.top_down
    for (k, a), (_, b) in zip(resumed.state_dict().items(), rebuilt.state_dict().items()):
        assert torch.equal(a, b), k


def test_a_hierarchical_checkpoint_with_a_forged_config_is_refused(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "h.pt"
    fit(_tiny("bottom_up"), _tiny_data(100), epochs=1, batch_size=50, binarize=None, progress=False,
        checkpoint=path)
    payload = ckpt.read_checkpoint(path)
    for forged, problem in [({"hidden": [[4096] * 8] * 2}, "refusing to build it"),  # a huge model from tiny weights
                            ({"guide": "sideways"}, "does not describe a hierarchical VAE"),
                            ({"colour": "red"}, "unknown hierarchical config fields")]:
        torch.save({**payload, "config": {**payload["config"], **forged}}, tmp_path / "forged.pt")
        with pytest.raises(ckpt.CheckpointError, match=problem):
            ckpt.load_checkpoint(tmp_path / "forged.pt")


def test_config_builds_burdas_network_and_round_trips():
    hvae = build_hierarchical_vae()
    enc = hvae.encoder.layers

    def sizes(seq):
        return [m.out_features for m in seq.modules() if isinstance(m, torch.nn.Linear)]

    assert sizes(enc[0]) == [200, 200, 200] and sizes(enc[1]) == [100, 100, 100]  # heads emit (loc, scale)
    assert sizes(hvae.prior.conditionals[0]) == [100, 100, 200] and sizes(hvae.decoder) == [200, 200, 784]
    assert hvae.z_dims == (100, 50) and hvae.x_shape == (1, 28, 28)
    again = build_hierarchical_vae(hvae.config)
    assert {k: v.shape for k, v in again.state_dict().items()} == {k: v.shape for k, v in hvae.state_dict().items()}
    assert HierarchicalConfig.from_dict(hvae.config).to_dict() == hvae.config
    top_down = build_hierarchical_vae(guide="top_down", combine="residual", z_dims=(8, 6, 4), hidden=[(16,)] * 3)
    assert top_down.top_down and top_down.sites == ("z1", "z2", "z3")
    with pytest.raises(ValueError, match="unknown guide"):
        build_hierarchical_vae(guide="sideways")
    with pytest.raises(ValueError, match="at least 2 latent layers"):
        build_hierarchical_vae(z_dims=(4,), hidden=[(8,)])
    with pytest.raises(ValueError, match="one tuple of hidden widths per latent layer"):
        build_hierarchical_vae(hidden=[(8,)])


@pytest.mark.parametrize("kind", ["affine", "spline"])
def test_a_flow_prior_on_the_top_layer_trains_scores_and_round_trips(tmp_path, kind):
    torch.manual_seed(0)
    hvae = _tiny("top_down", prior="flow", prior_flows=2, flow_kind=kind)
    x = _tiny_data(100)
    params_before = {k: v.clone() for k, v in hvae.prior.top.named_parameters()}
    path = tmp_path / "flow.pt"
    fit(hvae, x, epochs=2, batch_size=50, binarize=None, progress=False, loss="iwae", num_particles=3,
        checkpoint=path)
    moved = [k for k, v in hvae.prior.top.named_parameters() if not torch.equal(v, params_before[k])]
    assert moved, "the flow prior's parameters did not train"
    # the importance-sampled log p(x) is a tighter bound than the ELBO, up to its Monte Carlo error
    ll = evaluate.log_likelihood(hvae, x[:20], num_samples=256)
    elbo = evaluate.elbo(hvae, x[:20], num_samples=64)
    assert float(ll.log_px.mean()) >= float(elbo.mean()) - 3 * float(ll.stderr.max())
    rebuilt, _ = ckpt.load_checkpoint(path)  # the size bound counts the flow's steps: not refused
    assert rebuilt.config["prior"] == "flow" and rebuilt.config["flow_kind"] == kind
    torch.manual_seed(5)
    a = hvae.log_weights(x[:4], 8)
    torch.manual_seed(5)
    torch.testing.assert_close(rebuilt.log_weights(x[:4], 8), a)


@pytest.mark.parametrize(("field", "value", "says"), [("flow_kind", "cubic", "unknown flow_kind 'cubic'"),
                                                      ("prior_flows", 0, "prior_flows must be a positive integer"),
                                                      ("prior", "vamp", "unknown top prior 'vamp'")])
def test_flow_settings_are_checked(field, value, says):
    with pytest.raises(ValueError, match=says):
        build_hierarchical_vae(**{field: value})
