"""Train the same digits supernet for a few steps on one device and with MirroredStrategy over two logical
CPU devices (global batch split in two), from the same initial weights and data; print a JSON summary.

Run in its own process (logical devices must be configured before TensorFlow initialises):

    python tests/distributed/mirrored_vs_one_device.py OUT_DIR [STEPS]
"""

import json
import os
import sys

import larq_mobisearch  # noqa: F401  (Keras 2 before TensorFlow)
from larq_mobisearch import distribute as D
from larq_mobisearch.config import load_config

out_dir = sys.argv[1]
steps = int(sys.argv[2]) if len(sys.argv) > 2 else 3
cfg = load_config(preset="digits", overrides=[
    "distribute.strategy=mirrored", "distribute.cpu_devices=2", "data.batch_size=32", "supernet.epochs=1",
    # SGD: an update is proportional to its gradient. (Adam turns noise-level gradients, e.g. ~1e-7 for some
    # BatchNorm offsets, into full-size steps whose sign depends on float summation order.)
    "supernet.optimizer=sgd", "supernet.learning_rate=0.05",
])
mirrored = D.get_strategy(cfg.distribute)  # configures the two logical CPUs first

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from larq_mobisearch.data import load_dataset  # noqa: E402
from larq_mobisearch.nn.space import SearchSpace  # noqa: E402
from larq_mobisearch.nn.specs import architecture  # noqa: E402
from larq_mobisearch.nn.supernet import RandomGenotype, build_supernet  # noqa: E402
from larq_mobisearch.training import fit  # noqa: E402
from replica_genotypes import ReplicaGenotypes  # noqa: E402  (tests/distributed/)


arch = architecture(cfg.model.module, (32, 32, 1), 10, cfg.model.width_multiplier)
space = SearchSpace(arch, cfg.model.space)
results, initial = {}, None
for name, strategy in (("one_device", tf.distribute.get_strategy()), ("mirrored", mirrored)):
    tf.keras.utils.set_random_seed(0)
    with strategy.scope():
        model = build_supernet(space, sync_batchnorm=True)  # on one device: plain (unfused) BatchNorm
    if initial is None:
        initial = model.get_weights()
    else:
        model.set_weights(initial)
    data = load_dataset(cfg.data)  # a fresh pipeline: the same first pass for both runs
    probe = ReplicaGenotypes(strategy)
    sampler = RandomGenotype(space, seed=cfg.supernet.seed)
    fit(model, data.train, cfg.supernet, os.path.join(out_dir, name), steps_per_epoch=steps,
        callbacks=[sampler, probe], verbose=0)
    results[name] = {"weights": model.get_weights(), "genotypes": probe.steps, "replicas": strategy.num_replicas_in_sync}

names = [w.name for w in model.weights]
trainable = {w.name for w in model.trainable_weights}
diffs = {n: float(np.max(np.abs(a - b))) for n, a, b in
         zip(names, results["one_device"]["weights"], results["mirrored"]["weights"])}
updates = {n: float(np.max(np.abs(a - i))) for n, a, i in zip(names, results["one_device"]["weights"], initial)}
try:
    D.check_global_batch(33, mirrored)
    odd_batch_error = None
except D.DistributeError as exc:
    odd_batch_error = str(exc)
summary = {
    "odd_batch_error": odd_batch_error,
    "steps": steps,
    "replicas": {k: v["replicas"] for k, v in results.items()},
    "genotypes": {k: v["genotypes"] for k, v in results.items()},
    "max_update": max(updates[n] for n in trainable),
    "max_diff_trainable": max(diffs[n] for n in trainable),
    # BatchNorm moving statistics, relative to their magnitude (variances of the stem's output reach ~1e2)
    "max_rel_diff_non_trainable": max(
        d / max(1.0, float(np.max(np.abs(w)))) for (n, d), w in zip(diffs.items(), results["one_device"]["weights"])
        if n not in trainable and "groups" not in n
    ),
    "worst": sorted(diffs.items(), key=lambda kv: -kv[1])[:5],
}
with open(os.path.join(out_dir, "summary.json"), "w") as f:
    json.dump(summary, f)
print(json.dumps({k: summary[k] for k in ("max_update", "max_diff_trainable", "max_rel_diff_non_trainable", "worst")}))
