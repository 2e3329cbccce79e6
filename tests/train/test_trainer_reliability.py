"""Training reliability: resume is bitwise exact for every objective, divergence never leaves
NaN weights behind as "the last good checkpoint", the JIT loss trains, and bad settings or
empty data are clear errors."""

from __future__ import annotations

import pyro
import pytest
import torch
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO
from pyro.optim import Adam, ExponentialLR
from torch.optim.lr_scheduler import StepLR

from pyrovae.infer import IWAE_ELBO, MinibatchRWS
from pyrovae.models import build_vae
from pyrovae.train import TrainingDivergedError, exponential_lr, fit
from pyrovae.train import checkpoint as ckpt

N, D = 60, 12


def tiny_vae(seed: int = 0):
    torch.manual_seed(seed)
    return build_vae(x_shape=(D,), z_dim=2, hidden=(8,))


def data(n: int = N, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, D, generator=torch.Generator().manual_seed(seed))  # probabilities: binarised per batch


def state(vae) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in vae.state_dict().items()}


# every objective fit accepts, as a factory (a fresh ELBO per run: a used one has already guessed its plate nesting)
OBJECTIVES = {
    "trace": lambda: {"loss": "trace"},
    "trace-pyro": lambda: {"loss": "trace-pyro"},
    "meanfield": lambda: {"loss": "meanfield"},
    "trace-3-vectorised": lambda: {"loss": "trace", "num_particles": 3},
    "trace-2-sequential": lambda: {"loss": Trace_ELBO(num_particles=2)},
    "meanfield-4-vectorised": lambda: {"loss": TraceMeanField_ELBO(num_particles=4, vectorize_particles=True)},
    "iwae": lambda: {"loss": "iwae", "num_particles": 3},
    "iwae-object": lambda: {"loss": IWAE_ELBO(num_particles=2)},
    "rws": lambda: {"loss": MinibatchRWS(num_particles=3)},
    "jit": lambda: {"loss": "jit"},
    "pyro-adam-trace": lambda: {"optim": Adam({"lr": 1e-2})},
    "pyro-adam-iwae": lambda: {"optim": Adam({"lr": 1e-2}), "loss": "iwae"},
    "torch-sgd-schedule-warmup": lambda: {"optim": lambda p: torch.optim.SGD(p, lr=1e-3, momentum=0.9),
                                          "lr_schedule": exponential_lr(1e-3, 1e-4, 4), "warmup_epochs": 1.5},
    "validate": lambda: {"validate": True},
    "torch-steplr-per-epoch": lambda: {"lr_scheduler": lambda opt: StepLR(opt, step_size=1, gamma=0.5)},
    "torch-steplr-per-step-clipped": lambda: {"lr_scheduler": lambda opt: StepLR(opt, step_size=4, gamma=0.7),
                                              "scheduler_interval": "step", "clip_grad_norm": 5.0},
    "pyro-exponential-lr": lambda: {"optim": ExponentialLR({"optimizer": torch.optim.Adam, "optim_args": {"lr": 1e-2},
                                                            "gamma": 0.5})},
    "early-stopping": lambda: {"patience": 5},
}


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_resume_is_bitwise_exact(tmp_path, name):
    x, xt = data(), data(20, seed=2)
    kw = {"batch_size": 10, "device": "cpu", "progress": False, "seed": 5}
    straight = tiny_vae()
    h_straight = fit(straight, x, xt, epochs=3, **kw, **OBJECTIVES[name]())

    path = tmp_path / "r.pt"
    pyro.clear_param_store()
    fit(tiny_vae(), x, xt, epochs=1, checkpoint=path, **kw, **OBJECTIVES[name]())
    pyro.clear_param_store()
    resumed = tiny_vae(seed=99)  # other weights: the checkpoint must replace them
    h_resumed = fit(resumed, x, xt, epochs=3, checkpoint=path, resume=True, **kw, **OBJECTIVES[name]())

    ours, theirs = state(resumed), state(straight)
    assert ours.keys() == theirs.keys()
    for k in ours:
        assert torch.equal(ours[k], theirs[k]), f"{name}: {k} differs after resume"
    assert h_resumed.train_elbo == h_straight.train_elbo and h_resumed.test_elbo == h_straight.test_elbo


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_jit_loss_trains_like_trace_elbo():
    x, xt = data(55), data(20, seed=2)  # 5 batches of 10 and one of 5: the compiled graph takes both
    h_jit = fit(tiny_vae(), x, xt, epochs=3, batch_size=10, loss="jit", device="cpu", progress=False)
    pyro.clear_param_store()
    h_trace = fit(tiny_vae(), x, xt, epochs=3, batch_size=10, loss="trace-pyro", device="cpu", progress=False)
    # the compiled graph is Trace_ELBO's: the same draws give the same steps up to float rounding
    assert h_jit.test_elbo == pytest.approx(h_trace.test_elbo, abs=1e-3)
    assert h_jit.test_elbo[-1] > h_jit.test_elbo[0]


# -- divergence --------------------------------------------------------------------------------
def poison_decoder_after(vae, calls_ok: int, grad_only: bool = False):
    """From call ``calls_ok + 1`` on, the decoder's output (or only its gradient) is NaN."""
    calls = {"n": 0}
    forward = vae.decoder.forward

    def poisoned(z):
        calls["n"] += 1
        out = forward(z)
        if calls["n"] <= calls_ok:
            return out
        if grad_only:
            out.register_hook(lambda g: g * float("nan"))  # a finite loss, a NaN gradient
            return out
        return out * float("nan")

    vae.decoder.forward = poisoned
    return calls


def test_nan_gradient_on_the_last_step_of_an_epoch_is_caught_before_the_test_elbo(tmp_path):
    vae = tiny_vae()
    path = tmp_path / "c.pt"
    # fit's route check, epoch 1 (6 steps, 2 test batches), 5 steps of epoch 2
    calls = poison_decoder_after(vae, calls_ok=1 + 6 + 2 + 5, grad_only=True)
    with pytest.raises(TrainingDivergedError, match=r"parameters became NaN or inf at epoch 2, between steps 1 and 6 "
                                                    r".*the last good checkpoint is .*c\.pt \(epoch 1\)"):
        fit(vae, data(), data(20, seed=2), epochs=3, batch_size=10, eval_batch_size=10, device="cpu",
            progress=False, checkpoint=path)
    assert calls["n"] == 1 + 6 + 2 + 6  # it stopped after epoch 2's last step, before evaluating
    payload = ckpt.read_checkpoint(path)
    assert payload["epoch"] == 1 and all(torch.isfinite(v).all() for v in payload["model_state"].values())


def test_divergence_in_the_first_epoch_says_no_checkpoint_exists(tmp_path):
    vae = tiny_vae()
    poison_decoder_after(vae, calls_ok=1 + 2)  # fit's route check before epoch 1, then 2 steps
    path = tmp_path / "c.pt"
    with pytest.raises(TrainingDivergedError, match=r"at epoch 1, step 3; no checkpoint of this run has been written"):
        fit(vae, data(), epochs=2, batch_size=10, device="cpu", progress=False, checkpoint=path)
    assert not path.exists()


def test_a_resumed_run_names_the_checkpoint_it_resumed_from(tmp_path):
    path = tmp_path / "c.pt"
    fit(tiny_vae(), data(), epochs=2, batch_size=10, device="cpu", progress=False, checkpoint=path)
    vae = tiny_vae()
    poison_decoder_after(vae, calls_ok=1 + 1)  # fit's route check before the first epoch, then 1 step
    with pytest.raises(TrainingDivergedError, match=r"at epoch 3, step 2; the last good checkpoint is .* \(epoch 2\)"):
        fit(vae, data(), epochs=4, batch_size=10, device="cpu", progress=False, checkpoint=path, resume=True,
            check_every=1)


def test_a_non_finite_held_out_elbo_is_divergence_and_keeps_the_checkpoint(tmp_path):
    vae = tiny_vae()
    path = tmp_path / "c.pt"
    xt = data(20, seed=2)
    forward = vae.decoder.forward
    poisoned = {"on": False}

    def decoder(z):  # NaN only in evaluation mode: the parameters and training losses stay finite
        return forward(z) * float("nan") if poisoned["on"] and not vae.training else forward(z)

    vae.decoder.forward = decoder
    fit(vae, data(), xt, epochs=1, batch_size=10, device="cpu", progress=False, checkpoint=path)
    poisoned["on"] = True
    # without Pyro's validation the NaN reaches the ELBO itself (with it, the distributions refuse it)
    with pyro.validation_enabled(False), pytest.raises(
            TrainingDivergedError, match=r"held-out ELBO became nan .* at epoch 2, after step 12; "
                                         r"the last good checkpoint is .* \(epoch 1\)"):
        fit(vae, data(), xt, epochs=2, batch_size=10, device="cpu", progress=False, checkpoint=path, resume=True)
    assert ckpt.read_checkpoint(path)["epoch"] == 1


# -- settings and data ------------------------------------------------------------------------
@pytest.mark.parametrize("kw, match", [
    ({"check_every": 0}, "check_every must be an integer >= 1"),
    ({"eval_batch_size": -5}, "eval_batch_size must be an integer >= 1"),
    ({"lr": -1e-3}, "lr must be a finite number >= 0"),
    ({"warmup_epochs": float("inf")}, "warmup_epochs must be a finite number"),
    ({"resume": True}, "resume=True needs checkpoint=PATH"),
    ({"optim": Adam({"lr": 1e-3}), "lr_schedule": lambda e: 1e-3}, "lr_schedule needs a torch optimiser"),
    ({"loss": IWAE_ELBO(2), "num_particles": 3}, "num_particles goes with a named loss"),
])
def test_bad_settings_name_the_setting(kw, match):
    with pytest.raises(ValueError, match=match):
        fit(tiny_vae(), data(), epochs=1, batch_size=10, device="cpu", progress=False, **kw)


def test_empty_data_is_a_clear_error():
    with pytest.raises(
        ValueError, match=r"train_images must be a non-empty batch \(N, \*x_shape\), got shape \(0, 12\)"
    ):
        fit(tiny_vae(), data()[:0], epochs=1, batch_size=10, device="cpu", progress=False)
    with pytest.raises(ValueError, match=r"test_images must be a non-empty batch"):
        fit(tiny_vae(), data(), data()[:0], epochs=1, batch_size=10, device="cpu", progress=False)


def test_pyro_scheduler_state_resumes(tmp_path):
    def sched():
        return ExponentialLR({"optimizer": torch.optim.Adam, "optim_args": {"lr": 1e-2}, "gamma": 0.5})

    path = tmp_path / "s.pt"
    fit(tiny_vae(), data(), epochs=1, batch_size=10, optim=sched(), device="cpu", progress=False, checkpoint=path)
    payload = ckpt.read_checkpoint(path)
    assert payload["optimizer"]["kind"] == "pyro"
    states = payload["optimizer"]["state"].values()
    assert states and all({"scheduler", "optimizer"} <= set(s) for s in states)  # the scheduler's own state kept
