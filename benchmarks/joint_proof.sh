#!/usr/bin/env bash
# Issue 22's proof on Fashion-MNIST, one benchmark at a time (2 cores), each resumable: re-run this script after
# an interruption and every finished retraining, supernet and score is kept. Needs the fashion_joint run first:
#   mobisearch run --preset fashion_joint --run-dir runs/fashion_joint --set export.verify_samples=10000
# Then regenerate BENCHMARKS.md: .venv/bin/python benchmarks/make_benchmarks_md.py
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
$py benchmarks/table1_joint.py --run-dir runs/fashion_joint --retrain-epochs 8 --json benchmarks/results/table1_joint.json
$py benchmarks/efficiency.py --run-dir runs/fashion_joint --preset fashion_joint --seeds 0,1,2 --population 16 \
    --iterations 5 --methods elitist,random --json benchmarks/results/efficiency_joint.json
$py benchmarks/ranking_variants.py --variant-dir budget=runs/fashion_joint --json benchmarks/results/ranking_variants.json
