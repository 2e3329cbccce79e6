"""The Trainer behind fit: its config, its two step classes, callbacks (both kinds, stopping),
and ``fit`` == ``Trainer.run``."""

from __future__ import annotations

import math

import pyro
import pytest
import torch
from pyro.infer import SVI, Trace_ELBO
from pyro.optim import Adam

from pyrovae.infer import ReparamTrace_ELBO
from pyrovae.models import build_vae
from pyrovae.train import Callback, SVIStep, TorchStep, TrainConfig, Trainer, fit, make_step
from pyrovae.train.callbacks import EpochFunction, as_callbacks, step_hook

N, D = 60, 12


def tiny_vae(seed: int = 0):
    torch.manual_seed(seed)  # the same initial weights for every call with this seed
    return build_vae(x_shape=(D,), z_dim=2, hidden=(8,))


def data(seed: int = 1) -> torch.Tensor:
    return (torch.rand(N, D, generator=torch.Generator().manual_seed(seed)) < 0.3).float()


def flat(vae) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in vae.parameters()])


def same_history(a, b) -> None:
    da, db = a.to_dict(), b.to_dict()
    da.pop("seconds"), db.pop("seconds")  # wall times differ; everything else must not
    assert da == db


# -- TrainConfig -----------------------------------------------------------------------------
@pytest.mark.parametrize("field, value, match", [
    ("check_every", 0, "check_every must be an integer >= 1"),
    ("batch_size", 0, "batch_size must be an integer >= 1"),
    ("epochs", -1, "epochs must be an integer >= 0"),
    ("epochs", 1.5, "epochs must be an integer"),
    ("lr", float("nan"), "lr must be a finite number"),
    ("warmup_epochs", -1.0, "warmup_epochs must be"),
    ("eval_batch_size", 0, "eval_batch_size must be"),
    ("beta", -0.1, "beta must be"),
    ("seed", "zero", "seed must be an integer or None"),
    ("binarize", "otsu", "binarize must be 'dynamic', 'static' or None"),
])
def test_config_names_the_bad_setting(field, value, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**{"epochs": 1, "batch_size": 10, field: value})


def test_fit_rejects_a_bad_setting_before_touching_the_data():
    with pytest.raises(ValueError, match="check_every must be"):
        fit(tiny_vae(), data(), epochs=1, batch_size=10, check_every=0, device="cpu", progress=False)


def test_config_round_trips_to_a_dict():
    cfg = TrainConfig(epochs=3, batch_size=7, seed=None, beta=0.5)
    assert TrainConfig(**cfg.to_dict()) == cfg and cfg.to_dict()["check_every"] == 100


# -- the steps -------------------------------------------------------------------------------
def test_torch_step_is_one_manual_adam_step_on_the_differentiable_loss():
    x = data()
    vae, ref = tiny_vae(), tiny_vae()
    opt = torch.optim.Adam(vae.parameters(), lr=1e-2)
    step = TorchStep(vae.model, vae.guide, ReparamTrace_ELBO(), opt, list(vae.parameters()), num_data=600)
    pyro.set_rng_seed(4)
    value = step(x)
    ref_opt = torch.optim.Adam(ref.parameters(), lr=1e-2)
    pyro.clear_param_store()  # ref is another model under the same names: the store would load vae's values into it
    pyro.set_rng_seed(4)
    loss = Trace_ELBO().differentiable_loss(ref.model, ref.guide, x, num_data=600)
    loss.backward()
    ref_opt.step()
    assert isinstance(value, torch.Tensor) and not value.requires_grad  # stays on the device, detached
    assert value.item() == pytest.approx(loss.item(), rel=1e-5)
    torch.testing.assert_close(flat(vae), flat(ref), rtol=1e-5, atol=1e-7)
    assert not torch.equal(flat(vae), flat(tiny_vae()))  # the step moved the parameters


class GradsOnly:
    """An ELBO with ``loss_and_grads`` only (no ``differentiable_loss``)."""

    def __init__(self):
        self.inner, self.calls = Trace_ELBO(), 0

    def loss_and_grads(self, model, guide, *args, **kwargs):
        self.calls += 1
        return self.inner.loss_and_grads(model, guide, *args, **kwargs)


def test_torch_step_falls_back_to_loss_and_grads():
    x, vae = data(), tiny_vae()
    loss = GradsOnly()
    opt = torch.optim.SGD(vae.parameters(), lr=1e-3)
    step = TorchStep(vae.model, vae.guide, loss, opt, list(vae.parameters()), num_data=N)
    assert not step.differentiable
    before = flat(vae)
    value = step(x)  # model and guide register their modules: loss_and_grads sees param sites
    assert loss.calls == 1 and isinstance(value, float) and value > 0
    assert not torch.equal(before, flat(vae))


def test_svi_step_is_svi_step():
    x = data()
    vae, ref = tiny_vae(), tiny_vae()
    step = SVIStep(vae.model, vae.guide, Trace_ELBO(), Adam({"lr": 1e-2}), num_data=600)
    pyro.set_rng_seed(5)
    value = step(x)
    ours = flat(vae)
    pyro.clear_param_store()
    svi = SVI(ref.model, ref.guide, Adam({"lr": 1e-2}), Trace_ELBO())
    pyro.set_rng_seed(5)
    expected = svi.step(x, num_data=600)
    assert value == expected
    assert torch.equal(ours, flat(ref))


def test_make_step_chooses_by_optimiser():
    vae = tiny_vae()
    assert isinstance(make_step(vae, Trace_ELBO(), Adam({"lr": 1e-3}), 1e-3, num_data=N), SVIStep)
    torch_step = make_step(vae, Trace_ELBO(), None, 2e-3, num_data=N)
    assert isinstance(torch_step, TorchStep) and torch_step.optimizer.param_groups[0]["lr"] == 2e-3
    sgd = make_step(vae, Trace_ELBO(), lambda p: torch.optim.SGD(p, lr=0.1), 1e-3, num_data=N)
    assert isinstance(sgd.optimizer, torch.optim.SGD)
    with pytest.raises(ValueError, match="distributed=True needs a torch optimiser"):
        make_step(vae, Trace_ELBO(), Adam({"lr": 1e-3}), 1e-3, num_data=N, world=2)


# -- fit == Trainer.run ----------------------------------------------------------------------
@pytest.mark.parametrize("optim", [None, "pyro"])
def test_fit_and_trainer_run_give_identical_histories(optim):
    kw = {"epochs": 3, "batch_size": 10, "binarize": None, "seed": 3, "warmup_epochs": 1.5, "progress": False}
    x, xt = data(), data(seed=2)[:20]
    make_optim = (lambda: Adam({"lr": 1e-2})) if optim else (lambda: None)
    by_fit = tiny_vae()
    h_fit = fit(by_fit, x, xt, device="cpu", optim=make_optim(), **kw)
    pyro.clear_param_store()
    by_trainer = tiny_vae()
    trainer = Trainer(by_trainer, TrainConfig(**kw), optim=make_optim(), device="cpu")
    h_run = trainer.prepare(x, xt).run()
    same_history(h_fit, h_run)
    assert torch.equal(flat(by_fit), flat(by_trainer))
    assert h_run.epoch == [1, 2, 3] and all(v is not None for v in h_run.test_elbo)


# -- callbacks -------------------------------------------------------------------------------
class Recorder(Callback):
    def __init__(self, stop_at_epoch=None, stop_at_step=None):
        self.events, self.steps = [], []
        self.stop_at_epoch, self.stop_at_step = stop_at_epoch, stop_at_step

    def on_train_begin(self, trainer):
        self.events.append("begin")

    def on_step_end(self, trainer, step, loss):
        self.steps.append(step)
        assert isinstance(loss, torch.Tensor) and loss.dim() == 0
        if step == self.stop_at_step:
            trainer.should_stop = True

    def on_epoch_end(self, trainer, epoch):
        self.events.append(("epoch", epoch, len(trainer.history)))
        if epoch == self.stop_at_epoch:
            trainer.should_stop = True

    def on_train_end(self, trainer):
        self.events.append("end")


def test_both_kinds_of_callback_run_at_their_hooks():
    seen = []
    rec = Recorder()
    h = fit(tiny_vae(), data(), epochs=2, batch_size=20, binarize=None, device="cpu", progress=False,
            callbacks=[rec, lambda epoch, vae, history: seen.append((epoch, len(history), vae.training))])
    assert seen == [(1, 1, True), (2, 2, True)]  # after the history entry, before eval() at the end
    assert rec.events == ["begin", ("epoch", 1, 1), ("epoch", 2, 2), "end"]
    assert rec.steps == list(range(1, 7))  # 3 steps an epoch, counted over the run
    assert len(h) == 2


def test_should_stop_in_on_epoch_end_ends_training_after_that_epoch(tmp_path):
    rec = Recorder(stop_at_epoch=2)
    h = fit(tiny_vae(), data(), epochs=5, batch_size=20, binarize=None, device="cpu", progress=False,
            callbacks=[rec], checkpoint=tmp_path / "c.pt")
    assert h.epoch == [1, 2] and rec.events[-1] == "end"
    assert torch.load(tmp_path / "c.pt", weights_only=True)["epoch"] == 2


def test_should_stop_in_on_step_end_ends_the_epoch_after_that_step():
    rec = Recorder(stop_at_step=4)
    h = fit(tiny_vae(), data(), epochs=5, batch_size=20, binarize=None, device="cpu", progress=False,
            callbacks=[rec])
    assert rec.steps == [1, 2, 3, 4] and h.epoch == [1, 2]
    # epoch 2's mean is over its one step, not padded zeros
    assert all(math.isfinite(v) and v < 0 for v in h.train_elbo)


def test_on_step_end_is_skipped_unless_overridden():
    class EpochOnly(Callback):
        def on_epoch_end(self, trainer, epoch):
            pass

    assert step_hook(as_callbacks([EpochOnly(), lambda e, v, h: None])) is None
    trainer = Trainer(tiny_vae(), TrainConfig(epochs=1, batch_size=10), callbacks=[EpochOnly()], device="cpu")
    assert trainer.prepare(data()).step_hook is None
    rec = Recorder()
    assert step_hook(as_callbacks([EpochOnly(), rec])) == rec.on_step_end  # only the one that overrides it
    adapted = as_callbacks([print])
    assert isinstance(adapted[0], EpochFunction) and adapted[0].fn is print
    with pytest.raises(TypeError, match="a callback must be a Callback or a function"):
        as_callbacks([42])
