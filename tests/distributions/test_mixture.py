"""DiagonalNormalMixture: the matmul log-density against MixtureSameFamily's broadcast one."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import pytest
import torch

from pyrovae.distributions import DiagonalNormalMixture, diagonal_normal_mixture


def _pair(k=7, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(k, generator=g)
    loc = 3 * torch.randn(k, d, generator=g, dtype=torch.float64)
    scale = 0.01 + torch.rand(k, d, generator=g, dtype=torch.float64)  # some narrow components
    fast = diagonal_normal_mixture(logits.double(), loc, scale)
    ref = dist.MixtureSameFamily(dist.Categorical(logits=logits.double()), dist.Normal(loc, scale).to_event(1))
    return fast, ref


@pytest.mark.parametrize("shape", [(11,), (3, 4), ()])
def test_log_prob_matches_broadcast_mixture(shape):
    fast, ref = _pair()
    z = ref.sample(shape)  # (*shape, d): points near the components, where cancellation bites
    far = 10 * torch.randn(*shape, 5, dtype=torch.float64)  # and points far from all of them
    for v in (z, far):
        assert fast.log_prob(v).shape == ref.log_prob(v).shape
        torch.testing.assert_close(fast.log_prob(v), ref.log_prob(v), rtol=1e-9, atol=1e-8)


def test_float32_inputs_are_accurate_to_float32():
    fast, ref = _pair()
    f32 = diagonal_normal_mixture(fast.mixture_distribution.logits.float(),
                                  fast.component_distribution.base_dist.loc.float(),
                                  fast.component_distribution.base_dist.scale.float())
    z = ref.sample((50,))
    out = f32.log_prob(z.float())
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), ref.log_prob(z), rtol=1e-5, atol=1e-3)


def test_gradients_match():
    fast, ref = _pair()
    params = [fast.component_distribution.base_dist.loc, fast.component_distribution.base_dist.scale]
    z = ref.sample((20,))
    grads = []
    for d in (fast, ref):
        ps = [p.detach().requires_grad_() for p in params]
        m = type(d)(d.mixture_distribution, dist.Normal(*ps).to_event(1))
        m.log_prob(z).sum().backward()
        grads.append([p.grad for p in ps])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-9)


def test_plate_expand_keeps_the_fast_path_and_shapes():
    fast, ref = _pair()
    ex = fast.expand((6,))
    assert isinstance(ex, DiagonalNormalMixture) and ex.batch_shape == (6,)
    assert ex._shared_params() is not None
    z = ref.sample((4, 6))
    torch.testing.assert_close(ex.log_prob(z), ref.expand((6,)).log_prob(z), rtol=1e-9, atol=1e-8)
    # inside a Pyro plate (the model's "data" plate expands the prior this way)
    with pyro.plate("data", 6):
        site_dist = pyro.poutine.trace(lambda: pyro.sample("z", fast)).get_trace().nodes["z"]["fn"]
    assert site_dist.batch_shape == (6,)


def test_per_batch_mixtures_fall_back_to_the_broadcast():
    g = torch.Generator().manual_seed(1)
    loc, scale = torch.randn(2, 3, 4, generator=g), 0.5 + torch.rand(2, 3, 4, generator=g)
    logits = torch.zeros(2, 3)
    fast = DiagonalNormalMixture(dist.Categorical(logits=logits), dist.Normal(loc, scale).to_event(1))
    ref = dist.MixtureSameFamily(dist.Categorical(logits=logits), dist.Normal(loc, scale).to_event(1))
    assert fast._shared_params() is None
    z = torch.randn(5, 2, 4)
    torch.testing.assert_close(fast.log_prob(z), ref.log_prob(z))


def test_components_must_be_diagonal_normals():
    with pytest.raises(ValueError, match=r"Normal\(loc, scale\).to_event\(1\)"):
        DiagonalNormalMixture(dist.Categorical(logits=torch.zeros(2)), dist.Laplace(torch.zeros(2, 3), 1.0).to_event(1))
