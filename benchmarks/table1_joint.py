"""Table 1 on the joint (width x groups) space: does searching width with groups beat what a user would pick?

On one `fashion_joint` run directory (its trained supernet and its search ``default``: evolution, random search
with the same number of evaluations, the uniform (width, groups) grid, all at the preset's FLOPs budget):

- ``evolution``: the joint evolutionary search's winner;
- ``random``: the joint random search's best (same number of supernet evaluations);
- ``uniform``: the best uniform (width, groups) point within the budget, picked by its supernet score;
- ``uniform_g1``: the widest uniform width at groups 1 within the budget (MetaPruning's baseline);
- ``groups_only``: an evolutionary search of the group counts alone (every block at the model's own width) at
  the same budget, scored on the same supernet (search ``table1-groups``);

each retrained from scratch once per seed (``--seeds``, default 0,1,2: ``retrain.seed``, which seeds the
initialization and the data order; searches ``t1j-<row>-s<seed>`` of the run directory, so a killed run resumes)
and tested on the official test split. The JSON is rewritten after every retraining: a run spread over several sessions commits what it has.

    python benchmarks/table1_joint.py --run-dir runs/fashion_joint --json benchmarks/results/table1_joint.json
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import larq_mobisearch  # noqa: E402,F401  (selects Keras 2 before TensorFlow is imported)
from larq_mobisearch.fileio import atomic_write_json  # noqa: E402

import common  # noqa: E402
from ablation import winners  # noqa: E402

ROWS = ("evolution", "random", "uniform", "uniform_g1", "groups_only")
ROW_LABELS = {
    "evolution": "joint evolution (width x groups)",
    "random": "joint random search, same evaluations",
    "uniform": "best uniform (width, groups) point, by supernet score",
    "uniform_g1": "widest uniform width at groups 1 (MetaPruning's baseline)",
    "groups_only": "groups-only evolution (every block at its base width)",
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run-dir", default="runs/fashion_joint", help="a trained and searched fashion_joint run")
    p.add_argument("--search", default="default", help="the run's joint search (evolution, random, uniform)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--retrain-epochs", type=int, default=None, help="default: the run's retrain.epochs")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    try:
        args.seed_list = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        p.error(f"--seeds: received {args.seeds!r}; expected comma-separated integers")
    if not args.seed_list or len(set(args.seed_list)) != len(args.seed_list):
        p.error(f"--seeds: received {args.seeds!r}; expected distinct integers")
    if args.retrain_epochs is not None and args.retrain_epochs < 1:
        p.error(f"--retrain-epochs: received {args.retrain_epochs}; expected >= 1")
    return args


def widest_uniform_g1(uniform: List[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """The uniform point labelled ``g1w<w>`` with the largest w (labels of duplicates are joined by "/")."""
    best, best_w = None, -1.0
    for u in uniform:
        for label in (u.get("label") or "").split("/"):
            m = re.fullmatch(r"g1w([0-9.]+)", label)
            if m and float(m.group(1)) > best_w:
                best, best_w = u, float(m.group(1))
    return best


def groups_only_search(run) -> Dict[str, Any]:
    """Evolution over the group counts alone (blocks at the model's widths), scored on the joint supernet, at the
    run's budget and search settings; resumable (state in search ``table1-groups``)."""
    from larq_mobisearch.nn.space import SearchSpace
    from larq_mobisearch.search import evolutionary_search
    from larq_mobisearch.search.costs import flops_cost_model

    joint = run.space
    groups = SearchSpace(run.arch, run.cfg.model.space, genes="groups")
    scfg = run.search_config()
    flops = flops_cost_model(groups)
    cheapest = flops.cost(groups.smallest())
    if cheapest > scfg.flops_budget:
        return {"genotype": None, "note": f"no groups-only genotype fits {scfg.flops_budget:.4g} FLOPs (the "
                                          f"cheapest, every layer at its most groups, costs {cheapest:.4g})"}
    evaluator, local = common.supernet_evaluator(run)
    out_dir = Path(run.run_dir) / "searches" / "table1-groups"
    out_dir.mkdir(parents=True, exist_ok=True)
    expanded = SimpleNamespace(score=lambda gs: evaluator.score([joint.expand(g) for g in gs]))
    result = evolutionary_search(
        groups, expanded, [(flops, scfg.flops_budget)], scfg,
        state_path=str(out_dir / "evolution_state.json"), context="table1-groups", progress=False)
    local.restore()
    return {"genotype": joint.encode(joint.expand(result.best_genotype)), "supernet_fitness": result.best_fitness,
            "evaluations": result.num_evaluations}


def chosen_rows(run, search: str):
    path = Path(run.run_dir) / "searches" / search / "search" / "result.json"
    if not path.exists():
        raise SystemExit(f"{path} does not exist: run `mobisearch run --preset fashion_joint --run-dir "
                         f"{run.run_dir}` (or its search stage) first")
    result = json.loads(path.read_text())
    searched = winners(result)  # the evolution winner, random search's best, the best uniform point (ablation.py)
    g1 = widest_uniform_g1([u for u in result.get("uniform") or [] if u])
    rows = {
        "evolution": {**searched["evolution"], "evaluations": result["evaluations"]},
        "random": {**searched["random"], "evaluations": result.get("random_evaluations")},
        "uniform": searched["uniform"],
        "uniform_g1": ({"genotype": g1["genotype"], "supernet_fitness": g1["fitness"], "label": g1.get("label")}
                       if g1 else {"genotype": None, "note": "no uniform width at groups 1 fits the budget"}),
        "groups_only": groups_only_search(run),
    }
    return rows, result


def main(argv=None) -> int:
    args = parse_args(argv)
    t0 = time.time()
    import tensorflow as tf

    from larq_mobisearch import deploy as L
    from larq_mobisearch import pipeline as P

    run = common.shared_run(args.run_dir, "fashion_joint")
    if not run.done("supernet"):
        raise SystemExit(f"{args.run_dir} has no trained supernet: run the fashion_joint preset there first")
    rows, result = chosen_rows(run, args.search)
    epochs = args.retrain_epochs or run.cfg.retrain.epochs
    for name, row in rows.items():
        if row.get("genotype"):
            row["costs"] = run.genotype_costs(run.space.expand(row["genotype"])).as_dict()
        print(f"{name:<12} {row.get('genotype') or row.get('note')}", flush=True)
    out: Dict[str, Any] = {
        "benchmark": "table1_joint", "command": common.command_line(), "complete": False,
        "settings": {"run_dir": args.run_dir, "search": args.search, "dataset": run.cfg.data.name,
                     "image_size": run.cfg.data.image_size, "module": run.cfg.model.module,
                     "width_multiplier": run.cfg.model.width_multiplier, "flops_budget": run.flops_budget(),
                     "retrain_epochs": epochs, "learning_rate": run.cfg.retrain.learning_rate,
                     "schedule": run.cfg.retrain.schedule, "seeds": args.seed_list,
                     "supernet_epochs": run.cfg.supernet.epochs, "test_size": run.data.test_size,
                     "population": run.cfg.search.population, "iterations": run.cfg.search.iterations},
        "rows": rows, "per_seed": [],
    }
    for seed in args.seed_list:
        entry = {"seed": seed, "test_accuracy": {}, "retrain_seconds": {}}
        out["per_seed"].append(entry)
        for name, row in rows.items():
            if not row.get("genotype"):
                continue
            # retrain.seed seeds the retraining stage (initialization, data order); data.seed belongs to the run
            # directory's supernet stage and stays
            cfg = run.cfg.model_copy(update={
                "retrain": run.cfg.retrain.model_copy(update={"epochs": epochs, "seed": seed})})
            r = P.Run.open(run.run_dir, cfg, verbose=0, search=f"t1j-{name}-s{seed}")
            if not r.done("retrain"):
                t = time.time()
                P.retrain(r, run.space.expand(row["genotype"]), init_from_supernet=False)
                tf.keras.backend.clear_session()
                print(f"  seed {seed} {name:<12} retrained in {time.time() - t:.0f} s", flush=True)
            final = json.loads(Path(r.search_path("final", "done.json")).read_text())
            entry["test_accuracy"][name] = final["test_accuracy"]
            entry["retrain_seconds"][name] = final.get("seconds")
            print(f"  seed {seed} {name:<12} test top-1 {final['test_accuracy']:.4f}", flush=True)
            out["seconds"] = round(time.time() - t0, 1)
            out["machine"] = {**L.machine_info(1), "load_average_end": common.load_average()}
            if args.json:
                atomic_write_json(args.json, out, indent=1)
    out["complete"] = True
    if args.json:
        atomic_write_json(args.json, out, indent=1)
        print(f"Wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
