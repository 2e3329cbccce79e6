#!/usr/bin/env bash
# Two "nodes" on this machine: two torchrun launchers (node_rank 0 and 1), one process each,
# meeting at a static rendezvous on 127.0.0.1, training one VAE with fit(distributed=True)
# (torch's DistributedDataParallel, gloo). On two real machines run the same two commands,
# one per machine, with --master_addr set to node 0's address.
#
#   bash benchmarks/two_node_demo.sh                      # 1 epoch on all of MNIST
#   bash benchmarks/two_node_demo.sh --subset 2000 --test-subset 500 --hidden 64 --z-dim 8
#
# Flags go to `python -m pyrovae.distributed` (see its --help); node 0 prints one JSON line per epoch.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
PORT="${MASTER_PORT:-$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
launch=("$PY" -m torch.distributed.run --nnodes 2 --nproc_per_node 1 --master_addr 127.0.0.1 --master_port "$PORT")
job=(-m pyrovae.distributed --epochs 1 --batch-size 256 "$@")
echo "node 1: ${launch[*]} --node_rank 1 ${job[*]}" >&2
"${launch[@]}" --node_rank 1 "${job[@]}" > /dev/null &
node1=$!
trap 'kill "$node1" 2>/dev/null || true' EXIT
echo "node 0: ${launch[*]} --node_rank 0 ${job[*]}" >&2
"${launch[@]}" --node_rank 0 "${job[@]}"
wait "$node1"
