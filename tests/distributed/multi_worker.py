"""One worker of a two-process MultiWorkerMirroredStrategy cluster on loopback (TF_CONFIG from the caller).

Trains the digits supernet (16x16 inputs) for two epochs and runs a small evolutionary search with
candidate evaluation sharded across the workers, through the pipeline stages, in a run directory shared by
both workers. Writes ``OUT_DIR/worker-<index>.json`` with the genotype every local replica used at every
step, the search result and this worker's place in the cluster.

With ``CRASH_WORKER=<index>``, that worker dies (exit code 17) right after the first epoch was backed up,
like a machine failure; restarting every worker with the same command must resume at the second epoch.

    TF_CONFIG=... [CRASH_WORKER=1] python tests/distributed/multi_worker.py RUN_DIR OUT_DIR
"""

import json
import os
import sys

import larq_mobisearch  # noqa: F401  (Keras 2 before TensorFlow)
from larq_mobisearch.config import load_config
from larq_mobisearch.pipeline import Run, search, train_supernet

run_dir, out_dir = sys.argv[1], sys.argv[2]
OVERRIDES = [
    "distribute.strategy=multi_worker", "supernet.epochs=2", "data.image_size=16", "data.batch_size=128",
    "search.population=6", "search.top_k=3", "search.crossover=2", "search.mutation=2", "search.iterations=2",
    "search.recalibration_batches=2", "supernet.sampling=uniform",  # the expected genotypes: uniform, step-seeded
]
run = Run.open(run_dir, load_config(preset="digits", overrides=OVERRIDES), verbose=0)
worker = run.worker  # creates the strategy (before any TensorFlow op)

import tensorflow as tf  # noqa: E402

from replica_genotypes import ReplicaGenotypes  # noqa: E402  (tests/distributed/)


class CrashAfterFirstEpoch(tf.keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):  # runs after BackupAndRestore saved the epoch
        if epoch == 0:
            sys.stdout.flush()
            os._exit(17)


probe = ReplicaGenotypes(run.strategy)
crash = [CrashAfterFirstEpoch()] if os.environ.get("CRASH_WORKER") == str(worker.index) else []
train_supernet(run, callbacks=[probe, *crash])
result = search(run)
with open(os.path.join(out_dir, f"worker-{worker.index}.json"), "w") as f:
    json.dump({"worker": worker.index, "workers": worker.count, "is_chief": worker.is_chief,
               "replicas": worker.num_replicas, "genotypes": probe.steps, "search": result}, f)
