"""Median train-step time of the weight-sharing supernet vs the same architecture with fixed groups.

Measured side by side in one process on the same batch: the supernet (a new random genotype every step,
set by the `RandomGenotype` callback path), the fixed model with uniform g=1, and the fixed model with the
real groups of one genotype, run by TensorFlow's grouped Conv2D (the package's layers) and, for comparison,
through tf-keras's own XLA-compiled wrapper for grouped convs (what the layers inherited before).
Target: supernet step <= 1.3x the fixed g=1 step.

With ``--space-genes joint`` (or ``width``), the elastic supernet of a width x groups space instead: its mean
train step over genotypes sampled as the supernet trains (under ``--budget-fraction`` x the FLOPs of the uniform
g=1 model at the base width) against the dense largest network (the widest blocks, one group), the two timed in
alternation, step by step, so that a loaded machine slows both alike. Target: <= 0.6x.

    python benchmarks/supernet_overhead.py [--module m1] [--input-size 32] [--width 0.5] [--batch 64]
    python benchmarks/supernet_overhead.py --space-genes joint --input-size 28 --batch 128 --budget-fraction 0.5 \
        --json benchmarks/results/elastic_step.json
"""

import argparse
import os
import random
import statistics
import time

import larq_mobisearch as lm  # noqa: F401  (selects Keras 2 before TensorFlow loads)
import numpy as np
import tensorflow as tf

from larq_mobisearch.nn import supernet as sn
from larq_mobisearch.config import TrainConfig
from larq_mobisearch.training import compile_model


def step_times(model, x, y, steps, warmup, before_step=None):
    compile_model(model, TrainConfig(epochs=1), steps_per_epoch=steps + warmup)
    model.train_on_batch(x, y)  # build + trace
    times = []
    for i in range(warmup + steps):
        if before_step:
            before_step(i)
        t = time.perf_counter()
        model.train_on_batch(x, y)
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return times


def xla_grouped_step_times(args, genotype, shape, x, y):
    """The genotype's fixed model with tf-keras's XLA-compiled grouped conv (the parent class's hook) restored."""
    from larq_mobisearch.nn.layers import BinaryGroupConv2D, GroupConv2D

    layers = (BinaryGroupConv2D, GroupConv2D)
    try:
        for cls in layers:  # shadows the package's plain-op hook on these two classes
            cls._jit_compiled_convolution_op = tf.keras.layers.Conv2D._jit_compiled_convolution_op
        model = lm.build_model(args.module, genotype, shape, args.classes, args.width)
        return step_times(model, x, y, args.steps, args.warmup)
    finally:
        for cls in layers:
            del cls._jit_compiled_convolution_op


def elastic_rows(args, shape, x, y):
    """Alternating train steps: the dense largest network, then the elastic supernet at a sampled genotype."""
    from larq_mobisearch.fileio import atomic_write_json
    from larq_mobisearch.nn.models import build_network, fixed_conv_factory
    from larq_mobisearch.search.costs import count_costs, flops_cost_model

    arch = lm.architecture(args.module, shape, args.classes, args.width)
    space = lm.SearchSpace(arch, genes=args.space_genes)
    widest, _ = space.resolve(space.largest())
    dense = build_network(widest, fixed_conv_factory((1,) * arch.num_genes), name="dense_largest")
    supernet = sn.build_supernet(space)
    cost = flops_cost_model(space)
    budget = args.budget_fraction * count_costs(arch, 1).flops if args.budget_fraction else None
    for m in (dense, supernet):
        compile_model(m, TrainConfig(epochs=1), steps_per_epoch=args.steps + args.warmup)
        m.train_on_batch(x, y)
    dense_t, elastic_t, flops = [], [], []
    for i in range(args.warmup + args.steps):
        genotype = sn.sample_genotype(space, sn.step_rng(args.seed, i), cost, budget)
        t = time.perf_counter()
        dense.train_on_batch(x, y)
        t_dense = time.perf_counter() - t
        sn.set_genotype(supernet, genotype)
        t = time.perf_counter()
        supernet.train_on_batch(x, y)
        t_elastic = time.perf_counter() - t
        if i >= args.warmup:
            dense_t.append(t_dense)
            elastic_t.append(t_elastic)
            flops.append(cost.cost(genotype))
    ratio = statistics.mean(elastic_t) / statistics.mean(dense_t)
    print(f"\n{args.module.upper()} {shape} base width {args.width}, {args.space_genes} space, batch {args.batch}, "
          f"{args.steps} alternating steps, TF {tf.__version__}")
    print(f"dense largest network ({cost.cost(space.largest()):.3g} FLOPs): mean {statistics.mean(dense_t) * 1e3:.1f} ms")
    print(f"elastic supernet, sampled genotypes (mean {statistics.mean(flops):.3g} FLOPs"
          f"{f', budget {budget:.3g}' if budget else ''}): mean {statistics.mean(elastic_t) * 1e3:.1f} ms")
    print(f"ratio {ratio:.2f}x (target <= 0.6x)")
    if args.json:
        atomic_write_json(args.json, {
            "command": "python benchmarks/supernet_overhead.py " + " ".join(args.argv),
            "module": args.module, "input_shape": list(shape), "width": args.width, "space_genes": args.space_genes,
            "batch": args.batch, "steps": args.steps, "budget": budget,
            "largest_flops": cost.cost(space.largest()), "sampled_mean_flops": statistics.mean(flops),
            "dense_largest_ms": [t * 1e3 for t in dense_t], "elastic_ms": [t * 1e3 for t in elastic_t],
            "ratio_of_means": ratio, "load_average": os.getloadavg()[0], "tensorflow": tf.__version__,
        })


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--module", default="m1", choices=["m1", "m2", "m3"])
    p.add_argument("--input-size", type=int, default=32)
    p.add_argument("--channels", type=int, default=1)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--width", type=float, default=0.5)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--genotype", default=None, help="groups of the fixed rows, e.g. 1-1-2-2-1-2-8-4-4-1-8-1-4 "
                   "(default: a random one)")
    p.add_argument("--space-genes", default="groups", choices=["groups", "width", "joint"],
                   help="width / joint: the elastic supernet against the dense largest network")
    p.add_argument("--budget-fraction", type=float, default=0.5,
                   help="width / joint: sample under this x the FLOPs of the uniform g=1 model (0: no budget)")
    p.add_argument("--json", default=None, help="width / joint: write the step times here")
    import sys

    args = p.parse_args()
    args.argv = sys.argv[1:]

    shape = (args.input_size, args.input_size, args.channels)
    if args.space_genes != "groups":
        rng = np.random.default_rng(args.seed)
        x = rng.uniform(-1, 1, (args.batch,) + shape).astype(np.float32)
        y = rng.integers(0, args.classes, args.batch).astype(np.int32)
        return elastic_rows(args, shape, x, y)
    arch = lm.architecture(args.module, shape, args.classes, args.width)
    space = lm.SearchSpace(arch)
    rng = np.random.default_rng(args.seed)
    x = rng.uniform(-1, 1, (args.batch,) + shape).astype(np.float32)
    y = rng.integers(0, args.classes, args.batch).astype(np.int32)
    genotype = space.validate(lm.decode(args.genotype)) if args.genotype else space.sample(random.Random(args.seed))

    rows = []
    fixed1 = lm.build_model(args.module, 1, shape, args.classes, args.width)
    rows.append(("fixed, uniform g=1", step_times(fixed1, x, y, args.steps, args.warmup)))
    fixedg = lm.build_model(args.module, genotype, shape, args.classes, args.width)
    rows.append((f"fixed, genotype {lm.encode(genotype)}", step_times(fixedg, x, y, args.steps, args.warmup)))
    rows.append(("  same, tf-keras's XLA grouped conv", xla_grouped_step_times(args, genotype, shape, x, y)))
    supernet = sn.build_supernet(space)
    sn.set_genotype(supernet, genotype)
    rows.append(("supernet, same genotype", step_times(supernet, x, y, args.steps, args.warmup)))
    supernet2 = sn.build_supernet(space)
    rows.append((
        "supernet, random genotype/step",
        step_times(supernet2, x, y, args.steps, args.warmup,
                   before_step=lambda i: sn.set_genotype(supernet2, space.sample(sn.step_rng(args.seed, i)))),
    ))

    base = statistics.median(rows[0][1])
    print(f"\n{args.module.upper()} {shape} width {args.width} batch {args.batch}, {args.steps} timed steps, "
          f"TF {tf.__version__}, {tf.config.threading.get_intra_op_parallelism_threads() or 'default'} threads")
    print(f"{'model':<48} {'median ms':>10} {'p10 ms':>8} {'p90 ms':>8} {'vs g=1':>7}")
    for name, t in rows:
        q = np.percentile(np.asarray(t) * 1e3, [10, 90])
        med = statistics.median(t)
        print(f"{name:<48} {med * 1e3:>10.1f} {q[0]:>8.1f} {q[1]:>8.1f} {med / base:>6.2f}x")


if __name__ == "__main__":
    main()
