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
    "mixture_speed": ["--points", "50", "--samples", "4", "--reps", "1", "--threads", "1"],
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


def _leaves(obj):
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _leaves(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _leaves(v)
    else:
        yield obj
