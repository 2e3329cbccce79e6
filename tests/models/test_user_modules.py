"""A user's own networks: plain ``nn.Module`` s with no ``x_shape`` or ``z_dim`` attributes, for
(D,) data, built with the contract's four keywords only, train with SVI and ``fit``, evaluate
and checkpoint; shapes are inferred from the first batch and held; networks that break the
protocol get errors naming the module; a user's prior distribution moves with the VAE."""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import pyro.distributions.transforms as T
import pytest
import torch
from pyro.infer import SVI, Trace_ELBO, TraceMeanField_ELBO
from pyro.optim import Adam
from torch import nn

import pyrovae
from pyrovae import VAE, evaluate, likelihoods, priors
from pyrovae.models import protocol
from pyrovae.train import checkpoint as ckpt
from pyrovae.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from tests.linear_gaussian import exact_log_px

D, K, SIGMA = 5, 2, 0.3


class Encoder(nn.Module):
    """x (b, D) -> (loc, scale), each (b, K); no attributes besides its layer."""

    def __init__(self, d: int = D, k: int = K, scale_fn=lambda r: nn.functional.softplus(r) + 1e-3) -> None:
        super().__init__()
        self.lin = nn.Linear(d, 2 * k)
        self.scale_fn = scale_fn

    def forward(self, x):
        loc, raw = self.lin(x).chunk(2, dim=-1)
        return loc, self.scale_fn(raw)


class Decoder(nn.Module):
    def __init__(self, k: int = K, d: int = D) -> None:
        super().__init__()
        self.lin = nn.Linear(k, d)

    def forward(self, z):
        return self.lin(z)


def linear_gaussian_data(n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(D, K, generator=g))
    W, b = q * torch.tensor([2.0, 1.0]), torch.randn(D, generator=g)  # orthogonal columns: a diagonal posterior
    x = torch.randn(n, K, generator=g) @ W.T + b + SIGMA * torch.randn(n, D, generator=g)
    return x, W, b


def four_keyword_vae(likelihood=None) -> VAE:
    return VAE(encoder=Encoder(), decoder=Decoder(), prior=priors.StandardNormal(K),
               likelihood=likelihood if likelihood is not None else likelihoods.Gaussian(scale=SIGMA))


def test_plain_modules_train_with_svi_and_fit_and_evaluate(tmp_path):
    x, W, b = linear_gaussian_data(3000)
    x_train, x_test = x[:2000], x[2000:]
    vae = four_keyword_vae()
    assert vae.x_shape is None and vae.z_dim == K  # z_dim from the prior, x_shape not yet known
    svi = SVI(vae.model, vae.guide, Adam({"lr": 1e-2}), Trace_ELBO())
    first = svi.step(x_train[:100], num_data=2000)
    assert vae.shapes == {"x_shape": [D], "z_dim": K}  # inferred from the first batch
    for _ in range(50):
        last = svi.step(x_train[:100], num_data=2000)
    assert last < first
    history = pyrovae.fit(vae, x_train, x_test, epochs=25, batch_size=100, binarize=None, lr=1e-2, progress=False)
    # the linear-Gaussian truth: the learned ELBO approaches the exact log p(x) from below
    exact = float(exact_log_px(W, b, SIGMA, x_test).mean())
    assert exact - 0.4 < history.test_elbo[-1] < exact + 0.1
    recon, kl = evaluate.elbo_terms(vae, x_test)
    assert recon.shape == kl.shape == (1000,)
    log_px, stderr = evaluate.log_likelihood(vae, x_test[:50], num_samples=200)
    assert log_px.shape == stderr.shape == (50,)
    assert float(log_px.mean()) >= float((recon - kl)[:50].mean()) - 0.05  # IS bound above the ELBO
    assert abs(float(log_px.mean()) - float(exact_log_px(W, b, SIGMA, x_test[:50]).mean())) < 0.4


def test_a_vae_without_config_checkpoints(tmp_path):
    x, _, _ = linear_gaussian_data(200)
    vae = four_keyword_vae()
    pyrovae.fit(vae, x, epochs=2, batch_size=50, binarize=None, progress=False)
    path = tmp_path / "user.pt"
    save_checkpoint(path, vae, epoch=2, extra={"shapes": vae.shapes})
    with pytest.raises(CheckpointError, match="no config to rebuild the model from; pass vae="):
        load_checkpoint(path)
    fresh, payload = load_checkpoint(path, four_keyword_vae())
    assert payload["extra"]["shapes"] == {"x_shape": [D], "z_dim": K}
    with torch.no_grad():
        assert torch.equal(fresh.encode(x).mean, vae.encode(x).mean)
        assert torch.equal(fresh.decode_mean(torch.zeros(3, K)), vae.decode_mean(torch.zeros(3, K)))


def test_a_checkpoint_restores_the_inferred_shapes_so_data_are_checked_before_any_batch(tmp_path):
    x, _, _ = linear_gaussian_data(200)
    vae = VAE(encoder=Encoder(), decoder=Decoder(), likelihood=likelihoods.Gaussian(scale=SIGMA))
    assert vae.shapes == {"x_shape": None, "z_dim": None} and vae.prior is None  # nothing told: all inferred
    path = tmp_path / "user.pt"
    pyrovae.fit(vae, x, epochs=1, batch_size=50, binarize=None, progress=False, checkpoint=path)
    assert ckpt.read_checkpoint(path)["shapes"] == {"x_shape": [D], "z_dim": K}
    fresh = VAE(encoder=Encoder(), decoder=Decoder(), likelihood=likelihoods.Gaussian(scale=SIGMA))
    fresh, _ = load_checkpoint(path, fresh)  # its N(0, I) prior is made from the stored z_dim, then loaded
    assert fresh.shapes == {"x_shape": [D], "z_dim": K} and isinstance(fresh.prior, priors.StandardNormal)
    # before it has seen any batch, data are checked against the stored x_shape (not inferred from them)
    expected = r"x has shape \(4, 6\) but this VAE expects \(batch, \*x_shape\) = \(batch, 5\)"
    with pytest.raises(ValueError, match=expected):
        evaluate.elbo_terms(fresh, torch.randn(4, D + 1))
    with torch.no_grad():
        assert torch.equal(fresh.encode(x).mean, vae.encode(x).mean)
    # a VAE told other shapes is another model
    other = VAE(encoder=Encoder(), decoder=Decoder(), likelihood=likelihoods.Gaussian(scale=SIGMA), x_shape=(D + 1,))
    with pytest.raises(CheckpointError, match=r"other shapes: x_shape \(5,\) is not this VAE's x_shape \(6,\)"):
        load_checkpoint(path, other)
    # a fresh VAE whose networks do not fit the file is left as it was: no shapes or prior adopted
    wide = VAE(encoder=Encoder(k=K + 1), decoder=Decoder(k=K + 1), likelihood=likelihoods.Gaussian(scale=SIGMA))
    with pytest.raises(CheckpointError, match="does not match this model"):
        load_checkpoint(path, wide)
    assert wide.shapes == {"x_shape": None, "z_dim": None} and wide.prior is None


def test_z_dim_and_prior_come_from_the_encoder_when_nothing_says():
    vae = VAE(encoder=Encoder(k=3), decoder=Decoder(k=3), likelihood=likelihoods.Gaussian(1.0))
    assert vae.z_dim is None and vae.prior is None
    with pytest.raises(ValueError, match="prior is made once z_dim is known"):
        vae.sample(2)
    Trace_ELBO().loss(vae.model, vae.guide, torch.randn(4, D))
    assert vae.z_dim == 3 and isinstance(vae.prior, priors.StandardNormal) and vae.sample(2).shape == (2, D)


def test_later_batches_are_checked_against_the_inferred_shape():
    vae = four_keyword_vae()
    Trace_ELBO().loss(vae.model, vae.guide, torch.randn(4, D))
    with pytest.raises(
        ValueError, match=r"x has shape \(4, 6\) but this VAE expects \(batch, \*x_shape\) = \(batch, 5\)"
    ):
        Trace_ELBO().loss(vae.model, vae.guide, torch.randn(4, D + 1))


def test_generative_mode_before_any_data_reads_x_shape_off_the_decoder():
    vae = four_keyword_vae()
    tr = pyro.poutine.trace(vae.model).get_trace(None, batch_size=3)
    assert tr.nodes["x"]["value"].shape == (3, D) and not tr.nodes["x"]["is_observed"]
    assert vae.x_shape == (D,)


# -- networks that break the protocol -----------------------------------------------------
def _step(vae: VAE, x: torch.Tensor, elbo=None) -> float:
    return SVI(vae.model, vae.guide, Adam({"lr": 1e-2}), elbo or TraceMeanField_ELBO()).step(x)


@pytest.mark.parametrize("scale_fn, smallest", [(lambda r: r - 10.0, "-1"), (lambda r: 0.0 * r, "0")],
                         ids=["negative", "zero"])
def test_a_scale_that_is_not_positive_names_the_encoder(scale_fn, smallest):
    vae = VAE(encoder=Encoder(scale_fn=scale_fn), decoder=Decoder(), prior=priors.StandardNormal(K),
              likelihood=likelihoods.Gaussian(SIGMA))
    with pytest.raises(ValueError, match=rf"encoder Encoder returned a scale with 4 of 4 values that are not finite "
                                         rf"and > 0 \(smallest {smallest}.*softplus or exp"):
        _step(vae, torch.randn(2, D))  # TraceMeanField_ELBO would otherwise train on it silently


class FlatDecoder(Decoder):
    def forward(self, z):
        return self.lin(z).mean(0)  # drops the batch dimension: (D,)


def test_a_decoder_that_drops_the_batch_dim_is_named():
    vae = VAE(
        encoder=Encoder(), decoder=FlatDecoder(), prior=priors.StandardNormal(K), likelihood=likelihoods.Gaussian(SIGMA)
    )
    with pytest.raises(
        ValueError,
        match=r"decoder FlatDecoder returned a tensor of shape \(5,\) for z of shape "
        r"\(4, 2\) \(it dropped the batch dimension\); expected \(batch, \*x_shape\) = \(4, 5\)",
    ):
        _step(vae, torch.randn(4, D))


def test_an_encoder_with_the_wrong_z_dim_is_named():
    vae = VAE(
        encoder=Encoder(k=3), decoder=Decoder(), prior=priors.StandardNormal(K), likelihood=likelihoods.Gaussian(SIGMA)
    )
    with pytest.raises(ValueError, match=r"encoder Encoder returned loc of shape \(4, 3\) for x of shape \(4, 5\); "
                                         r"expected \(batch, z_dim\) = \(4, 2\) \(the prior\)"):
        _step(vae, torch.randn(4, D))


def test_a_decoder_expecting_another_z_dim_is_named():
    vae = VAE(
        encoder=Encoder(), decoder=Decoder(k=3), prior=priors.StandardNormal(K), likelihood=likelihoods.Gaussian(SIGMA)
    )
    with pytest.raises(ValueError, match=r"decoder Decoder failed on input of shape \(4, 2\), \(batch, z_dim\) = "
                                         r"\(4, 2\): mat1 and mat2 shapes cannot be multiplied"):
        _step(vae, torch.randn(4, D))


def test_an_encoder_expecting_another_x_shape_is_named():
    vae = VAE(
        encoder=Encoder(d=7), decoder=Decoder(), prior=priors.StandardNormal(K), likelihood=likelihoods.Gaussian(SIGMA)
    )
    with pytest.raises(ValueError, match=r"encoder Encoder failed on input of shape \(4, 5\).*Does the encoder take"):
        _step(vae, torch.randn(4, D))


def test_a_decoder_with_the_wrong_output_shape_is_named():
    vae = VAE(encoder=Encoder(), decoder=Decoder(d=D + 1), prior=priors.StandardNormal(K),
              likelihood=likelihoods.Gaussian(SIGMA), x_shape=(D,))
    with pytest.raises(
        ValueError,
        match=r"decoder Decoder returned a tensor of shape \(4, 6\) for z of shape \(4, 2\); "
        r"expected \(batch, \*x_shape\) = \(4, 5\)",
    ):
        _step(vae, torch.randn(4, D))
    pyro.clear_param_store()
    cat = VAE(
        encoder=Encoder(), decoder=Decoder(), prior=priors.StandardNormal(K), likelihood=likelihoods.Categorical(3)
    )
    with pytest.raises(ValueError, match=r"\(a Categorical likelihood needs a last dimension of 3 logits\)"):
        _step(cat, torch.randint(0, 3, (4, D)))


class TupleDecoder(Decoder):
    def forward(self, z):
        out = self.lin(z)
        return out, out.exp()


class LocOnlyEncoder(Encoder):
    def forward(self, x):
        return super().forward(x)[0]


def test_networks_returning_the_wrong_kind_of_thing_are_named():
    vae = VAE(
        encoder=LocOnlyEncoder(),
        decoder=Decoder(),
        prior=priors.StandardNormal(K),
        likelihood=likelihoods.Gaussian(SIGMA),
    )
    with pytest.raises(
        TypeError, match=r"encoder LocOnlyEncoder returned a tensor of shape \(4, 2\).*-> \(loc, scale\)"
    ):
        _step(vae, torch.randn(4, D))
    vae = VAE(
        encoder=Encoder(),
        decoder=TupleDecoder(),
        prior=priors.StandardNormal(K),
        likelihood=likelihoods.Gaussian(SIGMA),
    )
    with pytest.raises(TypeError, match=r"decoder TupleDecoder returned a tuple of 2 \(a tensor of shape \(4, 5\), "):
        _step(vae, torch.randn(4, D))


def test_protocol_checks_run_on_the_first_batch_and_after_a_part_is_replaced(monkeypatch):
    calls = {"encoder": 0, "decoder": 0}
    for role in calls:
        original = getattr(protocol, f"check_{role}_output")

        def counting(*args, _original=original, _role=role, **kwargs):
            calls[_role] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(protocol, f"check_{role}_output", counting)
    vae = four_keyword_vae()
    svi = SVI(vae.model, vae.guide, Adam({"lr": 1e-2}), Trace_ELBO())
    for _ in range(3):
        svi.step(torch.randn(4, D))
    assert calls == {"encoder": 1, "decoder": 1}
    vae.decoder = Decoder()
    svi.step(torch.randn(4, D))
    assert calls == {"encoder": 2, "decoder": 2}


# -- a user's prior distribution moves with the VAE ------------------------------------------
PRIOR_DISTRIBUTIONS = {
    "mixture": lambda: dist.MixtureSameFamily(
        dist.Categorical(logits=torch.zeros(3)), dist.Normal(torch.randn(3, K), torch.ones(3, K)).to_event(1)
    ),
    "expanded": lambda: dist.Laplace(0.0, 1.0).expand([K]).to_event(1),
    "transformed": lambda: dist.TransformedDistribution(
        dist.Normal(torch.zeros(K), 1.0).to_event(1), [T.AffineTransform(torch.ones(K), torch.tensor(2.0), event_dim=1)]
    ),
    "mvn": lambda: dist.MultivariateNormal(torch.zeros(K), 2.0 * torch.eye(K)),
}


@pytest.mark.parametrize("name", sorted(PRIOR_DISTRIBUTIONS))
def test_a_user_prior_distribution_moves_with_double(name):
    prior = PRIOR_DISTRIBUTIONS[name]()
    prior.log_prob(torch.zeros(K))  # fill lazily cached tensors too
    vae = VAE(encoder=Encoder(), decoder=Decoder(), prior=prior, likelihood=likelihoods.Gaussian(SIGMA)).double()
    z = vae.prior().sample((4,))
    assert z.dtype == torch.float64
    expected = prior.log_prob(z.float()).double()
    assert torch.allclose(vae.prior().log_prob(z), expected, atol=1e-5)
    loss = Trace_ELBO().loss(vae.model, vae.guide, torch.randn(3, D, dtype=torch.float64))
    assert torch.isfinite(torch.tensor(loss))
    assert prior.sample().dtype == torch.float32  # the user's own object is not changed


def test_a_prior_distribution_holding_a_module_is_refused():
    flow = dist.TransformedDistribution(dist.Normal(torch.zeros(K), 1.0).to_event(1), [T.affine_autoregressive(K)])
    with pytest.raises(
        TypeError, match=r"holds a torch module \(AffineAutoregressive\).*forward\(\) builds the distribution"
    ):
        VAE(encoder=Encoder(), decoder=Decoder(), prior=flow, likelihood=likelihoods.Gaussian(SIGMA))


def test_setting_a_distribution_as_prior_wraps_it():
    vae = four_keyword_vae()
    vae.prior = dist.Laplace(torch.zeros(K), torch.ones(K)).to_event(1)
    assert isinstance(vae.prior, priors.DistributionPrior)
    with pytest.raises(ValueError, match="prior is over 3 latent dimensions but the encoder produces z_dim=2"):
        vae.prior = priors.StandardNormal(3)


def test_an_autoencoder_ignores_the_scale_values_but_checks_their_shape():
    from pyrovae.models import Autoencoder

    ae = Autoencoder(
        encoder=Encoder(scale_fn=lambda r: 0.0 * r), decoder=Decoder(), likelihood=likelihoods.Gaussian(SIGMA)
    )
    assert math.isfinite(_step(ae, torch.randn(4, D), Trace_ELBO()))
    bad = Autoencoder(
        encoder=Encoder(scale_fn=lambda r: r[:, :1]), decoder=Decoder(), likelihood=likelihoods.Gaussian(SIGMA), z_dim=K
    )
    with pytest.raises(ValueError, match=r"encoder Encoder returned scale of shape \(4, 1\)"):
        _step(bad, torch.randn(4, D), Trace_ELBO())


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@needs_cuda
def test_a_user_prior_distribution_moves_to_cuda():
    vae = VAE(encoder=Encoder(), decoder=Decoder(), prior=PRIOR_DISTRIBUTIONS["mixture"](),
              likelihood=likelihoods.Gaussian(SIGMA)).to("cuda")
    assert vae.prior().sample().device.type == "cuda"
    x = torch.randn(4, D, device="cuda")
    assert math.isfinite(Trace_ELBO().loss(vae.model, vae.guide, x))
    with pytest.raises(ValueError, match=r"x is on cpu but the VAE is on cuda:0.*x\.to\('cuda:0'\)"):
        Trace_ELBO().loss(vae.model, vae.guide, x.cpu())
    draws = pyro.infer.Predictive(vae.model, num_samples=2)(x=None, batch_size=3)
    assert draws["x"].device.type == "cuda" and draws["x"].shape == (2, 3, D)
