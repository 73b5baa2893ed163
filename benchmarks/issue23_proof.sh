#!/usr/bin/env bash
# Issue 23's accuracy x latency benchmark on Fashion-MNIST (hours; every finished model and seed is kept: re-run
# after an interruption). Needs the fashion_joint run (see joint_proof.sh) and larq-zoo:
#   .venv/bin/pip install --no-deps -r benchmarks/requirements-peers.txt
# It times every exported model at the end: run it with nothing else on the machine. Then regenerate
# BENCHMARKS.md: .venv/bin/python benchmarks/make_benchmarks_md.py
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python benchmarks/pareto.py --json benchmarks/results/pareto.json
