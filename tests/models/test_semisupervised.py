r"""The M2 model: the enumerated ELBO against a brute-force sum over labels (same z draws,
value and gradients), sites and shapes, the α term, the labelled split, and a short training
that lifts the classifier above chance.

.. math::

    \mathcal{U}(x) = \sum_y q(y|x)\, \mathcal{L}(x, y) + \mathcal{H}(q(y|x)).
"""

from __future__ import annotations

import math

import pyro
import pytest
import torch
import torch.nn.functional as F
from pyro import poutine
from pyro.infer import Trace_ELBO, TraceEnum_ELBO

from pyrovae import nets
from pyrovae.models import SemiSupervisedVAE, build_m2, split_labelled
from pyrovae.train import CheckpointError, fit_m2

C = 10


def _small_m2() -> SemiSupervisedVAE:
    return build_m2(x_shape=(1, 28, 28), z_dim=4, hidden=(32,)).double()


def _x(n: int = 6) -> torch.Tensor:
    g = torch.Generator().manual_seed(4)
    return torch.bernoulli(torch.rand(n, 1, 28, 28, generator=g, dtype=torch.float64), generator=g)


def _enumerated_guide_trace(m2: SemiSupervisedVAE, x: torch.Tensor) -> poutine.Trace:
    # as TraceEnum_ELBO(max_plate_nesting=1) runs the guide: enumeration dims left of the plate
    return poutine.trace(poutine.enum(m2.guide, first_available_dim=-2)).get_trace(x)


def _brute_force_loss(m2: SemiSupervisedVAE, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """-sum_n U(x_n) with one ELBO per label, z_c = loc(x, c) + scale(x, c) * eps[c]."""
    log_q_y = torch.log_softmax(m2.classifier(x), -1)  # (b, C)
    per_label = []
    for c in range(C):
        y = torch.full((len(x),), c)
        loc, scale = m2.encoder(x, y)  # (b, z_dim)
        z = loc + scale * eps[c]
        log_p = (torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1) - math.log(C)
                 + m2.likelihood(m2.decoder(z, y), 3).log_prob(x))
        log_q = torch.distributions.Normal(loc, scale).log_prob(z).sum(-1)
        per_label.append(log_p - log_q)  # (b,) L(x, c) at this draw
    elbos = torch.stack(per_label, -1)  # (b, C)
    q_y = log_q_y.exp()
    return -((q_y * elbos).sum(-1) - (q_y * log_q_y).sum(-1)).sum()


def test_enumerated_elbo_is_the_sum_over_labels():
    # same z draws (same seed, same order of random calls): equal to float64 rounding
    m2, x = _small_m2(), _x()
    pyro.set_rng_seed(11)
    enum_loss = TraceEnum_ELBO(max_plate_nesting=1).differentiable_loss(m2.model, m2.guide, x)
    enum_loss.backward()
    enum_grads = [p.grad.clone() for p in m2.parameters()]
    m2.zero_grad()

    pyro.set_rng_seed(11)
    trace = _enumerated_guide_trace(m2, x)
    site = trace.nodes["z"]
    loc, scale = site["fn"].base_dist.loc, site["fn"].base_dist.scale  # (C, b, z_dim)
    eps = ((site["value"] - loc) / scale).detach()
    brute = _brute_force_loss(m2, x, eps)
    brute.backward()
    torch.testing.assert_close(enum_loss.detach(), brute.detach(), rtol=1e-10, atol=1e-8)
    for p, g in zip(m2.parameters(), enum_grads):
        torch.testing.assert_close(p.grad, g, rtol=1e-7, atol=1e-8)


def test_labelled_elbo_observes_y():
    m2, x = _small_m2(), _x()
    y = torch.arange(6)
    pyro.set_rng_seed(3)
    value = Trace_ELBO().loss(m2.model, m2.guide, x, y)
    pyro.set_rng_seed(3)
    guide_trace = poutine.trace(m2.guide).get_trace(x, y)
    model_trace = poutine.trace(poutine.replay(m2.model, trace=guide_trace)).get_trace(x, y)
    assert "y" not in guide_trace.nodes and model_trace.nodes["y"]["is_observed"]
    torch.testing.assert_close(torch.tensor(value, dtype=torch.float64),
                               -(model_trace.log_prob_sum() - guide_trace.log_prob_sum()), rtol=1e-10, atol=1e-8)


def test_sites_and_shapes_under_enumeration():
    m2, x = _small_m2(), _x(5)
    trace = _enumerated_guide_trace(m2, x)
    y, z = trace.nodes["y"], trace.nodes["z"]
    assert y["infer"]["enumerate"] == "parallel" and y["value"].shape == (C, 1)
    assert z["value"].shape == (C, 5, 4) and z["fn"].event_shape == (4,)
    model_trace = poutine.trace(poutine.replay(m2.model, trace=trace)).get_trace(x, num_data=50)
    assert model_trace.nodes["x"]["is_observed"] and model_trace.nodes["x"]["fn"].batch_shape == (C, 5)
    assert all([f.name for f in model_trace.nodes[s]["cond_indep_stack"]] == ["data"] for s in ("y", "z", "x"))
    assert model_trace.nodes["x"]["scale"] == 10.0
    assert m2.conditional_samples(3).shape == (C, 3, 1, 28, 28)
    assert m2.style_transfer(x[:2]).shape == (2, C, 1, 28, 28)
    assert m2.classify(x).shape == (5,)
    with pytest.raises(ValueError, match="labels must lie in"):
        m2.model(x, torch.full((5,), 10))


def test_conditional_samples_share_a_style_per_column():
    m2 = _small_m2()
    pyro.set_rng_seed(0)
    grid = m2.conditional_samples(2)
    pyro.set_rng_seed(0)
    z = m2.prior(next(m2.decoder.parameters())).sample((2,))
    torch.testing.assert_close(grid[7], m2.decode_mean(z, torch.full((2,), 7)))


def test_alpha_term_is_alpha_times_the_mean_cross_entropy():
    m2, x = _small_m2(), _x()
    y = torch.tensor([0, 1, 2, 3, 4, 5])
    expected = 600.0 * F.cross_entropy(m2.classifier(x), y)
    torch.testing.assert_close(m2.classification_loss(x, y, alpha=600.0), expected)


@pytest.mark.parametrize("n", [100, 600, 1000, 3000])
def test_split_labelled_is_class_balanced(n):
    labels = torch.arange(5000) % C
    images = torch.arange(5000.0)[:, None]
    xl, yl, xu = split_labelled(images, labels, n, seed=1)
    assert len(xl) == n and len(xu) == 5000 - n
    assert torch.equal(torch.bincount(yl, minlength=C), torch.full((C,), n // C))
    assert torch.equal(labels[xl[:, 0].long()], yl)  # each image keeps its label
    assert not set(xl[:, 0].tolist()) & set(xu[:, 0].tolist())
    with pytest.raises(ValueError, match="multiple of the 10 classes"):
        split_labelled(images, labels, n + 1)


def test_nets_refuse_a_mismatch():
    with pytest.raises(ValueError, match="the classifier has 5 classes"):
        SemiSupervisedVAE(nets.LabelledMLPEncoder((4,), 10, (8,), 2), nets.LabelledMLPDecoder(2, 10, (8,), (4,)),
                          nets.MLPClassifier((4,), (8,), 5))


def test_short_training_beats_chance(mnist_small):
    x, y, xt, yt = mnist_small
    torch.manual_seed(0)
    m2 = build_m2(z_dim=8, hidden=(64,))
    xl, yl, xu = split_labelled(x, y, 100)
    # alpha / N_l = 20, the weight per labelled point that alpha = 0.1 N gives 100 labels among ~20,000
    h = fit_m2(m2, xl, yl, xu[:1000], xt[:300], yt[:300], epochs=3, batch_size=100, lr=3e-3, alpha=2000.0,
               progress=False)
    assert h.epoch == [1, 2, 3] and len(h.test_accuracy) == 3
    assert h.unlabelled_loss[2] < h.unlabelled_loss[0]
    assert h.test_accuracy[-1] > 0.4  # chance is 0.1


def _tiny_split(n_labelled: int = 20, n_unlabelled: int = 200):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(n_labelled + n_unlabelled, 1, 28, 28, generator=g)
    y = torch.arange(n_labelled + n_unlabelled) % C
    return x[:n_labelled], y[:n_labelled], x[n_labelled:]


def _tiny_fit(path, epochs, resume=True, **kw):
    torch.manual_seed(0)
    m2 = build_m2(z_dim=3, hidden=(16,))
    xl, yl, xu = _tiny_split()
    h = fit_m2(m2, xl, yl, xu, xl, yl, epochs=epochs, batch_size=50, progress=False, seed=3,
               checkpoint=path, resume=resume, **kw)
    return m2, h


def test_resumed_run_repeats_the_uninterrupted_one_bit_for_bit(tmp_path):
    whole, h_whole = _tiny_fit(tmp_path / "whole.pt", 3)
    _tiny_fit(tmp_path / "pieces.pt", 1)  # stopped after epoch 1 ...
    pieces, h_pieces = _tiny_fit(tmp_path / "pieces.pt", 3)  # ... and continued
    assert h_pieces.epoch == [1, 2, 3]
    assert h_pieces.unlabelled_loss == h_whole.unlabelled_loss
    assert h_pieces.labelled_loss == h_whole.labelled_loss
    for (name, a), b in zip(whole.state_dict().items(), pieces.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_an_existing_checkpoint_is_not_overwritten_without_resume(tmp_path):
    path = tmp_path / "m2.pt"
    _tiny_fit(path, 1)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="pass resume=True"):
        _tiny_fit(path, 2, resume=False)
    assert path.read_bytes() == before


def test_resume_refuses_other_settings_and_other_networks(tmp_path):
    path = tmp_path / "m2.pt"
    _tiny_fit(path, 1)
    with pytest.raises(CheckpointError, match="other settings: alpha="):
        _tiny_fit(path, 2, alpha=5.0)
    m2 = build_m2(z_dim=4, hidden=(16,))  # another latent size
    xl, yl, xu = _tiny_split()
    with pytest.raises(CheckpointError, match="another config"):
        fit_m2(m2, xl, yl, xu, epochs=2, batch_size=50, progress=False, seed=3, checkpoint=path, resume=True)


def test_resume_refuses_a_checkpoint_of_fit(tmp_path):
    from pyrovae import fit
    from pyrovae.models import build_vae

    path = tmp_path / "vae.pt"
    fit(build_vae(z_dim=2, hidden=(8,)), _tiny_split()[2], epochs=1, batch_size=50, progress=False, checkpoint=path)
    with pytest.raises(CheckpointError, match="was not written by fit_m2"):
        _tiny_fit(path, 2)


def test_resume_refuses_a_corrupt_checkpoint_and_needs_a_path(tmp_path):
    path = tmp_path / "m2.pt"
    _tiny_fit(path, 1)
    path.write_bytes(path.read_bytes()[:200])  # truncated, as by a kill mid-copy
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        _tiny_fit(path, 2)
    xl, yl, xu = _tiny_split()
    with pytest.raises(ValueError, match="resume=True needs checkpoint"):
        fit_m2(build_m2(z_dim=3, hidden=(16,)), xl, yl, xu, epochs=1, resume=True, progress=False)


def test_learning_rate_decay_reaches_final_lr_and_resumes_bit_for_bit(tmp_path, monkeypatch):
    from pyrovae.train import checkpoint as ckpt
    from pyrovae.train import semisupervised

    whole, h_whole = _tiny_fit(tmp_path / "whole.pt", 3, lr=1e-2, final_lr=1e-4)
    # geometric, one rate per epoch: 1e-2, 1e-3, 1e-4; the saved optimizer holds the last one
    saved = ckpt.read_checkpoint(tmp_path / "whole.pt")["optimizer"]["state"]["param_groups"][0]["lr"]
    assert saved == pytest.approx(1e-4, rel=1e-9)
    _, h_constant = _tiny_fit(tmp_path / "constant.pt", 3, lr=1e-2)
    assert h_constant.unlabelled_loss[0] == h_whole.unlabelled_loss[0]  # epoch 1 runs at lr in both
    assert h_constant.unlabelled_loss[2] != h_whole.unlabelled_loss[2]

    real_save = ckpt.save_checkpoint

    def killed_after_first_write(*args, **kwargs):  # the process dies right after epoch 1 is saved
        real_save(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(semisupervised.ckpt, "save_checkpoint", killed_after_first_write)
    with pytest.raises(KeyboardInterrupt):
        _tiny_fit(tmp_path / "pieces.pt", 3, lr=1e-2, final_lr=1e-4)
    monkeypatch.setattr(semisupervised.ckpt, "save_checkpoint", real_save)
    assert ckpt.read_checkpoint(tmp_path / "pieces.pt")["epoch"] == 1
    with pytest.raises(CheckpointError, match="other settings: schedule_epochs=3"):  # another schedule length
        _tiny_fit(tmp_path / "pieces.pt", 4, lr=1e-2, final_lr=1e-4)
    pieces, h_pieces = _tiny_fit(tmp_path / "pieces.pt", 3, lr=1e-2, final_lr=1e-4)  # the same command again
    assert h_pieces.unlabelled_loss == h_whole.unlabelled_loss
    for (name, a), b in zip(whole.state_dict().items(), pieces.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
