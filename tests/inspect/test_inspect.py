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


def test_prior_quantiles_are_normal_inverse_cdf():
    v = inspect.prior_quantiles(3, 0.05, 0.95)
    assert torch.allclose(v, torch.tensor([-1.6449, 0.0, 1.6449]), atol=1e-4)
    with pytest.raises(ValueError, match="quantile range"):
        inspect.prior_quantiles(3, 0.0, 1.0)


def test_walks_on_a_trained_model_have_the_documented_layout():
    vae, x, _y = trained_vae()
    images, values = inspect.manifold_grid(vae, n=5)
    assert images.shape == (25, 1, 28, 28) and values.shape == (5,)
    z_top_left = torch.tensor([values[0], values[-1]])
    assert torch.allclose(images[0], vae.decode_mean(z_top_left[None])[0])  # top row = largest z[1]
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
