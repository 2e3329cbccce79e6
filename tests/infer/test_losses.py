"""Objectives by name: what each name builds, the particle defaults, the errors, and ``fit``
taking a name (``fit(loss="iwae")`` trains exactly as ``fit(loss=IWAE_ELBO(K))``)."""

from __future__ import annotations

import pytest
import torch
from pyro.infer import JitTrace_ELBO, Trace_ELBO, TraceMeanField_ELBO

from pyrovae.infer import DEFAULT_IWAE_PARTICLES, IWAE_ELBO, LOSSES, MinibatchRWS, ReparamTrace_ELBO, make_loss
from pyrovae.models import build_vae
from pyrovae.train import fit


@pytest.mark.parametrize(
    "name, cls",
    [("trace", ReparamTrace_ELBO), ("trace-pyro", Trace_ELBO), ("meanfield", TraceMeanField_ELBO),
     ("jit", JitTrace_ELBO), ("iwae", IWAE_ELBO), ("rws", MinibatchRWS)],
)
def test_each_name_builds_its_estimator(name, cls):
    assert name in LOSSES
    loss = make_loss(name)
    assert type(loss) is cls
    expected = DEFAULT_IWAE_PARTICLES if name in ("iwae", "rws") else 1
    assert loss.num_particles == expected
    many = make_loss(name, 7)
    assert many.num_particles == 7 and many.vectorize_particles


def test_bad_names_and_particles_are_clear_errors():
    with pytest.raises(
        ValueError, match="unknown loss 'renyi'; expected one of trace, trace-pyro, meanfield, jit, iwae, rws"
    ):
        make_loss("renyi")
    with pytest.raises(ValueError, match="iwae loss needs num_particles >= 2"):
        make_loss("iwae", 1)
    with pytest.raises(ValueError, match="num_particles must be >= 1"):
        make_loss("trace", 0)


def _fit_params(loss, **kw):
    torch.manual_seed(0)  # the same initial weights every call
    vae = build_vae(x_shape=(12,), z_dim=2, hidden=(8,))
    torch.manual_seed(1)
    x = (torch.rand(40, 12) < 0.3).float()
    fit(vae, x, epochs=2, batch_size=10, loss=loss, device="cpu", progress=False, binarize=None, **kw)
    return torch.cat([p.detach().flatten() for p in vae.parameters()])


def test_fit_takes_a_loss_by_name():
    by_name = _fit_params("iwae", num_particles=4)
    by_object = _fit_params(IWAE_ELBO(num_particles=4))
    assert torch.equal(by_name, by_object)  # same estimator, same draws, same steps
    # and the name really changed the objective: the ELBO takes other steps
    assert not torch.allclose(by_name, _fit_params("trace"), atol=1e-4)
    assert not torch.allclose(by_name, _fit_params("iwae", num_particles=2), atol=1e-4)


def test_fit_refuses_particles_beside_an_elbo_object():
    vae = build_vae(x_shape=(12,), z_dim=2, hidden=(8,))
    x = (torch.rand(20, 12) < 0.3).float()
    with pytest.raises(ValueError, match="num_particles goes with a named loss"):
        fit(vae, x, epochs=1, batch_size=10, loss=Trace_ELBO(), num_particles=3, device="cpu", progress=False)
    with pytest.raises(ValueError, match="unknown loss"):
        fit(vae, x, epochs=1, batch_size=10, loss="elbo", device="cpu", progress=False)
