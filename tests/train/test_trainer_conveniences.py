"""Training conveniences: gradient clipping, early stopping with best.pt, torch and Pyro LR
schedulers, β during warm-up in the history, the CSV log and TensorBoard scalars."""

from __future__ import annotations

import csv
import importlib.util

import pyro
import pytest
import torch
from pyro.optim import Adam, ExponentialLR
from torch.optim.lr_scheduler import ExponentialLR as TorchExponentialLR
from torch.optim.lr_scheduler import ReduceLROnPlateau, StepLR

from pyrovae.models import build_vae
from pyrovae.train import Callback, TrainConfig, Trainer, fit
from pyrovae.train import checkpoint as ckpt
from pyrovae.train.logs import TensorBoardLog

N, D = 60, 12
QUIET = {"device": "cpu", "progress": False}


def tiny_vae(**kw):
    torch.manual_seed(0)
    return build_vae(x_shape=(D,), z_dim=2, hidden=(8,), **kw)


def data(n: int = N, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, D, generator=torch.Generator().manual_seed(seed))


def flat(vae) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in vae.parameters()])


# -- gradient clipping -------------------------------------------------------------------------
@pytest.mark.parametrize("clip", [0.5, 2.0])
def test_clip_grad_norm_bounds_the_update(clip):
    vae = tiny_vae()
    before = flat(vae)
    # one SGD step at lr 1 moves the parameters by exactly the (clipped) gradient; the raw gradient of
    # the full-data loss (60 examples, 12 pixels) has a norm in the hundreds, far above either bound
    fit(vae, data(), epochs=1, batch_size=N, optim=lambda p: torch.optim.SGD(p, lr=1.0), clip_grad_norm=clip, **QUIET)
    assert float((flat(vae) - before).norm()) == pytest.approx(clip, rel=1e-4)


def test_clip_grad_norm_needs_a_torch_optimiser():
    with pytest.raises(ValueError, match="clip_grad_norm needs a torch optimiser"):
        fit(tiny_vae(), data(), epochs=1, batch_size=10, optim=Adam({"lr": 1e-3}), clip_grad_norm=1.0, **QUIET)
    with pytest.raises(ValueError, match="clip_grad_norm must be a finite number > 0"):
        fit(tiny_vae(), data(), epochs=1, batch_size=10, clip_grad_norm=0.0, **QUIET)


# -- early stopping ----------------------------------------------------------------------------
class KeepEveryCheckpoint(Callback):
    def __init__(self, path):
        self.path, self.saved = path, {}

    def on_epoch_end(self, trainer, epoch):
        self.saved[epoch] = self.path.read_bytes()


def test_early_stopping_stops_after_patience_and_keeps_the_best_epochs_checkpoint(tmp_path):
    path = tmp_path / "run.pt"
    keep = KeepEveryCheckpoint(path)
    # lr 0 after epoch 1: the held-out ELBO then only wanders with its Monte Carlo noise, so it stops improving
    h = fit(tiny_vae(), data(), data(20, seed=2), epochs=40, batch_size=10, patience=3, checkpoint=path,
            lr_schedule=lambda e: 1e-2 if e == 1 else 0.0, callbacks=[keep], **QUIET)
    best = h.best_epoch()
    assert h.test_elbo[best - 1] == max(h.test_elbo)
    assert h.epoch[-1] == best + 3 < 40  # stopped exactly `patience` epochs after the best one
    assert all(t < h.test_elbo[best - 1] for t in h.test_elbo[best:])
    best_file = tmp_path / "best.pt"
    assert best_file.read_bytes() == keep.saved[best]  # the best epoch's own checkpoint
    assert ckpt.read_checkpoint(best_file)["epoch"] == best and ckpt.read_checkpoint(path)["epoch"] == h.epoch[-1]


def test_early_stopping_needs_held_out_data_and_a_free_name(tmp_path):
    with pytest.raises(ValueError, match=r"patience .* needs test_images"):
        fit(tiny_vae(), data(), epochs=2, batch_size=10, patience=2, **QUIET)
    with pytest.raises(ValueError, match=r"is named best\.pt"):
        fit(tiny_vae(), data(), data(20), epochs=2, batch_size=10, patience=2, checkpoint=tmp_path / "best.pt",
            **QUIET)
    with pytest.raises(ValueError, match="patience must be an integer >= 1"):
        fit(tiny_vae(), data(), data(20), epochs=2, batch_size=10, patience=0, **QUIET)


# -- learning-rate schedulers ------------------------------------------------------------------
def test_a_torch_scheduler_steps_per_epoch_or_per_step():
    h = fit(tiny_vae(), data(), epochs=3, batch_size=10, lr=1e-2,
            lr_scheduler=lambda opt: StepLR(opt, step_size=1, gamma=0.5), **QUIET)
    assert h.lr == pytest.approx([1e-2, 5e-3, 2.5e-3])  # the rate each epoch trained at
    h = fit(tiny_vae(), data(), epochs=2, batch_size=10, lr=1e-2, scheduler_interval="step",
            lr_scheduler=lambda opt: TorchExponentialLR(opt, gamma=0.9), **QUIET)
    assert h.lr == pytest.approx([1e-2 * 0.9**6, 1e-2 * 0.9**12])  # 6 steps an epoch, one scheduler step each


def test_reduce_lr_on_plateau_watches_the_held_out_elbo():
    seen = []

    def plateau(opt):
        sched = ReduceLROnPlateau(opt, patience=0, factor=0.1)
        original = sched.step
        sched.step = lambda metric: (seen.append(metric), original(metric))
        return sched

    h = fit(tiny_vae(), data(), data(20, seed=2), epochs=2, batch_size=10, lr_scheduler=plateau, **QUIET)
    assert seen == [-e for e in h.test_elbo]
    with pytest.raises(ValueError, match="ReduceLROnPlateau steps on an epoch's held-out ELBO"):
        fit(tiny_vae(), data(), epochs=1, batch_size=10, lr_scheduler=plateau, scheduler_interval="step", **QUIET)


def test_scheduler_settings_that_do_not_go_together():
    with pytest.raises(ValueError, match="lr_scheduler needs a torch optimiser"):
        fit(tiny_vae(), data(), epochs=1, batch_size=10, optim=Adam({"lr": 1e-3}),
            lr_scheduler=lambda opt: StepLR(opt, 1), **QUIET)
    with pytest.raises(ValueError, match="not both"):
        fit(tiny_vae(), data(), epochs=1, batch_size=10, lr_schedule=lambda e: 1e-3,
            lr_scheduler=lambda opt: StepLR(opt, 1), **QUIET)
    with pytest.raises(ValueError, match="scheduler_interval must be 'epoch' or 'step'"):
        fit(tiny_vae(), data(), epochs=1, batch_size=10, scheduler_interval="batch", **QUIET)


def test_a_pyro_scheduler_steps_once_per_epoch():
    optim = ExponentialLR({"optimizer": torch.optim.Adam, "optim_args": {"lr": 1e-2}, "gamma": 0.5})
    h = fit(tiny_vae(), data(), epochs=3, batch_size=10, optim=optim, **QUIET)
    assert h.lr == pytest.approx([1e-2, 5e-3, 2.5e-3])
    assert all(s.get_last_lr() == pytest.approx([1.25e-3]) for s in optim.optim_objs.values())


# -- history, CSV, TensorBoard -----------------------------------------------------------------
@pytest.mark.parametrize("beta, expected", [(None, [0.5, 1.0, 1.0]), (0.4, [0.2, 0.4, 0.4])])
def test_history_beta_is_the_beta_reached_at_each_epochs_end(beta, expected):
    vae = tiny_vae()
    h = fit(vae, data(), epochs=3, batch_size=10, warmup_epochs=2, beta=beta, **QUIET)
    assert h.beta == pytest.approx(expected)
    assert vae.beta == pytest.approx(expected[-1])


def test_a_csv_log_of_every_epoch_sits_beside_the_checkpoint_and_survives_resume(tmp_path):
    path = tmp_path / "run.pt"
    fit(tiny_vae(), data(), data(20, seed=2), epochs=2, batch_size=10, checkpoint=path, **QUIET)
    pyro.clear_param_store()
    h = fit(tiny_vae(), data(), data(20, seed=2), epochs=3, batch_size=10, checkpoint=path, resume=True, **QUIET)
    with open(tmp_path / "run.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert [float(r["test_elbo"]) for r in rows] == pytest.approx(h.test_elbo, rel=1e-12)
    assert [float(r["lr"]) for r in rows] == pytest.approx([1e-3] * 3)
    assert set(rows[0]) == set(h.to_dict())


class FakeWriter:
    def __init__(self, log_dir):
        self.log_dir, self.scalars, self.closed = log_dir, [], False

    def add_scalar(self, tag, value, step):
        self.scalars.append((tag, value, step))

    def flush(self):
        pass

    def close(self):
        self.closed = True


def test_tensorboard_scalars_per_epoch(tmp_path):
    log = TensorBoardLog(tmp_path, writer=FakeWriter)
    trainer = Trainer(tiny_vae(), TrainConfig(epochs=2, batch_size=10, progress=False, warmup_epochs=1),
                      callbacks=[log], device="cpu")
    h = trainer.prepare(data(), data(20, seed=2)).run()
    w = log.writer
    assert w.log_dir == str(tmp_path) and w.closed
    by_tag = {}
    for tag, value, step in w.scalars:
        by_tag.setdefault(tag, []).append((step, value))
    assert set(by_tag) == {"elbo/train", "elbo/test", "test/recon", "test/kl", "beta", "lr"}
    assert by_tag["elbo/test"] == list(zip(h.epoch, h.test_elbo))
    assert by_tag["beta"] == [(1, 1.0), (2, 1.0)] and by_tag["lr"] == [(1, 1e-3), (2, 1e-3)]


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is not None, reason="tensorboard is installed")
def test_tensorboard_without_the_package_names_the_extra(tmp_path):
    with pytest.raises(ImportError, match=r"pip install pyrovae\[tensorboard\]"):
        fit(tiny_vae(), data(), epochs=1, batch_size=10, tensorboard=tmp_path / "tb", **QUIET)


def test_tensorboard_writes_event_files(tmp_path):
    pytest.importorskip("tensorboard")
    fit(tiny_vae(), data(), data(20, seed=2), epochs=2, batch_size=10, tensorboard=tmp_path / "tb", **QUIET)
    assert any(p.name.startswith("events.out.tfevents") for p in (tmp_path / "tb").iterdir())
