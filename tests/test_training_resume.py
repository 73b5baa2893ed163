"""Resumed training equals uninterrupted training (issue 17): `training.fit` reads the epoch that Keras's
BackupAndRestore resumes at and starts the data stream there (`Dataset.train_from`)."""

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"

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
    return load_dataset(DataConfig(image_size=16, batch_size=64))  # digits, augmented


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

STAGE_SETTINGS = ["data.image_size=16", "model.width_multiplier=0.25", "supernet.epochs=3", "retrain.epochs=3",
                  "data.augment=true"]


def _stage_weights(tmp_path, name, stage, kill_after=None):
    import h5py

    from larq_mobisearch import pipeline as P
    from larq_mobisearch.config import load_config

    run = P.Run.open(str(tmp_path / name), load_config(overrides=STAGE_SETTINGS), verbose=0)
    callbacks = [KillAfter(kill_after)] if kill_after is not None else []
    for attempt in range(2):
        try:
            if stage == "supernet":
                P.train_supernet(run, callbacks=callbacks if attempt == 0 else [])
            else:
                P.retrain(run, run.space.uniform(2), callbacks=callbacks if attempt == 0 else [])
            break
        except Killed:
            assert kill_after is not None and attempt == 0
    path = run.path("supernet", "weights.h5") if stage == "supernet" else run.search_path("final", "weights.h5")
    history = read_history(os.path.join(os.path.dirname(path), "history.csv"))
    weights = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda k, v: weights.__setitem__(k, v[()]) if hasattr(v, "shape") else None)
    return weights, history


@pytest.mark.parametrize("stage", ["supernet", "retrain"])
def test_pipeline_stage_killed_and_resumed_equals_uninterrupted(tmp_path, stage):
    straight, h1 = _stage_weights(tmp_path, "straight", stage)
    resumed, h2 = _stage_weights(tmp_path, "resumed", stage, kill_after=KILL_AFTER)
    assert len(h2["loss"]) == EPOCHS and sorted(straight) == sorted(resumed) and straight
    for key in straight:
        np.testing.assert_array_equal(resumed[key], straight[key], err_msg=key)
    assert h1["loss"] == h2["loss"]
