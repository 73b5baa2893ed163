"""BENCHMARKS.md sections of the elastic (width x groups) supernet: its train step against the dense largest
network (`supernet_overhead.py --space-genes joint`, ``elastic_step.json``), and the `fashion_joint` preset's
run end to end (``fashion_joint_run.json``, a copy of the run's own report.json)."""

from typing import Any, Dict, List, Optional

ELASTIC_CMD = (".venv/bin/python benchmarks/supernet_overhead.py --space-genes joint --input-size 28 --batch 128 "
               "--budget-fraction 0.5 --steps 40 --json benchmarks/results/elastic_step.json")
STEP_GOAL = 0.6  # issue 22: mean sampled step <= 0.6x the dense largest network's


def plot_elastic_step(data: Dict[str, Any], path: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    steps = range(1, len(data["dense_largest_ms"]) + 1)
    ax.plot(steps, data["dense_largest_ms"], "o-", color="grey", label="dense largest network")
    ax.plot(steps, data["elastic_ms"], "o-", color="tab:blue", label="elastic supernet, sampled subnet")
    ax.set_xlabel("alternating step")
    ax.set_ylabel("train step (ms)")
    ax.set_ylim(bottom=0)
    ax.set_title(f"Elastic supernet step: {data['ratio_of_means']:.2f}x the dense largest network")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def elastic_step_markdown(data: Optional[Dict[str, Any]], plot: Optional[str] = None) -> List[str]:
    if not data:
        return []
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    ratio = data["ratio_of_means"]
    verdict = "meets" if ratio <= STEP_GOAL else "misses"
    out = [
        "## Elastic supernet: a train step computes only the sampled subnet",
        "",
        "```bash",
        data.get("command", ELASTIC_CMD),
        "```",
        "",
        f"{data['module'].upper()} at {'x'.join(map(str, data['input_shape']))}, base width {data['width']}, "
        f"{data['space_genes']} space (block widths 0.5-1.5x, group counts), batch {data['batch']}: "
        f"{data['steps']} train steps of each, timed in alternation (load average {data['load_average']:.1f} "
        f"when written). The sampled genotypes are those the supernet trains on: within "
        f"{data['budget']:.4g} FLOPs (0.5x the uniform g=1 model at the base width); mean "
        f"{data['sampled_mean_flops']:.3g} FLOPs against the largest network's {data['largest_flops']:.3g}.",
        "",
        "| model | mean train step (ms) |",
        "|---|---|",
        f"| dense largest network (widest blocks, one group) | {mean(data['dense_largest_ms']):.1f} |",
        f"| elastic supernet, a sampled subnet per step | {mean(data['elastic_ms']):.1f} |",
        "",
        f"Reading: the elastic step is {ratio:.2f}x the dense largest network's; this {verdict} the goal of "
        f"<= {STEP_GOAL}x. The old masked supernet ran the dense convolution of the widest network whatever was "
        f"sampled, so its step was the dense step or more.",
        "",
    ]
    if plot:
        out += [f"![elastic step]({plot})", ""]
    return out


FASHION_JOINT_CMD = ("mobisearch run --preset fashion_joint --run-dir runs/fashion_joint --set export.verify_samples=10000"
                     " && cp runs/fashion_joint/searches/default/report.json benchmarks/results/fashion_joint_run.json")


def fashion_joint_run_markdown(report: Optional[Dict[str, Any]]) -> List[str]:
    """The `fashion_joint` preset end to end: the run's own report.json (stage times measured by the run)."""
    if not report:
        return []
    seconds = report.get("stage_seconds") or {}
    total = sum(v for v in seconds.values() if v)
    result = report.get("search_result") or {}
    uniform = [u for u in (result.get("uniform") or []) if u]
    best_uniform = max(uniform, key=lambda u: u["fitness"]) if uniform else None
    rnd = result.get("random_best")
    out = [
        "## `fashion_joint` end to end (width x groups, FLOPs <= 0.5x uniform g=1)",
        "",
        "```bash",
        FASHION_JOINT_CMD,
        "```",
        "",
        "One run of the preset, one seed, on this 2-core machine with nothing else running; the stage times are the "
        "run's own (`stage_seconds`).",
        "",
        "| stage | wall seconds |",
        "|---|---|",
    ]
    out += [f"| {stage} | {v:,.0f} |" for stage, v in seconds.items() if v is not None]
    out += [f"| all | {total:,.0f} ({total / 60:.1f} min) |", ""]
    out += [
        f"Winner `{report['genotype']}`: {report['costs']['flops']:.4g} FLOPs (budget {report['flops_budget']:.4g}); "
        f"test top-1 {100 * report['test_accuracy']:.2f}% (Keras, the whole official test split) and {100 * report['tflite_accuracy']:.2f}% (the `.tflite` through LCE, on "
        f"{report.get('tflite_samples'):,} test images); `.tflite` {report['tflite_bytes'] / 1e6:.2f} MB.",
        "",
        f"On the supernet (held-out top-1 after BatchNorm recalibration): evolution's winner "
        f"{100 * result['fitness']:.2f}%"
        + (f", random search's best {100 * rnd['fitness']:.2f}%" if rnd else "")
        + (f", best uniform (width, groups) point {best_uniform['label']} {100 * best_uniform['fitness']:.2f}%"
           if best_uniform else "")
        + ". These are supernet scores of one search; Table 1 on the joint space (winners retrained with several "
        "seeds) is not measured yet.",
        "",
    ]
    return out
