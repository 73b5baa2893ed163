"""tf.distribute: strategy settings, global batch, sharded evaluation; MirroredStrategy over two logical CPU
devices vs one device; MultiWorkerMirroredStrategy with two worker processes on loopback."""

import json
import os
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest

import larq_mobisearch  # noqa: F401
from larq_mobisearch import distribute as D
from larq_mobisearch.config import (ConfigError, apply_overrides, config_from_dict, config_to_dict, load_config,
                                     preset_config)
from larq_mobisearch.pipeline import Run, RunDirError
from larq_mobisearch.search import evolutionary_search
from larq_mobisearch.nn.space import SearchSpace, decode
from larq_mobisearch.nn.specs import architecture
from larq_mobisearch.nn.supernet import sample_genotype, step_rng
from larq_mobisearch.training import resume_epoch

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = os.path.join(HERE, "distributed")


def _digits_space(size=32):
    cfg = preset_config("digits")
    return SearchSpace(architecture(cfg.model.module, (size, size, 1), 10, cfg.model.width_multiplier),
                       cfg.model.space)


def _expected_genotypes(space, seed, steps):
    return [list(sample_genotype(space, step_rng(seed, t))) for t in range(steps)]


def _run_script(args, env=None, timeout=900):
    return subprocess.Popen([sys.executable, *args], env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


# ---------------------------------------------------------------------------------------------------------
# Settings


def test_distribute_settings_parse_and_are_validated():
    cfg = load_config(overrides=["distribute.strategy=MIRRORED", "distribute.devices=/cpu:0,/cpu:1",
                                 "distribute.cpu_devices=2"])
    assert (cfg.distribute.strategy, cfg.distribute.devices, cfg.distribute.cpu_devices) == \
        ("mirrored", "/cpu:0,/cpu:1", 2)
    assert preset_config("imagenet").distribute.strategy == "mirrored"  # the paper's four GPUs
    assert preset_config("digits").distribute.strategy == "default"
    with pytest.raises(ConfigError, match=r"distribute.strategy: received 'horovod'; allowed: default, mirrored, "
                                          r"multi_worker, tpu"):
        load_config(overrides=["distribute.strategy=horovod"])
    with pytest.raises(ConfigError, match=r"distribute.cpu_devices: received 0"):
        load_config(overrides=["distribute.cpu_devices=0"])
    with pytest.raises(ConfigError, match=r"distribute.devices.*null unless distribute.strategy is mirrored"):
        load_config(overrides=["distribute.devices=/gpu:0"])
    with pytest.raises(ConfigError, match=r"distribute.communication: received 'mpi'; allowed: auto, ring, nccl"):
        load_config(overrides=["distribute.communication=mpi"])
    # configs saved before the section existed still load (defaults)
    old = config_to_dict(load_config())
    del old["distribute"]
    assert config_from_dict(old).distribute.strategy == "default"


@pytest.mark.parametrize("text, message", [
    ("{not json", r"TF_CONFIG is not valid JSON"),
    ('{"cluster": {"worker": ["a:1"]}}', r"TF_CONFIG must look like"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "ps", "index": 0}}', r"task type 'ps' is not in the cluster"),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}',
     r"task index 2 is out of range for 2 'worker' task"),
])
def test_bad_tf_config_is_explained(text, message):
    with pytest.raises(D.DistributeError, match=message):
        D.parse_tf_config(text)


def test_good_tf_config_and_unset():
    data = D.parse_tf_config('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}')
    assert data["task"]["index"] == 1
    assert D.parse_tf_config("") is None


def test_default_strategy_is_one_chief_worker_and_sharding_is_transparent():
    import tensorflow as tf

    info = D.worker_info(tf.distribute.get_strategy())
    assert info == D.WorkerInfo(0, 1, True, 1)
    assert info.private_dir("/x/supernet") == "/x/supernet"
    assert D.WorkerInfo(1, 2, False, 2).private_dir("/x/supernet") == os.path.join("/x/supernet", "worker-1")
    assert D.check_global_batch(64, tf.distribute.get_strategy()) == 64

    class Sum:
        def score(self, genotypes):
            return [float(sum(g)) for g in genotypes]

    sharded = D.ShardedEvaluator(Sum())
    assert sharded.score([(1, 2), (3, 4), (5, 6)]) == [3.0, 7.0, 11.0]
    assert sharded.shard(5) == [0, 1, 2, 3, 4] and sharded.local_evaluations == 3


def test_run_directory_may_change_strategy_but_not_what_it_computes(tmp_path):
    cfg = load_config()
    Run.open(str(tmp_path), cfg)
    again = Run.open(str(tmp_path), apply_overrides(cfg, ["distribute.strategy=multi_worker"]))
    assert again.cfg.distribute.strategy == "multi_worker"
    (tmp_path / "supernet").mkdir()  # the supernet stage has started: what it computes is fixed now
    assert Run.open(str(tmp_path), apply_overrides(cfg, ["distribute.strategy=mirrored"])).cfg.distribute.strategy \
        == "mirrored"
    with pytest.raises(RunDirError, match=r"supernet.epochs"):
        Run.open(str(tmp_path), apply_overrides(cfg, ["supernet.epochs=3", "distribute.strategy=mirrored"]))


def test_non_chief_search_reads_but_never_writes_the_state(tmp_path):
    space = _digits_space()
    cfg = apply_overrides(load_config(), ["search.population=6", "search.top_k=2", "search.iterations=2"]).search
    score = lambda g: float(-sum(g))  # noqa: E731
    state = str(tmp_path / "search_state.json")
    first = evolutionary_search(space, score, (), cfg, state_path=state, progress=False)
    before = open(state, "rb").read()
    again = evolutionary_search(space, score, (), cfg, state_path=state, progress=False, write_state=False)
    assert open(state, "rb").read() == before
    assert again.best_genotype == first.best_genotype
    other = str(tmp_path / "other.json")
    evolutionary_search(space, score, (), cfg, state_path=other, progress=False, write_state=False)
    assert not os.path.exists(other)


# ---------------------------------------------------------------------------------------------------------
# MirroredStrategy over two logical CPU devices (own process: devices are set before TensorFlow starts)


@pytest.mark.slow
def test_mirrored_two_cpu_devices_give_the_weights_of_one_device(tmp_path):
    proc = _run_script([os.path.join(SCRIPTS, "mirrored_vs_one_device.py"), str(tmp_path), "3"])
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out[-4000:]
    summary = json.load(open(tmp_path / "summary.json"))
    assert summary["replicas"] == {"one_device": 1, "mirrored": 2}
    # every replica of every step used the step's genotype: the one-device sequence, from the step-seeded RNG
    expected = _expected_genotypes(_digits_space(8), 0, 3)
    assert summary["genotypes"]["one_device"] == [[t, [g]] for t, g in enumerate(expected)]
    assert summary["genotypes"]["mirrored"] == [[t, [g, g]] for t, g in enumerate(expected)]
    assert len({tuple(g) for g in expected}) > 1  # the genotype did change between steps
    # every step: the same update up to float summation order (the global batch is split 16 + 16 and
    # all-reduced), each step starting from the one-device state before it
    assert summary["max_update"] > 0.1
    assert summary["max_diff_trainable"] <= 1e-4 * summary["max_update"], summary["worst"]
    assert summary["max_rel_diff_non_trainable"] <= 1e-4, summary["worst"]
    assert "global batch; it must be divisible by the 2 replicas" in summary["odd_batch_error"]


# ---------------------------------------------------------------------------------------------------------
# MultiWorkerMirroredStrategy: two worker processes on loopback


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.mark.slow
def test_multi_worker_supernet_and_sharded_search_agree_with_one_worker(tmp_path):
    """Two workers on loopback: worker 1 dies after epoch 1; both are restarted (what an orchestrator does) and
    training resumes at epoch 2; both workers used the same genotypes and hold the same weights; the sharded
    search equals a one-worker search on the same supernet."""
    import signal
    import time

    import tensorflow as tf

    from larq_mobisearch.pipeline import search

    run_dir, out_dir = tmp_path / "run", tmp_path / "out"
    out_dir.mkdir()

    def launch(crash_worker=None):
        ports = _free_ports(2)
        procs = []
        for index in range(2):
            tf_config = {"cluster": {"worker": [f"localhost:{p}" for p in ports]},
                         "task": {"type": "worker", "index": index}}
            env = {"TF_CONFIG": json.dumps(tf_config)}
            if crash_worker is not None:
                env["CRASH_WORKER"] = str(crash_worker)
            procs.append(_run_script([os.path.join(SCRIPTS, "multi_worker.py"), str(run_dir), str(out_dir)], env=env))
        return procs

    def finish(procs, timeout=900):
        outputs = []
        try:
            for p in procs:
                outputs.append(p.communicate(timeout=timeout)[0])
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
        return outputs

    def epochs_in_history():
        path = run_dir / "supernet" / "history.csv"
        if not path.exists():
            return []
        with open(path) as f:
            return [line.split(",")[0] for line in f.read().split()[1:]]

    # 1) worker 1 dies after the first epoch; the chief then waits on it forever and is killed as well, once it has
    # backed up and logged the first epoch (its backup first, then its history: fit's callback order)
    first = launch(crash_worker=1)
    out1 = first[1].communicate(timeout=900)[0]
    assert first[1].returncode == 17, out1[-4000:]
    backup = run_dir / "supernet" / "backup" / "chief" / "checkpoint"
    deadline = time.time() + 120
    while not (backup.exists() and epochs_in_history()) and time.time() < deadline and first[0].poll() is None:
        time.sleep(0.1)
    assert backup.exists(), "the chief did not back up the first epoch"
    first[0].send_signal(signal.SIGKILL)
    first[0].communicate(timeout=60)
    assert not (run_dir / "supernet" / "done.json").exists()
    assert epochs_in_history() == ["0"]
    assert resume_epoch(str(run_dir / "supernet" / "backup")) == 1

    # 2) restart both with the same command: training resumes at the second epoch, then the search runs
    second = launch()
    for p, out in zip(second, finish(second)):
        assert p.returncode == 0, out[-4000:]
    chief, worker = (json.load(open(out_dir / f"worker-{i}.json")) for i in range(2))
    assert (chief["is_chief"], worker["is_chief"], chief["workers"], chief["replicas"]) == (True, False, 2, 2)

    # the restarted workers resumed at epoch 2 (steps n..2n-1) and ran every step with the same genotype,
    # the step-seeded one
    # (a one-worker copy of the run for the search below: its data and space)
    single = tmp_path / "single"
    (single / "supernet").mkdir(parents=True)
    shutil.copy(run_dir / "config.json", single / "config.json")
    for name in ("weights.h5", "done.json"):
        shutil.copy(run_dir / "supernet" / name, single / "supernet" / name)
    cfg = apply_overrides(config_from_dict(json.load(open(single / "config.json"))), ["distribute.strategy=default"])
    assert tf.distribute.get_strategy().num_replicas_in_sync == 1
    one_worker = Run.open(str(single), cfg, verbose=0)
    space, n = one_worker.space, one_worker.data.steps_per_epoch
    assert n > 1
    assert [s for s, _ in chief["genotypes"]] == list(range(n, 2 * n))
    expected = _expected_genotypes(space, 0, 2 * n)[n:]
    assert chief["genotypes"] == worker["genotypes"] == [[n + t, [g]] for t, g in enumerate(expected)]
    assert len({tuple(g) for g in expected}) > 1  # the genotype did change between steps
    assert epochs_in_history() == ["0", "1"]

    # both workers hold the same weights; only the chief wrote the run directory's files
    import h5py

    def weights(path):
        with h5py.File(path, "r") as f:
            arrays = {}
            f.visititems(lambda name, obj: arrays.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
        return arrays

    a = weights(run_dir / "supernet" / "weights.h5")
    b = weights(run_dir / "supernet" / "worker-1" / "weights.h5")
    assert a.keys() == b.keys() and len(a) > 50
    assert all(np.array_equal(a[k], b[k]) for k in a)
    done = json.load(open(run_dir / "supernet" / "done.json"))
    assert (done["replicas"], done["workers"]) == (2, 2)
    assert sorted(os.listdir(run_dir / "supernet" / "worker-1")) == ["history.csv", "weights.h5"]

    # the sharded search gave both workers the same result ...
    drop = lambda r: {k: v for k, v in r.items() if k != "seconds"}  # noqa: E731
    assert drop(chief["search"]) == drop(worker["search"])
    assert chief["search"]["workers"] == 2
    evo = json.load(open(run_dir / "searches" / "default" / "search" / "evolution.json"))
    assert evo["num_evaluations"] >= 6

    # ... and the same result as one worker scoring everything on the same supernet
    result = search(one_worker)
    assert drop(result) == {**drop(chief["search"]), "workers": 1}
    assert json.load(open(single / "searches" / "default" / "search" / "evolution.json"))["evaluated"] == evo["evaluated"]
    assert decode(result["genotype"]) == space.validate(decode(result["genotype"]))
