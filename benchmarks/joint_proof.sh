#!/usr/bin/env bash
# Issue 22's proof on Fashion-MNIST, one benchmark at a time (2 cores), each resumable: re-run this script after
# an interruption and every finished retraining, supernet and score is kept. A step whose committed JSON is
# complete is skipped (a fresh checkout has no run directories: the JSON is what carries over); the ranking
# benchmark resumes from its own JSON, genotype by genotype. Table 1 and the efficiency curve need the
# fashion_joint run first:
#   mobisearch run --preset fashion_joint --run-dir runs/fashion_joint --set export.verify_samples=10000
# Then regenerate BENCHMARKS.md: .venv/bin/python benchmarks/make_benchmarks_md.py
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
complete() {  # true if the JSON exists and does not say "complete": false
  [ -f "$1" ] && $py -c 'import json, sys; sys.exit(json.load(open(sys.argv[1])).get("complete") is False)' "$1"
}
r=benchmarks/results
complete $r/table1_joint.json || \
  $py benchmarks/table1_joint.py --run-dir runs/fashion_joint --retrain-epochs 8 --json $r/table1_joint.json
complete $r/efficiency_joint.json || \
  $py benchmarks/efficiency.py --run-dir runs/fashion_joint --preset fashion_joint --seeds 0,1,2 --population 16 \
    --iterations 5 --methods elitist,random --json $r/efficiency_joint.json
$py benchmarks/ranking_variants.py --json $r/ranking_variants.json
