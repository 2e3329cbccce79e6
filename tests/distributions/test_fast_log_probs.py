"""BernoulliLogits, ReparamNormal and UnitNormal against torch's own formulas: values, gradients,
broadcasting, dtypes and extreme logits."""

from __future__ import annotations

import math

import pyro.distributions as dist
import pytest
import torch
import torch.nn.functional as F

from pyrovae._util.elementwise import fast_path
from pyrovae.distributions import BernoulliLogits, ReparamNormal, UnitNormal, bernoulli_log_prob
from pyrovae.distributions.bernoulli import _FusedBernoulliLogProb
from pyrovae.nets.functional import softplus


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 2e-6), (torch.float64, 1e-12)])
def test_bernoulli_log_prob_is_minus_bce_with_logits_value_and_gradient(dtype, tol):
    g = torch.Generator().manual_seed(0)
    logits = (torch.randn(8, 40, 60, generator=g, dtype=dtype) * 12).requires_grad_()  # up to |l| ~ 60
    x = torch.rand(40, 60, generator=g, dtype=dtype).bernoulli()  # broadcast against the leading 8
    assert fast_path(logits)  # large enough for the fused kernel
    ours = bernoulli_log_prob(logits, x)
    ref = -F.binary_cross_entropy_with_logits(*torch.broadcast_tensors(logits, x), reduction="none")
    assert ours.shape == (8, 40, 60)
    torch.testing.assert_close(ours, ref, rtol=tol, atol=tol * 10)
    (g_ours,) = torch.autograd.grad(ours.sum(), logits)
    (g_ref,) = torch.autograd.grad(ref.sum(), logits)
    torch.testing.assert_close(g_ours, g_ref, rtol=tol, atol=tol)


def test_bernoulli_log_prob_gradcheck_in_both_arguments():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(5, 7, generator=g, dtype=torch.float64, requires_grad=True)
    x = torch.rand(5, 7, generator=g, dtype=torch.float64, requires_grad=True)  # grey levels, as a surrogate
    assert torch.autograd.gradcheck(_FusedBernoulliLogProb.apply, (logits, x))
    assert torch.autograd.gradcheck(bernoulli_log_prob, (logits, x))  # torch's kernel, for small tensors


def test_bernoulli_logits_is_pyros_bernoulli_with_the_fused_log_prob():
    logits = torch.tensor([[-800.0, -3.0, 0.0, 3.0, 800.0]])
    d = BernoulliLogits(logits=logits).to_event(1)
    x = torch.tensor([[0.0, 1.0, 1.0, 0.0, 1.0]])
    expected = dist.Bernoulli(logits=logits).to_event(1).log_prob(x)
    torch.testing.assert_close(d.log_prob(x), expected)
    assert torch.isfinite(d.log_prob(x)).all()  # |l| = 800: no overflow
    assert isinstance(d.base_dist.expand((3, 5)), BernoulliLogits)
    assert d.sample().shape == (1, 5) and d.mean.shape == (1, 5)
    with pytest.raises(ValueError):
        BernoulliLogits(logits=logits, validate_args=True).log_prob(torch.full((1, 5), 0.5 + 3))


def test_reparam_normal_scores_its_own_draw_like_normal_and_any_other_value_too():
    torch.manual_seed(0)
    loc = torch.randn(6, 3, requires_grad=True)
    scale = (torch.rand(6, 3) + 0.1).requires_grad_()
    q = ReparamNormal(loc, scale)
    torch.manual_seed(1)
    z = q.rsample()
    torch.manual_seed(1)
    z_ref = dist.Normal(loc, scale).rsample()
    torch.testing.assert_close(z, z_ref)  # the same draw as Normal's
    ours, ref = q.log_prob(z), dist.Normal(loc, scale).log_prob(z_ref)
    torch.testing.assert_close(ours, ref)
    g_ours = torch.autograd.grad(ours.sum(), (loc, scale), allow_unused=True)  # loc: not in the graph at all
    g_ref = torch.autograd.grad(ref.sum(), (loc, scale))  # total derivative along the draw
    assert g_ours[0] is None and float(g_ref[0].abs().max()) < 1e-5  # d/d loc is zero along the draw
    torch.testing.assert_close(g_ours[1], g_ref[1], rtol=1e-5, atol=1e-6)
    other = torch.randn(6, 3)
    torch.testing.assert_close(q.log_prob(other), dist.Normal(loc, scale).log_prob(other))
    assert q.rsample((2,)).shape == (2, 6, 3)


def test_unit_normal_matches_the_standard_normal_with_broadcasting():
    d = UnitNormal(torch.zeros(3), torch.ones(3))
    z = torch.randn(4, 3, requires_grad=True)
    torch.testing.assert_close(d.log_prob(z), dist.Normal(0.0, 1.0).log_prob(z))
    assert d.expand((5, 3)).log_prob(torch.zeros(3)).shape == (5, 3)
    assert float(d.log_prob(torch.zeros(1))[0]) == pytest.approx(-0.5 * math.log(2 * math.pi))


@pytest.mark.parametrize("shape", [(4, 5), (200, 400)])  # torch's kernel below MIN_ELEMENTS, ours above
def test_softplus_matches_torch_value_and_gradient_with_extremes(shape):
    g = torch.Generator().manual_seed(2)
    x = (torch.randn(shape, generator=g) * 30).requires_grad_()
    x.data[0, :3] = torch.tensor([-1e4, 0.0, 1e4])
    ours, ref = softplus(x), F.softplus(x)
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(torch.autograd.grad(ours.sum(), x)[0], torch.autograd.grad(ref.sum(), x)[0])
    assert torch.isfinite(ours).all()


def test_without_a_gradient_to_take_the_fused_kernels_skip_autograd_with_the_same_values():
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(6, 50, 784, generator=g) * 15
    x = torch.rand(50, 784, generator=g).bernoulli()
    assert fast_path(logits)
    with torch.enable_grad():
        tracked = bernoulli_log_prob(logits.clone().requires_grad_(), x)
        hidden = softplus(logits.clone().requires_grad_())
    assert tracked.grad_fn is not None and hidden.grad_fn is not None
    for context in (torch.no_grad(), torch.enable_grad()):  # no_grad; or inputs that need none
        with context:
            plain, plain_hidden = bernoulli_log_prob(logits, x), softplus(logits)
        assert plain.grad_fn is None and plain_hidden.grad_fn is None
        assert torch.equal(plain, tracked.detach())
        # a gradient to take: torch's softplus (fused backward); none: the cheaper passes, to float rounding
        torch.testing.assert_close(plain_hidden, hidden.detach(), rtol=1e-6, atol=1e-6)
    with torch.no_grad():  # a tensor that wants a gradient, inside no_grad: no graph either
        assert bernoulli_log_prob(logits.clone().requires_grad_(), x).grad_fn is None


def test_numpy_arrays_and_lists_are_refused_with_the_conversion():
    import numpy as np

    with pytest.raises(TypeError, match=r"logits must be a torch.Tensor, got ndarray; convert it with torch.as_tensor"):
        bernoulli_log_prob(np.zeros(3), torch.zeros(3))
    with pytest.raises(TypeError, match=r"value must be a torch.Tensor, got list"):
        bernoulli_log_prob(torch.zeros(3), [0.0, 1.0, 1.0])
    with pytest.raises(TypeError, match=r"x must be a torch.Tensor, got list"):
        softplus([1.0, 2.0])


@pytest.mark.parametrize("dtype, atol", [(torch.float32, 2e-6), (torch.float64, 1e-12)])
def test_softplus_values_on_a_dense_grid_against_float64_with_infinities_and_nan(dtype, atol):
    from pyrovae._util.elementwise import softplus_values

    x = torch.cat([torch.linspace(-200, 200, 400_001, dtype=torch.float64),  # both clamps (-80, 20 / 40) crossed
                   torch.tensor([-math.inf, math.inf, math.nan], dtype=torch.float64)])
    ours = softplus_values(x.to(dtype))
    ref = F.softplus(x, threshold=50.0)  # float64 reference, log1p(exp(x)) up to 50
    torch.testing.assert_close(ours[:-1].double(), ref[:-1], rtol=2e-7 if dtype == torch.float32 else 1e-15,
                               atol=atol)
    assert ours[-3] == 0 and ours[-2] == math.inf and ours[-1].isnan()  # softplus(-inf), softplus(inf), NaN
    tiny = torch.finfo(dtype).tiny  # the smallest normal float: nothing between it and 0 comes out
    assert not ((ours > 0) & (ours < tiny)).any()
