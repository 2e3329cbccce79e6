"""Inspection computations: the grid posterior against the closed form of a linear-Gaussian
VAE, and the shapes and invariants of latent walks, snapshots and anomaly helpers."""

from __future__ import annotations

import math

import pytest
import torch

from pyrovae import inspect
from pyrovae.train import fit
from tests import linear_gaussian as lg
from tests.small_models import trained_vae


def test_grid_posterior_matches_the_exact_posterior():
    W, b, sigma = lg.random_problem(D=6, k=2, sigma=0.6)
    A, c, scale = lg.exact_guide(W, b, sigma)
    vae = lg.build(W, b, sigma, A, c, 1.5 * scale)  # a deliberately too-broad guide
    x = W @ torch.tensor([0.7, -0.4], dtype=W.dtype) + b
    g = inspect.posterior_grid(vae, x, n=161)
    mean, cov = lg.exact_posterior(W, b, sigma, x[None])
    # the midpoint rule on a 161^2 grid over +-5 sd: moments to 1e-4, the evidence to 1e-4 nats
    assert torch.allclose(g.mean, mean[0], atol=1e-4)
    assert torch.allclose(g.cov, cov, atol=1e-4)
    assert g.log_px == pytest.approx(float(lg.exact_log_px(W, b, sigma, x[None])), abs=1e-4)
    # both KL directions against the closed forms (q is Gaussian, so is p(z|x))
    q_cov = torch.diag((1.5 * scale) ** 2)
    q_mean = (x @ A.T + c)[None]
    assert g.kl_q_p == pytest.approx(float(lg.kl_gaussians(q_mean, q_cov, mean, cov)), abs=1e-3)
    assert g.kl_p_q == pytest.approx(float(lg.kl_gaussians(mean, cov, q_mean, q_cov)), abs=1e-3)
    assert g.log_post.shape == g.log_q.shape == (161, 161)
    # the figures' contour levels: each density's own k-sigma regions (both are Gaussian here,
    # so the level is the peak's minus k^2 / 2), which hold 39.3%, 86.5% and 98.9% of the mass
    area = float((g.z0[1] - g.z0[0]) * (g.z1[1] - g.z1[0]))
    for log_f, levels in ((g.log_post, g.post_levels), (g.log_q, g.q_levels)):
        for k, (mass, level) in enumerate(zip(g.masses, levels), start=1):
            assert float(level) == pytest.approx(float(log_f.max()) - k * k / 2, abs=0.03 * k)
            assert float((log_f.exp() * area)[log_f >= level].sum()) == pytest.approx(mass, abs=5e-3)


def _shifted_linear_gaussian(prior_mean, z_true, sigma):
    """A linear-Gaussian VAE with prior N(prior_mean, I) and a guide stuck at N(0, 0.3^2 I),
    an input from ``z_true``, and its exact posterior mean and log evidence."""
    import pyro.distributions as dist

    from pyrovae.models import VAE

    W, b, _ = lg.random_problem(D=6, k=2, sigma=sigma)
    m = torch.tensor(prior_mean, dtype=W.dtype)
    decoder = torch.nn.Linear(2, 6).double()
    with torch.no_grad():
        decoder.weight.copy_(W)
        decoder.bias.copy_(b)
    encoder = lg.LinearEncoder(torch.zeros(2, 6, dtype=W.dtype), torch.zeros(2, dtype=W.dtype),
                               torch.full((2,), 0.3, dtype=W.dtype))
    from pyrovae import likelihoods

    vae = VAE(encoder, decoder, dist.Normal(m, torch.ones(2, dtype=W.dtype)).to_event(1),
              likelihoods.Gaussian(scale=sigma), x_shape=(6,), z_dim=2)
    x = W @ torch.tensor(z_true, dtype=W.dtype) + b
    precision = torch.eye(2, dtype=W.dtype) + W.T @ W / sigma**2
    mean = torch.linalg.solve(precision, m + W.T @ (x - b) / sigma**2)
    evidence = torch.distributions.MultivariateNormal(W @ m + b, W @ W.T + sigma**2 * torch.eye(6, dtype=W.dtype))
    return vae, x, mean, float(evidence.log_prob(x))


@pytest.mark.parametrize(("prior_mean", "z_true", "sigma"), [
    ((9.0, -8.0), (9.5, -7.5), 0.6),  # the prior's mass far from the origin (a ±4 first box misses it)
    ((0.0, 0.0), (9.0, -8.0), 0.3),  # a sharp likelihood pulls p(z|x) far outside the prior's span
])
def test_grid_posterior_finds_a_posterior_far_from_the_origin(prior_mean, z_true, sigma):
    vae, x, mean, log_px = _shifted_linear_gaussian(prior_mean, z_true, sigma)
    g = inspect.posterior_grid(vae, x, n=161)
    assert torch.allclose(g.mean, mean, atol=1e-3)
    assert g.log_px == pytest.approx(log_px, abs=1e-3)


def test_grid_posterior_rejects_larger_latents_and_batches():
    W, b, sigma = lg.random_problem(D=6, k=3)
    with pytest.raises(ValueError, match="2-D latent"):
        inspect.posterior_grid(lg.build(W, b, sigma, *lg.exact_guide(W, b, sigma)), b)
    W, b, sigma = lg.random_problem(D=6, k=2)
    with pytest.raises(ValueError, match="one input"):
        inspect.posterior_grid(lg.build(W, b, sigma, *lg.exact_guide(W, b, sigma)), torch.stack([b, b]))


def test_interpolation_ends_and_norms():
    z0, z1 = torch.tensor([3.0, 0.0]), torch.tensor([0.0, 3.0])
    for method in ("linear", "spherical"):
        path = inspect.interpolate(z0, z1, 7, method)
        assert path.shape == (7, 2)
        assert torch.allclose(path[0], z0) and torch.allclose(path[-1], z1, atol=1e-6)
    # slerp between equal-norm codes keeps the norm; lerp cuts the corner
    assert torch.allclose(inspect.interpolate(z0, z1, 7, "spherical").norm(dim=1), torch.full((7,), 3.0), atol=1e-5)
    assert float(inspect.interpolate(z0, z1, 7, "linear").norm(dim=1)[3]) == pytest.approx(3 / math.sqrt(2), abs=1e-5)
    with pytest.raises(ValueError, match="unknown interpolation"):
        inspect.interpolate(z0, z1, 5, "cubic")


def test_slerp_is_an_alias_of_spherical_interpolation():
    z0, z1 = torch.tensor([3.0, 0.0, 1.0]), torch.tensor([0.0, 2.0, -1.0])
    slerp = inspect.interpolate(z0, z1, 9, "slerp")
    assert torch.equal(slerp, inspect.interpolate(z0, z1, 9, "spherical"))
    assert not torch.allclose(slerp, inspect.interpolate(z0, z1, 9, "linear"))  # a different path from lerp
    vae, x, _ = trained_vae()
    assert torch.equal(inspect.interpolate_inputs(vae, x[0], x[1], 5, "slerp"),
                       inspect.interpolate_inputs(vae, x[0], x[1], 5, "spherical"))


def test_prior_quantiles_are_normal_inverse_cdf():
    v = inspect.prior_quantiles(3, 0.05, 0.95)
    assert torch.allclose(v, torch.tensor([-1.6449, 0.0, 1.6449]), atol=1e-4)
    with pytest.raises(ValueError, match="quantile range"):
        inspect.prior_quantiles(3, 0.0, 1.0)


def test_walks_on_a_trained_model_have_the_documented_layout():
    vae, x, _y = trained_vae()
    grid = inspect.manifold_grid(vae, n=5)
    images = grid.images
    assert images.shape == (25, 1, 28, 28) and grid.z0.shape == grid.z1.shape == (5,)
    z_top_left = torch.tensor([grid.z0[0], grid.z1[-1]])
    assert torch.allclose(images[0], vae.decode_mean(z_top_left[None])[0])  # top row = largest z[1]
    z_bottom_right = torch.tensor([grid.z0[-1], grid.z1[0]])
    assert torch.allclose(images[-1], vae.decode_mean(z_bottom_right[None])[0])
    trav, vals = inspect.traversal(vae, x[0], dims=[1], n=4)
    z = vae.encode(x[:1]).mean[0].clone()
    z[1] = vals[2]
    assert torch.allclose(trav[2], vae.decode_mean(z[None])[0], atol=1e-6)
    decodes = inspect.posterior_decodes(vae, x[:3], 5)
    assert decodes.shape == (3, 5, 1, 28, 28)
    assert float((decodes[:, 0] - decodes[:, 1]).abs().max()) > 0  # different draws, different decodes
    strip = inspect.interpolate_inputs(vae, x[0], x[1], 6, "spherical")
    assert torch.allclose(strip[0], vae.reconstruct(x[:1])[0], atol=1e-5)


def test_attribute_vectors():
    vae, x, y = trained_vae()
    codes = inspect.encode_dataset(vae, x, y)
    mass = inspect.stroke_thickness(x)
    assert torch.equal(mass, x.flatten(1).sum(1))
    v = inspect.thickness_vector(codes.loc, x, y)
    assert v.shape == (2,)
    # adding the thickness vector makes decodes heavier on average
    out = inspect.apply_attribute(vae, x[:50], v, amounts=(0.0, 1.0)).reshape(50, 2, -1)
    assert float(out[:, 1].sum(1).mean()) > float(out[:, 0].sum(1).mean())
    cv = inspect.class_vector(codes.loc, y, 3, 8)
    assert torch.allclose(cv, codes.loc[y == 8].mean(0) - codes.loc[y == 3].mean(0))
    with pytest.raises(ValueError, match="both with and without"):
        inspect.attribute_vector(codes.loc, torch.ones(len(codes.loc), dtype=torch.bool))


def test_anomaly_scores_rank_corrupted_inputs_first():
    vae, x, _ = trained_vae()
    clean = x[:40]
    mixed = torch.cat([clean, inspect.corrupt(x[40:45], "flip", 0.3)])
    scores = inspect.anomaly_scores(vae, mixed)
    assert scores.neg_elbo.shape == scores.recon_error.shape == (45,)
    top = set(inspect.rank(scores.neg_elbo, 5).tolist())
    assert top == set(range(40, 45))  # 30% flipped pixels are far less likely than any clean digit
    noisy = inspect.corrupt(clean, "flip", 0.1)
    target = vae.reconstruct(clean)
    # the decode of the noisy input lands near the decode of the clean one (measured 0.03 vs 0.21
    # mean absolute difference for the input itself); allow half the input's distance
    assert float((inspect.denoise(vae, noisy) - target).abs().mean()) < 0.5 * float((noisy - target).abs().mean())
    assert inspect.denoise(vae, noisy, num_samples=4).shape == clean.shape
    with pytest.raises(ValueError, match="unknown noise"):
        inspect.corrupt(clean, "blur")


def test_latent_snapshots_callback_records_every_epoch(mnist_small):
    x_train, _, x_test, y_test = mnist_small
    from pyrovae.models import build_vae

    vae = build_vae(z_dim=3, hidden=(32,))
    snaps = inspect.LatentSnapshots((x_test[:200] > 0.5).float(), y_test[:200])
    snaps.record(0, vae)
    fit(vae, x_train[:300], epochs=2, batch_size=100, device="cpu", progress=False, callbacks=[snaps])
    assert snaps.epochs == [0, 1, 2]
    assert all(p.shape == (200, 2) for p in snaps.points)  # 3-D codes projected by PCA
    assert not torch.allclose(snaps.points[0], snaps.points[2])  # training moved them


# ---------------------------------------------------------------------------------------
# figures that follow the model's own prior: spans, the manifold grid
# ---------------------------------------------------------------------------------------
def _tiny_vae(prior, z_dim: int = 2):
    from pyrovae import likelihoods, nets
    from pyrovae.models import VAE

    torch.manual_seed(0)
    return VAE(nets.MLPEncoder((4,), (8,), z_dim), nets.MLPDecoder(z_dim, (8,), (4,)), prior,
               likelihoods.Gaussian(1.0)).eval()


FAR_MEANS = torch.tensor([[-8.0, 6.0], [7.0, -5.0], [0.5, 9.0]])  # components far from N(0, I)'s mass


def _far_mixture():
    from pyrovae import priors

    prior = priors.MixtureOfGaussians(2, num_components=3)
    with torch.no_grad():
        prior.locs.copy_(FAR_MEANS)
        prior.raw_scales.fill_(-1.0)  # softplus(-1) = 0.31: tight components
    return prior


def test_manifold_grid_covers_every_component_of_a_far_mixture_prior():
    grid = inspect.manifold_grid(_tiny_vae(_far_mixture()), n=15)
    step0, step1 = float(grid.z0[1] - grid.z0[0]), float(grid.z1[1] - grid.z1[0])
    for mean in FAR_MEANS:
        # inside the grid's box, and a grid node within one step of the component's mean
        assert float(grid.z0[0]) < float(mean[0]) < float(grid.z0[-1])
        assert float(grid.z1[0]) < float(mean[1]) < float(grid.z1[-1])
        assert float((grid.z0 - mean[0]).abs().min()) <= step0
        assert float((grid.z1 - mean[1]).abs().min()) <= step1
    assert grid.images.shape == (15 * 15, 4)
    # a fixed N(0, 1) quantile grid (the old behaviour) reaches none of the three means
    old = inspect.prior_quantiles(15)
    assert all(float(m.abs().max()) > float(old.abs().max()) + 2 for m in FAR_MEANS)


def test_manifold_grid_follows_any_pyro_distribution_and_vamp_prior():
    import pyro.distributions as dist

    from pyrovae import priors

    loc, b = torch.tensor([5.0, -3.0]), 0.5
    grid = inspect.manifold_grid(_tiny_vae(dist.Laplace(loc, torch.full((2,), b)).to_event(1)), n=9)
    # the 1% and 99% quantiles of a Laplace: loc -/+ b ln(50); 10^4 draws give them to ~0.05
    for values, m in ((grid.z0, 5.0), (grid.z1, -3.0)):
        assert float(values[0]) == pytest.approx(m - b * math.log(50), abs=0.2)
        assert float(values[-1]) == pytest.approx(m + b * math.log(50), abs=0.2)
    # the VampPrior: the grid spans its own draws (the encoder at its pseudo-inputs)
    vae = _tiny_vae(None)
    vae_vamp = _tiny_vae(priors.VampPrior(vae.encoder, num_components=5, x_shape=(4,)))
    draws = inspect.prior_samples(vae_vamp, 10_000)
    grid = inspect.manifold_grid(vae_vamp, n=7)
    assert float(grid.z0[0]) == pytest.approx(float(torch.quantile(draws[:, 0], 0.01)), abs=1e-5)
    assert float(grid.z1[-1]) == pytest.approx(float(torch.quantile(draws[:, 1], 0.99)), abs=1e-5)


def test_manifold_grid_from_codes_and_quantile_spacing():
    from pyrovae import priors

    vae = _tiny_vae(priors.StandardNormal(2))
    codes = torch.randn(2000, 2) * 0.5 + torch.tensor([10.0, -10.0])  # an aggregate posterior far from the prior
    grid = inspect.manifold_grid(vae, n=5, codes=codes, source="codes")
    assert float(grid.z0[0]) > 8 and float(grid.z1[-1]) < -8
    both = inspect.manifold_grid(vae, n=5, codes=codes, source="both")  # the union of the two spans
    assert float(both.z0[0]) < -2 and float(both.z0[-1]) > 10 and float(both.z1[0]) < -10 and float(both.z1[-1]) > 2
    # quantile spacing under N(0, I) is Kingma & Welling's inverse-CDF grid
    q = inspect.manifold_grid(vae, n=5, low=0.05, high=0.95, spacing="quantile", num_samples=40_000)
    assert torch.allclose(q.z0.double(), inspect.prior_quantiles(5).double(), atol=0.05)
    with pytest.raises(ValueError, match="pass codes="):
        inspect.manifold_grid(vae, source="codes")
    with pytest.raises(ValueError, match="two different latent dimensions"):
        inspect.manifold_grid(vae, dims=(1, 1))
    with pytest.raises(ValueError, match="unknown spacing"):
        inspect.manifold_grid(vae, spacing="log")


def test_manifold_grid_slices_larger_latents_through_the_priors_median():
    from pyrovae import priors

    prior = priors.LearnedGaussian(3)
    with torch.no_grad():
        prior.loc.copy_(torch.tensor([1.0, 2.0, -4.0]))
    vae = _tiny_vae(prior, z_dim=3)
    grid = inspect.manifold_grid(vae, n=4, dims=(0, 1))
    assert float(grid.base[2]) == pytest.approx(-4.0, abs=0.05)  # not the origin
    z = grid.base.repeat(1, 1)
    z[0, 0], z[0, 1] = grid.z0[0], grid.z1[-1]
    assert torch.allclose(grid.images[0], vae.decode_mean(z)[0])


# ---------------------------------------------------------------------------------------
# highest-density levels and the prior's density on a grid
# ---------------------------------------------------------------------------------------
def _standard_normal_grid(n: int = 401, half: float = 6.0, shift: float = 0.0):
    z = torch.linspace(-half, half, n, dtype=torch.float64)
    zz = torch.stack(torch.meshgrid(z, z, indexing="ij"), -1)  # (n, n, 2)
    return torch.distributions.Normal(0.0, 1.0).log_prob(zz).sum(-1) + shift  # (n, n)


def test_sigma_masses_are_the_chi2_closed_form():
    assert inspect.sigma_mass(1.0) == pytest.approx(1 - math.exp(-0.5), abs=1e-12)  # 0.3935
    assert inspect.sigma_mass(2.0) == pytest.approx(1 - math.exp(-2.0), abs=1e-12)  # 0.8647
    assert inspect.sigma_mass(1.0, dim=1) == pytest.approx(math.erf(1 / math.sqrt(2)), abs=1e-12)  # 0.6827
    with pytest.raises(ValueError, match="must be positive"):
        inspect.sigma_mass(0.0)


def test_hdr_levels_enclose_the_stated_mass_of_a_gaussian():
    log_f = _standard_normal_grid()
    masses = inspect.SIGMA_MASSES  # 1, 2 and 3 sigma
    levels = inspect.hdr_levels(log_f, masses)
    for k, (m, level) in enumerate(zip(masses, levels), start=1):
        # the k-sigma region of N(0, I) is the disc r <= k, where the density is exp(-k^2/2) / (2 pi)
        assert float(level) == pytest.approx(-k * k / 2 - math.log(2 * math.pi), abs=0.02 * k * k)
        # the cells at or above the level hold the mass (the grid's cell masses summed)
        cell = log_f.exp() * (12 / 400) ** 2
        assert float(cell[log_f >= level].sum()) == pytest.approx(m, abs=2e-3)
    assert levels[0] > levels[1] > levels[2]
    # unnormalised and far below float underflow: the same levels, shifted by the constant
    shifted = inspect.hdr_levels(_standard_normal_grid(shift=-5000.0), masses)
    assert torch.allclose(shifted, levels - 5000.0)
    with pytest.raises(ValueError, match=r"in \(0, 1\)"):
        inspect.hdr_levels(log_f, (0.5, 1.0))
    with pytest.raises(ValueError, match=r"zero .* everywhere"):
        inspect.hdr_levels(torch.full((3, 3), -math.inf))


def test_prior_density_is_the_priors_own_log_prob():
    from pyrovae import priors

    mixture = _far_mixture()
    vae = _tiny_vae(mixture)
    g = inspect.prior_density(vae, n=31)
    assert g.kind == "exact" and g.log_density.shape == (31, 31)
    zz = torch.stack(torch.meshgrid(g.z1, g.z0, indexing="ij")[::-1], -1)  # (31, 31, 2) as (z0, z1)
    assert torch.allclose(g.log_density, mixture().log_prob(zz.reshape(-1, 2)).reshape(31, 31), atol=1e-5)
    for mean in FAR_MEANS:  # the grid spans every component
        assert float(g.z0[0]) < float(mean[0]) < float(g.z0[-1]) and float(g.z1[0]) < float(mean[1]) < float(g.z1[-1])
    # z_dim = 3: the exact 2-D marginal of a diagonal Gaussian; a slice for a family without one
    gauss = priors.LearnedGaussian(3)
    with torch.no_grad():
        gauss.loc.copy_(torch.tensor([1.0, 2.0, -4.0]))
    g = inspect.prior_density(_tiny_vae(gauss, z_dim=3), dims=(2, 0), n=21)
    assert g.kind == "marginal" and g.dims == (2, 0)
    zz = torch.stack(torch.meshgrid(g.z1, g.z0, indexing="ij")[::-1], -1).reshape(-1, 2)  # (z[2], z[0])
    scale = gauss().base_dist.scale.detach()[[2, 0]]  # softplus(0.5413): 1 to 4 digits
    expected = torch.distributions.Normal(torch.tensor([-4.0, 1.0]), scale).log_prob(zz).sum(-1).reshape(21, 21)
    assert torch.allclose(g.log_density, expected, atol=1e-5)
    import pyro.distributions as dist

    laplace = dist.Laplace(torch.zeros(3), torch.ones(3)).to_event(1)
    g = inspect.prior_density(_tiny_vae(laplace, z_dim=3), n=11)
    assert g.kind == "slice"


def test_walks_use_the_moments_of_a_guide_without_a_closed_form_mean():
    from pyrovae.evaluate.posterior import moments
    from pyrovae.models import build_vae

    torch.manual_seed(0)
    vae = build_vae(x_shape=(12,), z_dim=3, hidden=(8,), guide_flows=2).eval()  # IAF guide: .mean not implemented
    x = (torch.rand(4, 12) < 0.5).float()
    with pytest.raises(NotImplementedError):
        vae.encode(x).mean  # noqa: B018
    z = moments(vae.encode(x)).loc  # (4, 3), Monte Carlo with fixed draws: the same on every call
    path = inspect.interpolate_inputs(vae, x[0], x[1], 5)
    torch.testing.assert_close(path[[0, -1]], vae.decode_mean(z[:2]))
    images, values = inspect.traversal(vae, x[2], dims=[0], n=3)
    torch.testing.assert_close(images[1], vae.decode_mean(torch.cat([values[1:2], z[2, 1:]])[None])[0])
    v = torch.tensor([1.0, 0.0, -1.0])
    out = inspect.apply_attribute(vae, x[:2], v, (0.0, 2.0))  # (2 * 2, 12): each input at each amount
    torch.testing.assert_close(out[[0, 1]], vae.decode_mean(torch.stack([z[0], z[0] + 2 * v])))
