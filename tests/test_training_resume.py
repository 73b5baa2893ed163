"""Resumed training equals uninterrupted training (issue 17): `training.fit` reads the epoch that Keras's
BackupAndRestore resumes at and starts the data stream there (`Dataset.train_from`)."""

import os
import shutil

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import larq_mobisearch  # noqa: E402,F401
import tensorflow as tf  # noqa: E402

from data_helpers import assert_same_batches, batches  # noqa: E402
from larq_mobisearch.config import DataConfig, TrainConfig  # noqa: E402
from larq_mobisearch.data import load_dataset  # noqa: E402
from larq_mobisearch.training import fit, read_history, resume_epoch  # noqa: E402

EPOCHS, KILL_AFTER = 3, 1


class Killed(Exception):
    pass


class KillAfter(tf.keras.callbacks.Callback):
    """Raises at the end of epoch `epoch`, after BackupAndRestore saved it (fit puts the backup first)."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise Killed(f"killed after epoch {epoch}")


@pytest.fixture(scope="module")
def data():
    return load_dataset(DataConfig(image_size=8, batch_size=128))  # digits, augmented


def _model(data):
    tf.keras.utils.set_random_seed(1)
    return tf.keras.Sequential([
        tf.keras.Input(data.input_shape),
        tf.keras.layers.Conv2D(8, 3, strides=2),
        tf.keras.layers.BatchNormalization(),
        tf.keras.layers.ReLU(),
        tf.keras.layers.GlobalAveragePooling2D(),
        tf.keras.layers.Dense(data.num_classes),
    ])


def _train(data, out_dir, train, kill_after=None):
    model = _model(data)
    callbacks = [KillAfter(kill_after)] if kill_after is not None else []
    fit(model, train, TrainConfig(epochs=EPOCHS, learning_rate=1e-2, seed=0), str(out_dir),
        steps_per_epoch=data.steps_per_epoch, callbacks=callbacks, verbose=0)
    # one trace: fit creates the optimizer's and the metric's variables before Keras traces the training step
    assert model.train_function.experimental_get_tracing_count() == 1
    return model.get_weights()


def _killed_then_resumed(data, out_dir, train):
    with pytest.raises(Killed):
        _train(data, out_dir, train, kill_after=KILL_AFTER)
    assert resume_epoch(str(out_dir / "backup")) == KILL_AFTER + 1
    return _train(data, out_dir, train)


def test_epoch_k_of_the_stream_on_its_own(data):
    steps = data.steps_per_epoch
    assert_same_batches(batches(data.train_from(2), steps), batches(data.train, 3 * steps)[2 * steps:])
    assert data.train.cardinality().numpy() == tf.data.INFINITE_CARDINALITY


def test_killed_and_resumed_training_equals_uninterrupted(data, tmp_path):
    assert resume_epoch(str(tmp_path / "nothing")) == 0
    full = _train(data, tmp_path / "full", data.train_from)
    again = _train(data, tmp_path / "again", data.train_from)
    resumed = _killed_then_resumed(data, tmp_path / "resumed", data.train_from)
    for a, b, c in zip(full, again, resumed):
        np.testing.assert_array_equal(a, b)  # two uninterrupted runs are bit-identical
        np.testing.assert_array_equal(a, c)  # and so is the resumed one
    assert len(read_history(str(tmp_path / "resumed" / "history.csv"))["loss"]) == EPOCHS
    assert resume_epoch(str(tmp_path / "resumed" / "backup")) == EPOCHS
    # A fixed tf.data.Dataset restarts its data at the first epoch on resumption: other weights (what this
    # test would see if fit did not position the stream).
    restarted = _killed_then_resumed(data, tmp_path / "restarted", data.train)
    assert max(float(np.abs(a - b).max()) for a, b in zip(full, restarted)) > 1e-3


# The pipeline's own stages (issue 17): supernet training (a random genotype per step, drawn from the optimizer
# step) and retraining, each killed after epoch k and resumed, end with an uninterrupted run's weights.
#
# The killed run is the uninterrupted run's directory as it was at the end of epoch k (copied there, after the
# backup and the history were written): what a process killed at that moment leaves behind. Resuming that copy
# trains the epochs after k in a fresh stage call, which must end with the uninterrupted run's weights and history.
# (Interrupting a stage inside its process and calling it again is checked in test_stage_times.py, and `fit` killed
# by an exception above.)

STAGE_EPOCHS, STAGE_KILL_AFTER = 2, 0
# digits at their native 8x8, half in the test split: 809 training images, 3 batches of 256 an epoch; 90 held out, one
# batch (retraining's validation function is traced once)
STAGE_SETTINGS = ["data.image_size=8", "data.test_fraction=0.5", "data.holdout_fraction=0.1", "data.batch_size=256",
                  "model.width_multiplier=0.25", f"supernet.epochs={STAGE_EPOCHS}", f"retrain.epochs={STAGE_EPOCHS}",
                  "data.augment=true"]


class SnapshotAfter(tf.keras.callbacks.Callback):
    """Copies the run directory `src` to `dest` at the end of epoch `epoch` (BackupAndRestore and the history
    have written it: fit puts them first)."""

    def __init__(self, epoch, src, dest):
        super().__init__()
        self.epoch, self.src, self.dest = epoch, src, dest

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            shutil.copytree(self.src, self.dest)


class CountSteps(tf.keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.steps = 0

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1


def _run_stage(run, stage, callbacks):
    from larq_mobisearch import pipeline as P

    if stage == "supernet":
        P.train_supernet(run, callbacks=callbacks)
        path = run.path("supernet", "weights.h5")
    else:
        P.retrain(run, run.space.uniform(2), callbacks=callbacks)
        path = run.search_path("final", "weights.h5")
    history = read_history(os.path.join(os.path.dirname(path), "history.csv"))
    weights = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda k, v: weights.__setitem__(k, v[()]) if hasattr(v, "shape") else None)
    return weights, history


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["supernet", "retrain"])
def test_pipeline_stage_killed_and_resumed_equals_uninterrupted(tmp_path, stage):
    from larq_mobisearch import pipeline as P
    from larq_mobisearch.config import load_config

    cfg = load_config(overrides=STAGE_SETTINGS)
    straight_dir, killed_dir = tmp_path / "straight", tmp_path / "killed"
    run = P.Run.open(str(straight_dir), cfg, verbose=0)
    straight, h1 = _run_stage(run, stage, [SnapshotAfter(STAGE_KILL_AFTER, straight_dir, killed_dir)])
    out = "supernet" if stage == "supernet" else os.path.join("searches", "default", "final")
    assert resume_epoch(str(straight_dir / out / "backup")) == STAGE_EPOCHS
    # the copy holds its own backup (not a path into the uninterrupted run's) at epoch k, and no result yet
    assert resume_epoch(str(killed_dir / out / "backup")) == STAGE_KILL_AFTER + 1
    assert not (killed_dir / out / "weights.h5").exists() and not (killed_dir / out / "done.json").exists()
    assert len(read_history(str(killed_dir / out / "history.csv"))["loss"]) == STAGE_KILL_AFTER + 1

    steps = CountSteps()
    resumed, h2 = _run_stage(P.Run.open(str(killed_dir), cfg, verbose=0), stage, [steps])
    # it trained the epochs after k
    assert steps.steps == (STAGE_EPOCHS - STAGE_KILL_AFTER - 1) * run.data.steps_per_epoch > 0
    assert len(h2["loss"]) == STAGE_EPOCHS and sorted(straight) == sorted(resumed) and straight
    for key in straight:
        np.testing.assert_array_equal(resumed[key], straight[key], err_msg=key)
    assert h1["loss"] == h2["loss"]
