"""Data parallelism through TensorFlow's own engine, `tf.distribute` (no home-made replication).

Strategies (``distribute.strategy`` in the config):

- ``default``: one device (what TensorFlow picks), no replication;
- ``mirrored``: `tf.distribute.MirroredStrategy` over the GPUs of this machine (or ``distribute.devices``;
  ``distribute.cpu_devices=N`` splits the host CPU into N logical devices, for checking without GPUs);
- ``multi_worker``: `tf.distribute.MultiWorkerMirroredStrategy`, one process per machine, cluster from the
  ``TF_CONFIG`` environment variable (collective all-reduce over gRPC; ring or NCCL);
- ``tpu``: `tf.distribute.TPUStrategy` on ``distribute.tpu`` (a Cloud TPU name / address, or ``local``).

How the method maps onto data parallelism:

- ``data.batch_size`` is the **global** batch (the paper's 512 over four GPUs = 128 per replica); the
  learning rate and its schedule are defined for the global batch and global steps, as in the paper, so a
  run gives the same optimisation trajectory on 1 or N replicas (`check_global_batch` refuses a global
  batch that does not split evenly). BatchNorm statistics are synchronised across replicas by default
  (``distribute.sync_batchnorm``), so the forward pass equals the single-device one.
- Weight sharing: the genotype of a step is a pure function of (seed, optimizer step) (`supernet.step_rng`)
  and is written by the `RandomGenotype` callback into mirrored, non-trainable variables before the step:
  every replica of every worker runs the same sub-network (`local_replica_values` lets tests check it).
- Search: `ShardedEvaluator` gives each worker every ``num_workers``-th genotype of a batch; each worker
  recalibrates BatchNorm and scores its share locally, and the scores are gathered with one collective
  all-reduce. Fitness values do not depend on where they were computed, so the search result equals the
  single-worker one; every worker runs the same (deterministic) search loop and only the chief writes.
- Files: only the chief writes a run directory's files; the other workers keep their copies in
  ``worker-<index>/`` sub-directories. `tf.keras.callbacks.BackupAndRestore` makes training restartable:
  when a worker dies, restart every worker with the same command and training resumes from the last
  epoch. As for Keras, the run directory must be on storage that every worker sees.

Strategies must be created before TensorFlow runs any op in the process (`get_strategy` is called by the
pipeline before it loads data); one strategy per process is cached and reused.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from .choices import COMMUNICATION, STRATEGIES, not_allowed

log = logging.getLogger(__name__)



class DistributeError(RuntimeError):
    """A distribution strategy cannot be set up as configured (devices, cluster, TPU, batch size)."""


# ----------------------------------------------------------------------------------------------------------
# Strategy creation

_CACHE: Dict[Tuple, tf.distribute.Strategy] = {}


def _config_key(cfg) -> Tuple:
    return (cfg.strategy, cfg.devices, int(cfg.cpu_devices), cfg.tpu, cfg.communication, os.environ.get("TF_CONFIG"))


def configure_cpu_devices(n: int) -> None:
    """Split the host CPU into `n` logical devices (must happen before TensorFlow initialises its runtime)."""
    n = int(n)
    if n < 1:
        raise DistributeError(f"distribute.cpu_devices: received {n}; must be >= 1")
    if n == 1:
        return
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * n)
    except RuntimeError:
        have = len(tf.config.list_logical_devices("CPU"))
        if have != n:
            raise DistributeError(
                f"distribute.cpu_devices={n}: TensorFlow is already initialised with {have} logical CPU "
                f"device(s) in this process; set it before any TensorFlow op runs (e.g. from the CLI)"
            ) from None


def parse_tf_config(text: Optional[str] = None) -> Optional[Dict]:
    """The ``TF_CONFIG`` cluster description (None if unset), validated with a precise message."""
    text = os.environ.get("TF_CONFIG") if text is None else text
    if not text:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DistributeError(f"TF_CONFIG is not valid JSON ({exc}): {text[:200]!r}") from None
    if not isinstance(data, dict) or not isinstance(data.get("cluster"), dict) or not isinstance(data.get("task"), dict):
        raise DistributeError(
            'TF_CONFIG must look like {"cluster": {"worker": ["host1:port", "host2:port"]}, '
            f'"task": {{"type": "worker", "index": 0}}}}; received {text[:200]!r}'
        )
    task, cluster = data["task"], data["cluster"]
    ttype, index = task.get("type"), task.get("index")
    if ttype not in cluster or not isinstance(cluster[ttype], list):
        raise DistributeError(f"TF_CONFIG task type {ttype!r} is not in the cluster (types: {sorted(cluster)})")
    if not isinstance(index, int) or not 0 <= index < len(cluster[ttype]):
        raise DistributeError(
            f"TF_CONFIG task index {index!r} is out of range for {len(cluster[ttype])} {ttype!r} task(s)"
        )
    return data


def make_strategy(cfg) -> tf.distribute.Strategy:
    """A new `tf.distribute.Strategy` for a `DistributeConfig` (use `get_strategy` to reuse one)."""
    strategy = cfg.strategy
    if strategy not in STRATEGIES:
        raise not_allowed(f"distribute.strategy: received {strategy!r}", STRATEGIES, error=DistributeError)
    if int(cfg.cpu_devices) > 1:
        configure_cpu_devices(cfg.cpu_devices)
    if strategy == "default":
        return tf.distribute.get_strategy()
    if strategy == "mirrored":
        devices = _mirrored_devices(cfg)
        log.info("MirroredStrategy over %s", devices)
        return tf.distribute.MirroredStrategy(devices)
    if strategy == "multi_worker":
        tf_config = parse_tf_config()
        if tf_config is None:
            log.warning("distribute.strategy=multi_worker without TF_CONFIG: running as a single worker")
        implementation = {
            "auto": tf.distribute.experimental.CommunicationImplementation.AUTO,
            "ring": tf.distribute.experimental.CommunicationImplementation.RING,
            "nccl": tf.distribute.experimental.CommunicationImplementation.NCCL,
        }[cfg.communication]
        options = tf.distribute.experimental.CommunicationOptions(implementation=implementation)
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    # tpu
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=cfg.tpu or "")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as exc:
        raise DistributeError(
            f"distribute.strategy=tpu: no TPU found at distribute.tpu={cfg.tpu!r} ({type(exc).__name__}: {exc}). "
            "Set distribute.tpu to the Cloud TPU name or grpc:// address (or 'local' on a TPU VM)."
        ) from None
    return tf.distribute.TPUStrategy(resolver)


def _mirrored_devices(cfg) -> List[str]:
    if cfg.devices:
        devices = [d.strip() for d in str(cfg.devices).split(",") if d.strip()]
        known = {d.name.lower().replace("/device:", "/") for d in tf.config.list_logical_devices()}
        known |= {d.replace("/job:localhost/replica:0/task:0", "") for d in known}
        unknown = [d for d in devices if d.lower().replace("/device:", "/") not in known]
        if unknown:
            raise DistributeError(
                f"distribute.devices: unknown device(s) {unknown}; this machine has "
                f"{sorted(d.name for d in tf.config.list_logical_devices())}"
            )
        return devices
    gpus = tf.config.list_logical_devices("GPU")
    if gpus:
        return [d.name for d in gpus]
    return [d.name for d in tf.config.list_logical_devices("CPU")]


def get_strategy(cfg) -> tf.distribute.Strategy:
    """The process-wide strategy for `cfg` (created on first use; TensorFlow allows one cluster per process)."""
    key = _config_key(cfg)
    if key not in _CACHE:
        if any(k[0] == "multi_worker" for k in _CACHE) or (_CACHE and cfg.strategy == "multi_worker"):
            raise DistributeError(
                f"distribute.strategy={cfg.strategy!r}: a multi-worker strategy joins its cluster once per "
                f"process, before any other strategy; this process already set up "
                f"{', '.join(repr(k[0]) for k in _CACHE)}. Use one distribute config per process."
            )
        _CACHE[key] = make_strategy(cfg)
    return _CACHE[key]


# ----------------------------------------------------------------------------------------------------------
# Workers


@dataclass(frozen=True)
class WorkerInfo:
    """This process's place in the cluster: worker `index` of `count`; the chief writes the run files."""

    index: int
    count: int
    is_chief: bool
    num_replicas: int

    def private_dir(self, directory: str) -> str:
        """`directory` for the chief; ``directory/worker-<index>`` for the others (their own copies)."""
        return directory if self.is_chief else os.path.join(directory, f"worker-{self.index}")


def worker_info(strategy: Optional[tf.distribute.Strategy] = None) -> WorkerInfo:
    strategy = strategy or tf.distribute.get_strategy()
    replicas = int(strategy.num_replicas_in_sync)
    resolver = getattr(strategy, "cluster_resolver", None)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
        return WorkerInfo(0, 1, True, replicas)
    spec = resolver.cluster_spec().as_dict()
    if not spec:
        return WorkerInfo(0, 1, True, replicas)
    chiefs = len(spec.get("chief", []))
    workers = len(spec.get("worker", []))
    ttype, tid = resolver.task_type, int(resolver.task_id or 0)
    index = tid if ttype == "chief" else chiefs + tid
    is_chief = ttype == "chief" or (chiefs == 0 and ttype == "worker" and tid == 0)
    return WorkerInfo(index, chiefs + workers, is_chief, replicas)


def _one_value_per_worker(strategy: tf.distribute.Strategy, value: np.ndarray):
    """A distributed value holding `value` on this worker's first local replica and zeros elsewhere."""
    local_ids = []

    def fn(ctx):
        local_ids.append(ctx.replica_id_in_sync_group)
        first = len(local_ids) == 1
        return tf.constant(value if first else np.zeros_like(value))

    return strategy.experimental_distribute_values_from_function(fn)


def all_reduce_sum(strategy: tf.distribute.Strategy, value: np.ndarray) -> np.ndarray:
    """Sum of `value` over the workers of the cluster (one collective; every worker must call it)."""
    value = np.asarray(value)
    if worker_info(strategy).count == 1:
        return value
    reduced = strategy.reduce(tf.distribute.ReduceOp.SUM, _one_value_per_worker(strategy, value), axis=None)
    return np.asarray(reduced.numpy()).reshape(value.shape)


def barrier(strategy: Optional[tf.distribute.Strategy]) -> None:
    """Wait until every worker reaches this point (no-op on one worker)."""
    if strategy is not None and worker_info(strategy).count > 1:
        all_reduce_sum(strategy, np.ones((1,), np.float64))


def check_global_batch(batch_size: int, strategy: tf.distribute.Strategy) -> int:
    """The per-replica batch of a global `batch_size`; a global batch that does not split evenly is refused."""
    replicas = int(strategy.num_replicas_in_sync)
    if batch_size % replicas:
        raise DistributeError(
            f"data.batch_size={batch_size} is the global batch; it must be divisible by the {replicas} "
            f"replicas in sync (e.g. {max(replicas, batch_size // replicas * replicas)})"
        )
    return batch_size // replicas


def local_replica_values(strategy: tf.distribute.Strategy, variable) -> List[np.ndarray]:
    """The value of `variable` on each local replica's device (what each replica reads in a step)."""
    return [np.asarray(v.numpy()) for v in strategy.experimental_local_results(variable)]


# ----------------------------------------------------------------------------------------------------------
# Sharded candidate evaluation


class ShardedEvaluator:
    """Scores each batch of genotypes across the workers of a cluster and gathers the results.

    Worker w scores genotypes w, w + W, w + 2W, ... of every batch (W = number of workers) with its own
    `evaluator` (which recalibrates BatchNorm on its own copy of the supernet), then one all-reduce puts
    all scores on every worker. Every worker must call `score` with the same genotypes in the same order
    (the searches are deterministic given their seed and the scores). With one worker it is `evaluator`.

    # Arguments
        evaluator: object with `score(genotypes) -> list[float]`.
        strategy: the `tf.distribute` strategy (its cluster gives the workers).
    """

    def __init__(self, evaluator, strategy: Optional[tf.distribute.Strategy] = None):
        self.evaluator = evaluator
        self.strategy = strategy or tf.distribute.get_strategy()
        self.info = worker_info(self.strategy)
        self.local_evaluations = 0

    def shard(self, n: int) -> List[int]:
        """Indices of a batch of `n` genotypes that this worker scores."""
        return list(range(self.info.index, n, self.info.count))

    def score(self, genotypes: Sequence) -> List[float]:
        genotypes = [tuple(g) for g in genotypes]
        if self.info.count == 1:
            self.local_evaluations += len(genotypes)
            return [float(s) for s in self.evaluator.score(genotypes)]
        mine = self.shard(len(genotypes))
        local = np.zeros((len(genotypes),), np.float64)
        if mine:
            scores = self.evaluator.score([genotypes[i] for i in mine])
            local[mine] = np.asarray(scores, np.float64)
        self.local_evaluations += len(mine)
        return [float(s) for s in all_reduce_sum(self.strategy, local)]

    def __getattr__(self, name):  # restore(), evaluations, ... of the wrapped evaluator
        return getattr(self.evaluator, name)
