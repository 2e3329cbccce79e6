"""fit: training on real MNIST, checkpoints (round trip, resume, corruption), divergence
handling and bad input at the boundary."""

from __future__ import annotations

import pyro
import pytest
import torch
from pyro.infer import TraceMeanField_ELBO
from pyro.optim import Adam

from pyrovae.models import build_vae
from pyrovae.train import TrainingDivergedError, beta_at, exponential_lr, fit
from pyrovae.train import checkpoint as ckpt


def small_vae(**kw):
    return build_vae(hidden=(32,), z_dim=4, **kw)


def test_fit_learns_on_mnist(mnist_small):
    x, _, xt, _ = mnist_small
    vae = small_vae()
    h = fit(vae, x, xt, epochs=3, batch_size=50, device="cpu", progress=False)
    assert h.epoch == [1, 2, 3]
    assert len(h.train_elbo) == len(h.test_elbo) == len(h.test_kl) == 3
    # per-example ELBO in nats: 784 binary pixels at p=0.5 cost 543 nats, a trained model far less
    assert -400 < h.test_elbo[-1] < -150
    assert h.test_elbo[-1] > h.test_elbo[0] + 10
    for r, k, e in zip(h.test_recon, h.test_kl, h.test_elbo):
        assert r - k == pytest.approx(e, abs=1e-3)


def test_fit_with_pyro_optim_runs_svi(mnist_small):
    x, _, xt, _ = mnist_small
    vae = small_vae()
    h = fit(vae, x[:500], xt[:100], epochs=2, batch_size=50, optim=Adam({"lr": 1e-3}), loss=TraceMeanField_ELBO(),
            device="cpu", progress=False)
    assert h.test_elbo[1] > h.test_elbo[0]


def test_kl_warmup_schedule():
    assert beta_at(0, 100, 1.0) == 0.0
    assert beta_at(50, 100, 1.0) == pytest.approx(0.5)
    assert beta_at(500, 100, 2.0) == 2.0
    assert beta_at(0, 0, 0.7) == 0.7


def test_warmup_in_fit_ends_at_target_beta(mnist_small):
    x, _, _, _ = mnist_small
    vae = small_vae()
    h = fit(vae, x[:200], epochs=2, batch_size=50, warmup_epochs=1, device="cpu", progress=False)
    assert h.beta == [1.0, 1.0] and vae.beta == 1.0
    assert h.test_elbo == [None, None]


def test_exponential_lr_endpoints_and_ratio():
    sched = exponential_lr(1e-3, 1e-4, 11)
    assert sched(1) == pytest.approx(1e-3)
    assert sched(11) == pytest.approx(1e-4)
    assert sched(6) == pytest.approx(1e-3 * 10**-0.5)  # halfway in log space
    assert sched(50) == pytest.approx(1e-4)  # held after the last epoch
    ratios = [sched(e + 1) / sched(e) for e in range(1, 11)]
    assert ratios == pytest.approx([10**-0.1] * 10)  # the same factor every epoch
    assert exponential_lr(2e-3, 2e-3, 1)(1) == pytest.approx(2e-3)
    for lr, final_lr in ((1e-3, 0.0), (1e-3, float("nan")), (float("nan"), 1e-4), (float("inf"), 1e-4)):
        with pytest.raises(ValueError, match="need finite lr > 0, final_lr > 0"):
            exponential_lr(lr, final_lr, 10)


def test_lr_schedule_sets_each_epochs_rate(mnist_small):
    x, _, _, _ = mnist_small
    seen = []
    rates = {1: 1e-3, 2: 5e-4, 3: 0.0}
    captured = {}

    def optim(params):
        captured["opt"] = torch.optim.Adam(params, lr=123.0)  # overwritten by the schedule
        return captured["opt"]

    vae = small_vae()
    fit(vae, x[:100], epochs=3, batch_size=50, optim=optim, lr_schedule=rates.__getitem__, device="cpu",
        progress=False, callbacks=[lambda e, m, h: seen.append(captured["opt"].param_groups[0]["lr"])])
    assert seen == [1e-3, 5e-4, 0.0]
    # a schedule at lr 0 leaves the parameters where they are
    before = {k: v.clone() for k, v in vae.state_dict().items()}
    fit(vae, x[:100], epochs=1, batch_size=50, lr_schedule=lambda e: 0.0, device="cpu", progress=False)
    assert all(torch.equal(v, before[k]) for k, v in vae.state_dict().items())


def test_lr_schedule_with_pyro_optim_is_refused(mnist_small):
    x, _, _, _ = mnist_small
    with pytest.raises(ValueError, match="lr_schedule needs a torch optimiser"):
        fit(small_vae(), x[:100], epochs=1, batch_size=50, optim=Adam({"lr": 1e-3}), lr_schedule=lambda e: 1e-3,
            device="cpu", progress=False)


def test_checkpoint_round_trip(tmp_path, mnist_small):
    x, _, _, _ = mnist_small
    vae = small_vae(prior="mog", num_components=3)
    fit(vae, x[:200], epochs=1, batch_size=50, device="cpu", progress=False, checkpoint=tmp_path / "c.pt")
    pyro.clear_param_store()
    loaded, payload = ckpt.load_checkpoint(tmp_path / "c.pt")
    assert payload["epoch"] == 1
    assert payload["config"] == vae.config
    assert payload["optimizer"]["kind"] == "torch"
    assert set(payload["param_store"]) >= {"prior.locs", "encoder$$$head.linear.weight"}
    for (k, a), (k2, b) in zip(vae.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b), k


def test_resume_gives_the_same_parameters(tmp_path, mnist_small):
    x, _, xt, _ = mnist_small
    kw = {"batch_size": 50, "device": "cpu", "progress": False, "seed": 7}
    straight = small_vae()
    init = {k: v.clone() for k, v in straight.state_dict().items()}
    h_straight = fit(straight, x[:300], xt[:50], epochs=2, **kw)

    path = tmp_path / "r.pt"
    pyro.clear_param_store()
    first_half = small_vae()
    first_half.load_state_dict(init)
    fit(first_half, x[:300], xt[:50], epochs=1, checkpoint=path, **kw)

    pyro.clear_param_store()
    resumed = small_vae()  # fresh weights: the checkpoint must replace them
    h_resumed = fit(resumed, x[:300], xt[:50], epochs=2, checkpoint=path, resume=True, **kw)
    assert h_resumed.epoch == [1, 2]
    assert h_resumed.test_elbo[1] == pytest.approx(h_straight.test_elbo[1], abs=1e-4)
    for (k, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=k)


def test_truncated_checkpoint_is_a_clear_error(tmp_path, mnist_small):
    x, _, _, _ = mnist_small
    vae = small_vae()
    path = tmp_path / "c.pt"
    fit(vae, x[:100], epochs=1, batch_size=50, device="cpu", progress=False, checkpoint=path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ckpt.CheckpointError, match="truncated or corrupt"):
        ckpt.load_checkpoint(path)
    with pytest.raises(ValueError):  # CheckpointError is a ValueError
        ckpt.load_checkpoint(tmp_path / "missing.pt")


def test_checkpoint_from_another_config_is_a_clear_error(tmp_path, mnist_small):
    x, _, _, _ = mnist_small
    path = tmp_path / "c.pt"
    fit(small_vae(), x[:100], epochs=1, batch_size=50, device="cpu", progress=False, checkpoint=path)
    other = build_vae(hidden=(32,), z_dim=6)
    with pytest.raises(ckpt.CheckpointError, match=r"another config: fields \['z_dim'\]"):
        ckpt.load_checkpoint(path, other)
    with pytest.raises(ckpt.CheckpointError, match="another config"):
        fit(other, x[:100], epochs=2, batch_size=50, device="cpu", progress=False, checkpoint=path, resume=True)


def test_nan_loss_names_epoch_and_step_and_keeps_checkpoint(tmp_path, mnist_small):
    x, _, _, _ = mnist_small
    vae = small_vae()
    path = tmp_path / "c.pt"
    calls = {"n": 0}
    decoder_forward = vae.decoder.forward

    def poisoned(z):
        calls["n"] += 1
        out = decoder_forward(z)
        return out * float("nan") if calls["n"] > 14 else out  # check + 10 steps of epoch 1; step 4 of epoch 2 breaks

    vae.decoder.forward = poisoned
    with pytest.raises(TrainingDivergedError, match="at epoch 2, step 4"):
        fit(vae, x[:200], epochs=3, batch_size=20, device="cpu", progress=False, checkpoint=path)
    payload = ckpt.read_checkpoint(path)
    assert payload["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in payload["model_state"].values())


def test_bad_training_data_is_rejected_at_entry(mnist_small):
    x, _, _, _ = mnist_small
    vae = small_vae()
    with pytest.raises(ValueError, match="Bernoulli likelihood needs binary data"):
        fit(vae, x[:100], epochs=1, batch_size=50, binarize=None, device="cpu", progress=False)
    bad = x[:100].clone()
    bad[3, 0, 5, 5] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf"):
        fit(vae, bad, epochs=1, batch_size=50, device="cpu", progress=False)
    with pytest.raises(
        ValueError, match=r"train_images has shape \(100, 784\) but this VAE expects .* = \(batch, 1, 28, 28\)"
    ):
        fit(vae, x[:100].reshape(100, 784), epochs=1, batch_size=50, device="cpu", progress=False)
    with pytest.raises(ValueError, match="binarize must be"):
        fit(vae, x[:100], epochs=1, batch_size=50, binarize="otsu", device="cpu", progress=False)
    with pytest.raises(ValueError, match="needs probabilities in"):
        fit(vae, x[:100] * 255, epochs=1, batch_size=50, device="cpu", progress=False)
