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
