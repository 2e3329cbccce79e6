#!/usr/bin/env bash
# The GPU check as one command (see benchmarks/gpu_check.py): CUDA tests, train_speed at batch 100,
# 256 and 1024, log p(x) against a per-point loop, the likelihood of a short run; one JSON file.
# Without CUDA it says so and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python}" benchmarks/gpu_check.py "$@"
