"""One worker of a two-process MultiWorkerMirroredStrategy cluster on loopback (TF_CONFIG from the caller).

Trains the digits supernet (8x8 inputs) for two epochs and runs a small evolutionary search with
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
import time

import larq_mobisearch  # noqa: F401  (Keras 2 before TensorFlow)
from larq_mobisearch.config import load_config
from larq_mobisearch.pipeline import Run, search, train_supernet

run_dir, out_dir = sys.argv[1], sys.argv[2]
OVERRIDES = [
    # digits at their native 8x8, half of them in the (unused) test split: 809 training images, 6 global batches of
    # 128 (64 per worker) an epoch; 90 held out, one batch (the search's predict function is traced once)
    "distribute.strategy=multi_worker", "supernet.epochs=2", "data.image_size=8", "data.test_fraction=0.5",
    "data.holdout_fraction=0.1", "data.batch_size=128",
    # 8 evaluated genotypes (4 + a generation of 4), 2 random ones, the uniform ones
    "search.population=4", "search.top_k=2", "search.crossover=1", "search.mutation=1", "search.iterations=2",
    "search.random_baseline_samples=2", "search.recalibration_batches=1",
    "supernet.sampling=uniform",  # the expected genotypes: uniform, step-seeded
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
# Training without Grappler's graph rewrites (in these processes only): with them, instantiating the two-worker
# training step is about half of each launch's training time on the 2-core test machine. Both workers train the
# same graphs; the search runs with them again, as the one-worker search it is compared with in the test's process.
tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
train_supernet(run, callbacks=[probe, *crash])
tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": False})
result = search(run)
with open(os.path.join(out_dir, f"worker-{worker.index}.json"), "w") as f:
    json.dump({"worker": worker.index, "workers": worker.count, "is_chief": worker.is_chief,
               "replicas": worker.num_replicas, "genotypes": probe.steps, "search": result}, f)
# Once every worker has written its result (so has passed the last collective op, whose peers may still read from
# this process), exit without the interpreter's and the cluster's teardown (seconds).
deadline = time.time() + 120
while not all(os.path.exists(os.path.join(out_dir, f"worker-{i}.json")) for i in range(worker.count)) \
        and time.time() < deadline:
    time.sleep(0.05)
sys.stdout.flush()
sys.stderr.flush()
os._exit(0)
