"""The GPU check: every CUDA measurement the project needs, as one command, into one JSON file.

On a machine with a CUDA device it runs, each step under its own time limit (the whole check is
sized for under 8 minutes on one GPU):

1. the CUDA tests (``pytest -m cuda`` plus every test that skips without CUDA);
2. ``benchmarks/train_speed.py`` on CUDA at batch 100, 256 and 1024 (``plain``, ``fit``,
   ``svi`` and ``plain-fused``);
3. ``benchmarks/loglik_speed.py`` on CUDA: the vectorised log p(x) against a per-point loop;
4. the likelihood of a short run: ``pyrovae train --device cuda`` for a few epochs, then
   ``pyrovae evaluate`` (importance-sampled log p(x)).

Without a CUDA device it says so, writes ``{"status": "skipped", ...}`` and exits 0, so that the
script itself is tested on CPU (``tests/test_benchmarks.py``). It never reports a number it did
not measure: a step that fails records its exit code and the tail of its output instead.

Run::

    python benchmarks/gpu_check.py --json gpu_check.json
    bash benchmarks/gpu_check.sh              # the same, for a machine set up by hand
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


def _step(name: str, cmd: list[str], timeout: float, json_path: Path | None = None) -> dict[str, Any]:
    """Run one step; return its record (exit code, seconds, its JSON if it wrote one, output tail)."""
    print(f"[gpu_check] {name}: {' '.join(cmd)}", flush=True)
    t0 = time.perf_counter()
    try:
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
        rc, out = run.returncode, run.stdout + run.stderr
    except subprocess.TimeoutExpired as e:
        rc, out = "timeout", f"{e.stdout or ''}{e.stderr or ''}"
        out = out.decode() if isinstance(out, bytes) else out
    record: dict[str, Any] = {"command": cmd, "returncode": rc, "seconds": round(time.perf_counter() - t0, 1)}
    if json_path is not None and json_path.exists():
        record["result"] = json.loads(json_path.read_text())
    record["output_tail"] = out[-3000:]
    print(f"[gpu_check] {name}: exit {rc} after {record['seconds']} s", flush=True)
    return record


def _steps(work: Path, quick: bool) -> dict[str, tuple[list[str], float, Path | None]]:
    """The four steps: name -> (command, time limit in seconds, the JSON it writes)."""
    batches, reps = ("256", "1") if quick else ("100,256,1024", "3")
    run_dir = work / "short_run"
    return {
        "cuda_tests": ([PY, "-m", "pytest", "-q", "-rs", "tests/test_cuda.py", "tests/models/test_user_modules.py",
                        "-k", "cuda"], 150, None),
        "train_speed": ([PY, "benchmarks/train_speed.py", "--device", "cuda", "--batch-sizes", batches, "--reps", reps,
                         "--routes", "plain,fit,svi,plain-fused", "--json", str(work / "train_speed.json")], 150,
                        work / "train_speed.json"),
        "loglik_speed": ([PY, "benchmarks/loglik_speed.py", "--device", "cuda", "--json", str(work / "loglik.json")],
                         90, work / "loglik.json"),
        "short_run": ([PY, "-m", "pyrovae", "train", "--device", "cuda", "--epochs", "1" if quick else "5",
                       "--no-progress", "--out", str(run_dir)], 60, run_dir / "metrics.json"),
        "short_run_log_px": ([PY, "-m", "pyrovae", "evaluate", str(run_dir), "--device", "cuda"], 30,
                             run_dir / "evaluation.json"),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the check (or skip it without CUDA); write and return the report."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", type=Path, default=Path("gpu_check.json"), help="where to write the report")
    p.add_argument("--quick", action="store_true", help="one batch size, one repetition, one epoch")
    args = p.parse_args(argv)
    report: dict[str, Any] = {"torch": torch.__version__, "cuda_available": torch.cuda.is_available()}
    if not torch.cuda.is_available():
        report.update(status="skipped", reason="no CUDA device: torch.cuda.is_available() is False")
        print(f"[gpu_check] skipped: {report['reason']}")
    else:
        report["device"] = torch.cuda.get_device_name(0)
        with tempfile.TemporaryDirectory() as tmp:
            report["steps"] = {name: _step(name, *step) for name, step in _steps(Path(tmp), args.quick).items()}
        failed = [n for n, s in report["steps"].items() if s["returncode"] != 0]
        report["status"] = "failed: " + ", ".join(failed) if failed else "done"
    args.json.write_text(json.dumps(report, indent=2))
    print(f"[gpu_check] {report['status']}; report in {args.json}")
    return report


if __name__ == "__main__":
    sys.exit(0 if not main()["status"].startswith("failed") else 1)
