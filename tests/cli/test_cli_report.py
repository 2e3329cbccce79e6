"""The report functions behind `pyrovae evaluate`, `inspect` and `train`: numbers and figures."""

from __future__ import annotations

import math

import pytest
import torch

from pyrovae.cli.report import TRAIN_FIGURES, evaluation_summary, inspection_figures
from pyrovae.models import build_vae


def _tiny(z_dim: int = 3):
    torch.manual_seed(0)
    vae = build_vae(z_dim=z_dim, hidden=(16,)).eval()
    x = (torch.rand(40, 1, 28, 28) < 0.2).float()  # (40, 1, 28, 28) binary
    return vae, x, torch.arange(40) % 10


def test_evaluation_summary_is_consistent():
    vae, x, _ = _tiny()
    s = evaluation_summary(vae, x, num_samples=64, batch_size=20)
    assert s["n"] == 40 and s["z_dim"] == 3 and len(s["unit_activity"]) == 3
    assert s["elbo"] == pytest.approx(s["recon"] - s["kl"], abs=1e-3)
    # the importance-weighted estimate is a tighter bound than the ELBO (up to its own noise)
    assert s["log_px"] >= s["elbo"] - 3 * s["log_px_stderr"] - 1e-3
    assert s["elbo_gap"] == pytest.approx(s["log_px"] - s["elbo"])
    assert s["kl_method"] == "analytic" and isinstance(s["collapse_report"], str)


def test_evaluation_summary_of_a_hierarchical_vae_has_each_layers_numbers():
    from pyrovae.models import build_hierarchical_vae

    torch.manual_seed(0)
    hvae = build_hierarchical_vae(z_dims=(4, 2), hidden=((16,), (8,))).eval()
    _, x, _ = _tiny()
    s = evaluation_summary(hvae, x, num_samples=16, batch_size=20)
    assert s["z_dims"] == [4, 2] and s["z_dim"] == 6 and len(s["active_units_per_layer"]) == 2
    assert all(0 <= a <= d for a, d in zip(s["active_units_per_layer"], s["z_dims"], strict=True))
    # one Monte Carlo KL per layer (that they sum to the KL term is tested with the model)
    assert len(s["kl_per_layer"]) == 2 and all(math.isfinite(k) for k in s["kl_per_layer"])


def test_inspection_figures_draws_only_the_names_asked_for(tmp_path):
    vae, x, y = _tiny()
    paths, notes = inspection_figures(vae, x, y, tmp_path, names=TRAIN_FIGURES)
    assert set(paths) == set(TRAIN_FIGURES)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{n}.png" for n in TRAIN_FIGURES)
    assert notes == []
    paths, notes = inspection_figures(vae, x, y, tmp_path / "m", names=["manifold"])
    assert paths == {} and notes == ["manifold: skipped, they need a 2-D latent (this model has z_dim=3)"]
    paths, notes = inspection_figures(vae, x, y, tmp_path / "t", names=["top_layer"])
    assert paths == {} and notes == ["top_layer: skipped, it needs a hierarchical VAE (two or more latent layers)"]
    with pytest.raises(ValueError, match="unknown figures \\['smile'\\]"):
        inspection_figures(vae, x, y, tmp_path, names=["samples", "smile"])


def test_reconstructions_with_fewer_than_twenty_inputs(tmp_path):
    vae, x, y = _tiny()
    paths, _ = inspection_figures(vae, x[:7], y[:7], tmp_path, names=["reconstructions"])
    assert paths["reconstructions"].stat().st_size > 1000

