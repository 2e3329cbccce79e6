"""The IWAE objective is the per-data-point bound, checked on a linear-Gaussian model whose
log p(x) is known: z ~ N(0, 1), x | z ~ N(z, 1), so p(x) = N(0, 2) and p(z | x) = N(x / 2, 1 / 2).
The guide q(z | x) = N(a x, s) is exact at (a, s) = (0.5, sqrt 0.5) and deliberately off
otherwise."""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import SVI, RenyiELBO, Trace_ELBO
from pyro.optim import Adam

from pyrovae.infer import IWAE_ELBO, iwae_bound
from pyrovae.models import build_vae
from pyrovae.train import fit

EXACT = (0.5, math.sqrt(0.5))
OFF = (0.3, 0.5)  # a mismatched guide: per-point and joint bounds differ by several nats


def _plate(x, num_data):
    return pyro.plate("data", num_data or len(x), subsample=torch.arange(len(x)))


def model(x, num_data=None):
    with _plate(x, num_data):
        z = pyro.sample("z", dist.Normal(0.0, 1.0))
        pyro.sample("x", dist.Normal(z, 1.0), obs=x)


def make_guide(a, s):
    def guide(x, num_data=None):
        with _plate(x, num_data):
            pyro.sample("z", dist.Normal(a * x, s))

    return guide


def exact_log_px(x):
    return dist.Normal(0.0, math.sqrt(2.0)).log_prob(x)  # (N,)


def closed_form_elbo(x, a, s):
    """E_q[log p(x, z) - log q(z)] per data point."""
    m = a * x
    log_lik = -0.5 * math.log(2 * math.pi) - 0.5 * ((x - m) ** 2 + s**2)
    log_prior = -0.5 * math.log(2 * math.pi) - 0.5 * (m**2 + s**2)
    entropy = 0.5 * math.log(2 * math.pi * math.e * s**2)
    return log_lik + log_prior + entropy


@pytest.fixture
def x():
    return torch.linspace(-3.0, 3.0, 12)


def test_exact_guide_gives_log_px_for_any_k(x):
    # with q = p(z|x) every weight equals p(x_n): the bound is exact and has no variance
    exact = exact_log_px(x).sum()
    for k in (1, 3, 17):
        loss = IWAE_ELBO(k).loss(model, make_guide(*EXACT), x)
        assert loss == pytest.approx(-exact.item(), abs=1e-4)
        scaled = IWAE_ELBO(k).loss(model, make_guide(*EXACT), x, num_data=120)
        assert scaled == pytest.approx(-10 * exact.item(), abs=1e-3)


def test_estimator_is_the_per_point_formula_on_the_same_samples():
    x = torch.linspace(-3.0, 3.0, 200)  # enough points for the joint bound to fall far behind
    k, (a, s) = 64, OFF
    elbo = IWAE_ELBO(k, max_plate_nesting=2)  # no shape-guessing run, so the draws line up
    pyro.set_rng_seed(3)
    loss = elbo.loss(model, make_guide(a, s), x)
    pyro.set_rng_seed(3)
    z = dist.Normal(a * x, s).expand([k, len(x)]).sample()  # (K, N), the guide's draws
    log_w = dist.Normal(0.0, 1.0).log_prob(z) + dist.Normal(z, 1.0).log_prob(x) - dist.Normal(a * x, s).log_prob(z)
    per_point = (torch.logsumexp(log_w, 0) - math.log(k)).sum()  # sum_n log 1/K sum_k w_nk
    joint = torch.logsumexp(log_w.sum(1), 0) - math.log(k)  # log 1/K sum_k prod_n w_nk
    assert -loss == pytest.approx(per_point.item(), abs=1e-3)
    assert per_point - joint > 10.0  # the two differ measurably here, so the check has teeth
    assert abs(per_point - exact_log_px(x).sum()) < 10.0


def test_bound_tightens_towards_log_px(x):
    exact = exact_log_px(x).sum().item()
    means = {}
    for k in (1, 10, 1000):
        elbo = IWAE_ELBO(k)
        means[k] = -sum(elbo.loss(model, make_guide(*OFF), x) for _ in range(20)) / 20
    log_w, _ = IWAE_ELBO(4000).log_weights(model, make_guide(*OFF), x)  # (K, N)
    assert log_w.mean(0).sum().item() == pytest.approx(closed_form_elbo(x, *OFF).sum().item(), abs=0.2)
    assert means[1] < means[10] < means[1000] < exact + 0.05
    assert exact - means[1000] < 0.3  # 12 points: under 0.025 nats each (the ELBO is ~3 nats short)
    assert exact - means[1] > 3.0


def test_subsample_scaling_and_pyro_renyi(x):
    # IWAE_ELBO scales the per-point bound by N / batch; Pyro's RenyiELBO(alpha=0) instead
    # raises each weight to the power N / batch, which is not the IWAE bound
    k, n = 50, 1200
    pyro.set_rng_seed(1)
    plain = IWAE_ELBO(k, max_plate_nesting=2).loss(model, make_guide(*OFF), x)
    pyro.set_rng_seed(1)
    scaled = IWAE_ELBO(k, max_plate_nesting=2).loss(model, make_guide(*OFF), x, num_data=n)
    assert scaled == pytest.approx(plain * n / len(x), rel=1e-5)
    renyi = RenyiELBO(alpha=0.0, num_particles=k, vectorize_particles=True, max_plate_nesting=2)
    pyro.set_rng_seed(1)
    renyi_plain = renyi.loss(model, make_guide(*OFF), x)
    pyro.set_rng_seed(1)
    renyi_scaled = renyi.loss(model, make_guide(*OFF), x, num_data=n)
    assert renyi_plain == pytest.approx(plain, rel=1e-5)  # without subsampling they agree
    assert abs(renyi_scaled - scaled) > 50.0


def test_one_particle_is_trace_elbo(x):
    pyro.set_rng_seed(2)
    iwae = IWAE_ELBO(1, max_plate_nesting=1).loss(model, make_guide(*OFF), x)
    pyro.set_rng_seed(2)
    trace = Trace_ELBO(max_plate_nesting=1).loss(model, make_guide(*OFF), x)
    assert iwae == pytest.approx(trace, rel=1e-6)


def test_iwae_bound_helper_and_errors(x):
    log_w = torch.tensor([[0.0, 1.0], [2.0, 1.0]])  # (K=2, batch=2)
    expected = torch.tensor([math.log((1 + math.e**2) / 2), 1.0])
    assert torch.allclose(iwae_bound(log_w), expected)
    with pytest.raises(ValueError, match="shape"):
        iwae_bound(torch.zeros(3))
    with pytest.raises(ValueError, match="positive"):
        IWAE_ELBO(0)

    def global_model(x, num_data=None):
        mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
        with _plate(x, num_data):
            pyro.sample("x", dist.Normal(mu, 1.0), obs=x)

    def global_guide(x, num_data=None):
        pyro.sample("mu", dist.Normal(0.0, 1.0))

    with pytest.raises(ValueError, match="inside the vectorised plate"):
        IWAE_ELBO(2).loss(global_model, global_guide, x)

    def discrete_model(x, num_data=None):
        with _plate(x, num_data):
            c = pyro.sample("c", dist.Bernoulli(0.5))
            pyro.sample("x", dist.Normal(c, 1.0), obs=x)

    def discrete_guide(x, num_data=None):
        with _plate(x, num_data):
            pyro.sample("c", dist.Bernoulli(0.5))

    with pytest.raises(ValueError, match="reparameterised"):
        IWAE_ELBO(2).loss(discrete_model, discrete_guide, x)


def test_trains_a_vae_with_svi_and_fit():
    vae = build_vae(x_shape=(10,), z_dim=2, hidden=(8,))
    xb = (torch.rand(64, 10) < 0.3).float()
    svi = SVI(vae.model, vae.guide, Adam({"lr": 1e-2}), IWAE_ELBO(4))
    before = [p.detach().clone() for p in vae.parameters()]
    loss = svi.step(xb, num_data=640)
    assert math.isfinite(loss)
    assert all(not torch.equal(b, p) for b, p in zip(before, vae.parameters()))
    history = fit(vae, xb, xb[:16], epochs=2, batch_size=16, loss=IWAE_ELBO(3), progress=False, device="cpu")
    assert len(history) == 2 and all(math.isfinite(v) for v in history.train_elbo)


def _load_benchmark(name):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"{name}_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("config", ["best", "vamp-large"])
def test_likelihood_benchmark_tiny_run(tmp_path, mnist, capsys, config):
    bench = _load_benchmark("likelihood")
    out = tmp_path / f"likelihood_{config}.json"
    args = bench.build_parser().parse_args(
        ["--config", config, "--epochs", "2", "--subset", "64", "--samples", "8", "--out", str(out), "--threads", "2",
         "--final-lr", "1e-4"]
    )
    record = bench.run(args)
    assert record["status"] == "done" and record["epochs"] == 2 and record["eval"]["test_points"] == 64
    assert math.isfinite(record["nll"]) and record["nll"] > 0 and record["nll_se_mc"] >= 0
    assert record["train"]["final_lr"] == 1e-4
    assert out.exists()
    # the README's figure and table come from these records
    _load_benchmark("plot_likelihood").main(["--results", str(tmp_path), "--out", str(tmp_path / "curves.png")])
    printed = capsys.readouterr().out
    assert f"| `{config}` | 2 (" in printed and f"**{record['nll']:.2f}**" in printed
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_likelihood_benchmark_fine_tunes_from_a_checkpoint(tmp_path, mnist):
    from pyrovae.train.checkpoint import CheckpointError

    bench = _load_benchmark("likelihood")
    # K large enough that two estimates agree
    tiny = ["--epochs", "1", "--subset", "64", "--samples", "300", "--threads", "2"]
    base = bench.run(bench.build_parser().parse_args(
        ["--config", "best-large", *tiny, "--out", str(tmp_path / "a.json"), "--checkpoint", str(tmp_path / "a.pt"),
         "--lr", "1e-2", "--epochs", "15"]))  # 15 big steps: far from a fresh model, whose NLL is about 540 nats
    assert base["nll"] < 480
    tuned = bench.run(bench.build_parser().parse_args(
        ["--config", "best-large-iwae", *tiny, "--out", str(tmp_path / "b.json"), "--init-from", str(tmp_path / "a.pt"),
         "--lr", "0"]))  # lr 0: the loaded weights are scored unchanged
    assert tuned["init_from"]["epochs"] == 15 and tuned["train"]["loss"] == "iwae"
    assert tuned["nll"] == pytest.approx(base["nll"], abs=3 * (base["nll_se_mc"] + tuned["nll_se_mc"]) + 0.5)
    with pytest.raises(CheckpointError, match="another config"):
        bench.run(bench.build_parser().parse_args(
            ["--config", "vae-large", *tiny, "--out", str(tmp_path / "c.json"), "--init-from", str(tmp_path / "a.pt")]))
    with pytest.raises(ValueError, match="must be different files"):
        bench.run(bench.build_parser().parse_args(
            ["--config", "best-large", *tiny, "--out", str(tmp_path / "d.json"), "--init-from", str(tmp_path / "a.pt"),
             "--checkpoint", str(tmp_path / "a.pt")]))


def test_likelihood_benchmark_scores_a_finished_checkpoint(tmp_path, mnist):
    bench = _load_benchmark("likelihood")
    tiny = [
        "--config",
        "vae-large",
        "--epochs",
        "2",
        "--subset",
        "64",
        "--threads",
        "2",
        "--checkpoint",
        str(tmp_path / "a.pt"),
    ]
    first = bench.run(bench.build_parser().parse_args([*tiny, "--samples", "300", "--out", str(tmp_path / "a.json")]))
    # the same command again (here on fewer test images): nothing left to train, the run is scored as it is
    again = bench.run(bench.build_parser().parse_args([*tiny, "--samples", "300", "--test-subset", "32",
                                                       "--out", str(tmp_path / "b.json")]))
    assert again["epochs"] == 2 and again["scored_from_checkpoint"] == str(tmp_path / "a.pt")
    assert again["history"]["test_elbo"] == first["history"]["test_elbo"]
    assert again["train_seconds"] == pytest.approx(sum(first["history"]["seconds"]))
    assert again["eval"]["test_points"] == 32 and again["status"] == "done"
    # scored on a subset of the same binarised test images, by the same model
    assert abs(again["nll"] - first["nll"]) < 4 * (first["nll_se_data"] + again["nll_se_data"])


def test_likelihood_benchmark_hierarchical_recipe_resumes_and_refuses_model_flags(tmp_path, mnist):
    bench = _load_benchmark("likelihood")
    tiny = ["--recipe", "hvae-burda", "--subset", "64", "--samples", "8", "--threads", "2",
            "--checkpoint", str(tmp_path / "h.pt")]
    first = bench.run(bench.build_parser().parse_args([*tiny, "--epochs", "1", "--out", str(tmp_path / "a.json")]))
    assert first["model"]["model"] == "hierarchical" and first["model"]["z_dims"] == [100, 50]
    assert first["train"]["loss"] == "iwae" and first["train"]["particles"] == 5 and first["epochs"] == 1
    assert math.isfinite(first["nll"]) and first["nll"] > 0
    # --epochs 2 with the same checkpoint trains one epoch more, on from the first
    second = bench.run(bench.build_parser().parse_args([*tiny, "--epochs", "2", "--out", str(tmp_path / "b.json")]))
    assert second["history"]["epoch"] == [1, 2]
    assert second["history"]["test_elbo"][0] == first["history"]["test_elbo"][0]
    with pytest.raises(ValueError, match="--z-dim do not apply to the hierarchical recipe hvae-burda"):
        bench.run(bench.build_parser().parse_args([*tiny, "--z-dim", "8", "--out", str(tmp_path / "c.json")]))
