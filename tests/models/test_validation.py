"""The one data check, ``pyrovae.models.validation.check_data``: every kind of bad data gets an
error that names the fix (or is converted, where conversion is safe), both when called
directly and when the data reach ``vae.model``/``vae.guide`` through a Pyro ELBO."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pyro.infer import Trace_ELBO

from pyrovae import VAE, likelihoods, nets, priors
from pyrovae.models.validation import check_data

X_SHAPE = (1, 4, 4)
Z = 2
B = 5


def make_vae(likelihood=None, x_shape=X_SHAPE) -> VAE:
    return VAE(nets.MLPEncoder(x_shape, (8,), Z), nets.MLPDecoder(Z, (8,), x_shape), priors.StandardNormal(Z),
               likelihood if likelihood is not None else likelihoods.Bernoulli())


def binary(n: int = B, shape=X_SHAPE) -> torch.Tensor:
    return torch.bernoulli(torch.full((n, *shape), 0.5))


def loss(vae: VAE, x) -> float:
    return Trace_ELBO().loss(vae.model, vae.guide, x)


# -- type ---------------------------------------------------------------------------------
@pytest.mark.parametrize("convert", [lambda x: x.numpy(), lambda x: x.tolist()], ids=["numpy", "list"])
def test_non_tensors_get_the_conversion(convert):
    vae = make_vae()
    data = convert(binary())
    kind = "numpy.ndarray" if isinstance(data, np.ndarray) else "list"
    with pytest.raises(TypeError, match=rf"got {kind}; convert it with torch\.as_tensor\(x, dtype=torch\.float32\)"):
        check_data(vae, data)
    with pytest.raises(TypeError, match=r"torch\.as_tensor"):
        loss(vae, data)


def test_an_image_set_is_pointed_at_its_tensor():
    from pyrovae.data import ImageSet

    ds = ImageSet(binary(), torch.zeros(B, dtype=torch.long))
    with pytest.raises(TypeError, match=r"pass its tensor, train\.images"):
        check_data(make_vae(), ds, "train")


# -- shape --------------------------------------------------------------------------------
def test_a_one_d_tensor_has_no_batch_dimension():
    vae = VAE(nets.MLPEncoder((6,), (8,), Z), nets.MLPDecoder(Z, (8,), (6,)), priors.StandardNormal(Z),
              likelihoods.Gaussian(1.0))
    with pytest.raises(ValueError, match=r"one data point without the batch dimension: use x\.unsqueeze\(0\)"):
        check_data(vae, torch.randn(6))
    with pytest.raises(ValueError, match=r"unsqueeze\(0\)"):
        loss(vae, torch.randn(6))
    with pytest.raises(ValueError, match=r"has shape \(7,\) but this VAE expects \(batch, \*x_shape\) = \(batch, 6\)"):
        check_data(vae, torch.randn(7))


def test_a_one_d_tensor_without_known_x_shape():
    vae = make_vae()
    vae.x_shape = None
    with pytest.raises(ValueError, match=r"need a batch dimension.*\(N, D\).*unsqueeze\(0\)"):
        check_data(vae, torch.ones(6))
    assert vae.x_shape is None  # nothing inferred from bad data


def test_images_without_the_channel_are_not_broadcast():
    vae = make_vae()
    x = torch.bernoulli(torch.full((B, 4, 4), 0.5))  # (N, 4, 4) for x_shape (1, 4, 4)
    with pytest.raises(
        ValueError, match=r"shape \(5, 4, 4\) but this VAE expects .*\(batch, 1, 4, 4\).*reshape\(len\(x\), 1, 4, 4\)"
    ):
        check_data(vae, x)
    with pytest.raises(ValueError, match=r"reshape"):
        loss(vae, x)


def test_wrong_shape_names_both():
    with pytest.raises(
        ValueError, match=r"x has shape \(5, 1, 5, 5\) but this VAE expects \(batch, \*x_shape\) = \(batch, 1, 4, 4\)$"
    ):
        check_data(make_vae(), binary(shape=(1, 5, 5)))


def test_an_empty_batch_is_refused():
    with pytest.raises(ValueError, match="empty batch"):
        check_data(make_vae(), torch.zeros(0, *X_SHAPE))


# -- dtype --------------------------------------------------------------------------------
def test_float64_data_are_cast_to_the_model_dtype():
    vae = make_vae()
    x = binary().double()
    out = check_data(vae, x)
    assert out.dtype == torch.float32 and torch.equal(out, x.float())
    assert torch.isfinite(torch.tensor(loss(vae, x)))  # no "mat1 and mat2 must have the same dtype"
    vae.double()
    assert check_data(vae, binary()).dtype == torch.float64
    assert torch.isfinite(torch.tensor(loss(vae, binary())))


@pytest.mark.parametrize("dtype", [torch.bool, torch.uint8, torch.int64])
def test_binary_integer_and_bool_data_are_cast(dtype):
    vae = make_vae()
    x = binary().to(dtype)
    out = check_data(vae, x)
    assert out.dtype == torch.float32
    assert torch.equal(out, x.to(torch.float32)) and set(out.unique().tolist()) <= {0.0, 1.0}
    assert torch.isfinite(torch.tensor(loss(vae, x)))


def test_uint8_pixels_get_the_scaling():
    vae = make_vae()
    x = torch.randint(0, 256, (B, *X_SHAPE), dtype=torch.uint8)
    with pytest.raises(
        ValueError, match=r"integer dtype torch\.uint8 with values in \[\d+, \d+\].*x\.float\(\) / 255.*binarize"
    ):
        check_data(vae, x)
    with pytest.raises(ValueError, match=r"x\.float\(\) / 255"):
        loss(vae, x)


def test_float_pixels_in_0_255_get_the_scaling():
    vae = make_vae()
    x = torch.randint(0, 256, (B, *X_SHAPE)).float()
    with pytest.raises(
        ValueError, match=r"Bernoulli likelihood needs binary data.*8-bit pixels: scale them with x / 255"
    ):
        check_data(vae, x)
    with pytest.raises(ValueError, match=r"x / 255"):
        loss(vae, x)  # not a positive "log p(x)"
    with pytest.raises(ValueError, match=r"ContinuousBernoulli needs data in \[0, 1\].*x / 255"):
        check_data(make_vae(likelihoods.ContinuousBernoulli()), x)
    with pytest.raises(ValueError, match=r"binarize='dynamic' needs probabilities in \[0, 1\].*x / 255"):
        check_data(vae, x, binarize="dynamic")


def test_class_indices_are_cast_for_a_categorical_likelihood():
    vae = VAE(nets.MLPEncoder(X_SHAPE, (8,), Z), nets.MLPDecoder(Z, (8,), X_SHAPE, num_classes=4),
              priors.StandardNormal(Z), likelihoods.Categorical(4))
    x = torch.randint(0, 4, (B, *X_SHAPE), dtype=torch.uint8)
    assert check_data(vae, x).dtype == torch.float32
    assert torch.isfinite(torch.tensor(loss(vae, x)))
    with pytest.raises(ValueError, match=r"Categorical\(4\) needs integer class indices"):
        check_data(vae, x + 4)


# -- values -------------------------------------------------------------------------------
def test_grey_levels_under_bernoulli_name_both_fixes():
    vae = make_vae()
    x = torch.rand(B, *X_SHAPE)
    with pytest.raises(ValueError, match=r"needs binary data.*pyrovae\.data\.binarize.*ContinuousBernoulli\(\)"):
        check_data(vae, x)
    with pytest.raises(ValueError, match=r"pyrovae\.data\.binarize"):
        loss(vae, x)
    assert check_data(vae, x, binarize="dynamic") is x  # probabilities to be binarised are fine
    assert check_data(vae, x, support=False) is x  # the cheap checks do not look at values


def test_negative_values_under_bernoulli():
    x = binary()
    x[0, 0, 0, 0] = -1.0
    with pytest.raises(ValueError, match=r"needs binary data \(0 or 1\), but 1 values are not \(e\.g\. -1\)"):
        check_data(make_vae(), x)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_values(bad):
    vae = make_vae(likelihoods.Gaussian(1.0))
    x = torch.rand(B, *X_SHAPE)
    x[1, 0, 2, 3] = bad
    with pytest.raises(ValueError, match=r"x contains NaN or inf at 1 positions"):
        check_data(vae, x)
    with pytest.raises(ValueError, match="NaN or inf"):
        check_data(vae, x, binarize="static")
    with pytest.raises(ValueError, match="NaN or inf"):
        loss(vae, x)


def test_device_is_checked_only_when_asked():
    vae = make_vae()
    x = binary()
    assert check_data(vae, x, same_device=True) is x
    meta = x.to("meta")
    assert check_data(vae, meta, support=False).device.type == "meta"  # callers that move data themselves
    with pytest.raises(ValueError, match=r"x is on meta but the VAE is on cpu.*x\.to\('cpu'\)"):
        check_data(vae, meta, support=False, same_device=True)


def test_good_data_pass_unchanged_and_the_name_is_used():
    vae = make_vae()
    x = binary()
    assert check_data(vae, x) is x
    with pytest.raises(ValueError, match=r"^train_images has shape"):
        check_data(vae, binary(shape=(3,)), "train_images")


def test_x_shape_is_inferred_from_the_first_batch_and_held():
    vae = make_vae()
    vae.x_shape = None
    check_data(vae, binary())
    assert vae.x_shape == X_SHAPE
    with pytest.raises(ValueError, match=r"expects \(batch, \*x_shape\) = \(batch, 1, 4, 4\)"):
        check_data(vae, binary(shape=(1, 2, 8)))
