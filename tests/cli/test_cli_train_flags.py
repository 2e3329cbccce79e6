"""`pyrovae train`'s training conveniences: --clip-grad-norm, --patience (best.pt), --lr-scheduler
and --tensorboard, and their mistakes (one line, exit 2)."""

from __future__ import annotations

import importlib.util
import json
import math

import pytest

from pyrovae.cli import main
from pyrovae.train.checkpoint import read_checkpoint
from tests.cli.test_cli_data import FAST, _bars

HAS_TENSORBOARD = importlib.util.find_spec("tensorboard") is not None


def _train(tmp_path, *flags):
    source = _bars(tmp_path / "bars.npy", n=120)
    return main(["train", "--data", str(source), *FAST, "--out", str(tmp_path / "run"), *flags])


def test_clipping_early_stopping_and_a_cosine_schedule(tmp_path, capsys):
    assert _train(tmp_path, "--epochs", "4", "--lr", "1e-2", "--clip-grad-norm", "0.5", "--patience", "2",
                  "--lr-scheduler", "cosine") == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    lrs = metrics["history"]["lr"]
    # CosineAnnealingLR(T_max=4): the rate each epoch trained at is 1e-2 * (1 + cos(pi e / 4)) / 2
    assert lrs == pytest.approx([1e-2 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(len(lrs))])
    best = read_checkpoint(tmp_path / "run" / "best.pt")
    test_elbo = metrics["history"]["test_elbo"]
    assert best["epoch"] == 1 + max(range(len(test_elbo)), key=test_elbo.__getitem__)  # the best epoch's weights


def test_the_flags_reach_fit(tmp_path, monkeypatch):
    import pyrovae.train

    seen = {}
    real = pyrovae.train.fit

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(pyrovae.train, "fit", spy)
    assert _train(tmp_path, "--epochs", "1", "--clip-grad-norm", "0.25", "--patience", "3") == 0
    assert seen["clip_grad_norm"] == 0.25 and seen["patience"] == 3
    assert seen["lr_scheduler"] is None and seen["tensorboard"] is None


@pytest.mark.skipif(not HAS_TENSORBOARD, reason="needs the tensorboard extra")
def test_tensorboard_scalars(tmp_path):
    assert _train(tmp_path, "--epochs", "2", "--tensorboard", str(tmp_path / "tb")) == 0
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))


def test_tensorboard_without_the_package_names_the_extra(tmp_path, capsys, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    assert _train(tmp_path, "--epochs", "1", "--tensorboard", str(tmp_path / "tb")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["pyrovae: error: --tensorboard needs the tensorboard package: pip install 'pyrovae[tensorboard]'"]
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


@pytest.mark.parametrize(("flags", "match"), [
    (["--lr-scheduler", "plateau", "--final-lr", "1e-4"], "give --lr-scheduler or --final-lr, not both"),
    (["--lr-scheduler", "step"], "--lr-scheduler: invalid choice: 'step'"),
    (["--clip-grad-norm", "0"], "--clip-grad-norm"),
    (["--patience", "-1"], "--patience"),
])
def test_convenience_mistakes_are_one_line_and_exit_2(tmp_path, capsys, flags, match):
    with pytest.raises(SystemExit) as exit_info:
        code = _train(tmp_path, "--epochs", "1", *flags)
        raise SystemExit(code)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pyrovae: error:") and match in err[0], err
