"""Every benchmark script runs, at a tiny size, and writes the JSON record its docs describe.
(``benchmarks/likelihood.py`` and ``plot_likelihood.py`` run in ``tests/infer/test_iwae.py``.)
The numbers here are not benchmarks: only their presence and sanity are checked."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CASES = {
    "train_speed": ["--subset", "200", "--batch-sizes", "100", "--reps", "1", "--threads", "1",
                    "--routes", "plain,fit,svi,plain-fused"],
    "loglik_speed": ["--n", "20", "--loop-n", "4", "--samples", "8", "--train-n", "200", "--threads", "1",
                     "--device", "cpu"],
    # torch.compile (inductor's C++ for the CPU): a few seconds of compilation
    "loglik_fused_bound": ["--train-n", "200", "--reps", "1", "--chunk", "2", "--batch-size", "10", "--threads", "1"],
    "mixture_speed": ["--points", "50", "--samples", "4", "--reps", "1", "--threads", "1"],
    # fresh processes per route: one rank, then two over gloo (DDP, and the flat all-reduce fallback)
    "ddp_speed": ["--subset", "800", "--batch-size", "100", "--epochs", "1", "--reps", "1", "--threads", "1",
                  "--routes", "single,independent,ddp,ddp-gloo,ddp-bf16,allreduce"],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_benchmark_runs_tiny_and_writes_json(tmp_path, mnist, name):
    out = tmp_path / f"{name}.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / f"{name}.py"), *CASES[name], "--json", str(out)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    record = json.loads(out.read_text())
    numbers = [v for v in _leaves(record) if isinstance(v, float)]
    assert numbers and all(math.isfinite(v) for v in numbers), record
    if name == "loglik_fused_bound":  # the hand-fused chunk computes the library's log-weights
        assert record["fused_vs_library_max_abs_diff_nats"] < 1e-3, record


def _leaves(obj):
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _leaves(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _leaves(v)
    else:
        yield obj


def _load(name):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"{name}_benchmark", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the CPU behaviour")
def test_gpu_check_skips_cleanly_without_cuda(tmp_path):
    out = tmp_path / "gpu.json"
    run = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--json", str(out)], capture_output=True,
                         text=True, timeout=120, env={**__import__("os").environ, "PYTHON": sys.executable})
    assert run.returncode == 0, run.stderr
    assert "skipped: no CUDA device" in run.stdout
    record = json.loads(out.read_text())
    assert record["status"] == "skipped" and record["cuda_available"] is False and "steps" not in record


def test_gpu_check_steps_call_real_scripts_with_flags_they_accept(tmp_path):
    from pyrovae.cli import build_parser

    steps = _load("gpu_check")._steps(tmp_path, quick=False)
    assert set(steps) == {"cuda_tests", "train_speed", "loglik_speed", "short_run", "short_run_log_px"}
    assert sum(limit for _, limit, _ in steps.values()) <= 8 * 60  # the whole check fits in 8 minutes
    for name in ("train_speed", "loglik_speed"):
        cmd = steps[name][0]
        args = _load(name).parse_args(cmd[2:])  # argparse exits on a flag it does not know
        assert args.device == "cuda"
    assert "100,256,1024" in steps["train_speed"][0]
    for name in ("short_run", "short_run_log_px"):
        argv = ["cpu" if a == "cuda" else a for a in steps[name][0][3:]]  # the CLI checks --device at parse time
        build_parser().parse_args(argv)
    for path in steps["cuda_tests"][0][5:7]:
        assert (ROOT / path).is_file(), path


def test_ddp_speed_alternates_routes_and_divides_by_the_single_rank(monkeypatch):
    bench = _load("ddp_speed")
    calls = []
    speeds = {"single": [100.0, 300.0], "independent": [190.0, 580.0], "ddp": [150.0, 510.0],
              "allreduce": [120.0, 390.0]}

    def measure(route, ranks, opts):
        calls.append(route)
        rate = speeds[route][len([c for c in calls if c == route]) - 1]
        row = {"ranks": 1 if route == "single" else ranks, "examples": 1000, "seconds": 1000 / rate,
               "examples_per_s": rate, "ms_per_step": 10.0 if route == "single" else 12.0}
        if route == "ddp":
            row["allreduce_ms"] = 4.0 if len(calls) < 4 else 6.0
            row["shared_memory_ms"] = 0.5 if len(calls) < 4 else 0.7
        return row

    monkeypatch.setattr(bench, "measure", measure)
    report = bench.main(bench.parse_args(["--reps", "2", "--routes", "single,independent,ddp,allreduce"]))
    # order alternated
    assert calls == ["single", "independent", "ddp", "allreduce", "allreduce", "ddp", "independent", "single"]
    summary = report["summary"]
    assert summary["ddp"]["ranks"] == 2 and summary["single"]["ranks"] == 1
    assert summary["ddp"]["ratio_best"] == pytest.approx(510 / 300)
    assert summary["allreduce"]["ratio_median"] == pytest.approx(255 / 200)
    assert summary["ddp"]["allreduce_ms_median"] == pytest.approx(5.0)
    assert summary["ddp"]["shared_memory_ms_median"] == pytest.approx(0.6)
    # two ranks at 1.7x a 10 ms step take 2 x 10 / 1.7 ms per step: 1.76 ms more than one rank's
    assert summary["comm_budget_ms_at_1.7x"] == pytest.approx(20 / 1.7 - 10)
    table = bench.format_table(report)
    assert "| ddp | 2 | 510 |" in table and "| independent | 2 | 580 |" in table
    assert "1.76 ms" in table and "gloo all-reduce 5.00 ms, shared memory 0.60 ms" in table


def test_loglik_gemm_floor_counts_every_product_once_per_batch():
    import torch

    from pyrovae.models import build_vae

    bench = _load("loglik_speed")
    vae = build_vae(x_shape=(1, 4, 4), z_dim=2, hidden=(8,))
    # encoder 16-8 and its (loc, scale) head 8-4 once; decoder 2-8-16 for chunks of 3, 3 and 1 samples
    assert bench.gemm_shapes(vae, samples=7, batch_size=10, chunk=3) == [
        (10, 16, 8), (10, 8, 4), (30, 2, 8), (30, 8, 16), (30, 2, 8), (30, 8, 16), (10, 2, 8), (10, 8, 16)]
    assert bench.gemm_floor(vae, n=40, samples=7, batch_size=10, chunk=3, device=torch.device("cpu"), reps=1) > 0


def test_peers_pyro_example_has_the_plain_networks_sizes():
    """Pyro's example, reproduced, is the 784-400-50 VAE of the plain loop, parameter for parameter."""
    import torch

    peers = _load("peers")
    vae = peers.ExampleVAE()
    assert _n_params(vae) == _n_params(peers.ts.PlainVAE(784))
    x = torch.bernoulli(torch.full((5, 1, 28, 28), 0.3))  # (5, 1, 28, 28): the encoder flattens, as the example's
    loc, scale = vae.encoder(x)
    assert loc.shape == scale.shape == (5, 50) and bool((scale > 0).all())
    probs = vae.decoder(loc)
    assert probs.shape == (5, 784) and bool(((probs > 0) & (probs < 1)).all())


def test_peers_rejects_unknown_routes_before_loading_data():
    peers = _load("peers")
    with pytest.raises(SystemExit, match=r"unknown peers \['bogus'\]"):
        peers.main(peers.parse_args(["--routes", "fit,bogus", "--threads", "0"]))


def test_peers_pythae_networks_have_the_plain_networks_sizes():
    pytest.importorskip("pythae", reason="pythae is the optional benchmark extra (pip install -e '.[bench]')")
    import torch

    peers = _load("peers")
    assert peers.pythae_missing() is None
    encoder, decoder = peers._pythae_networks()
    assert _n_params(encoder) + _n_params(decoder) == _n_params(peers.ts.PlainVAE(784))
    out = encoder(torch.rand(5, 1, 28, 28))
    assert out.embedding.shape == out.log_covariance.shape == (5, 50)
    assert decoder(out.embedding).reconstruction.shape == (5, 784)


def _n_params(module):
    return sum(p.numel() for p in module.parameters())
