"""A quiet, well-behaved library: Keras progress bars and tqdm bars only on a terminal; a run whose output goes to a
file gets one line per epoch, not a ``\\r`` redraw per batch."""

import io
import os

import numpy as np
import pytest

import larq_mobisearch  # noqa: F401  (Keras 2 before TensorFlow)
import tensorflow as tf
from larq_mobisearch.config import TrainConfig, load_config
from larq_mobisearch.pipeline import Run
from larq_mobisearch.pipeline.stages import progress_bars
from larq_mobisearch.training import fit, keras_verbose


@pytest.fixture
def terminal():
    """A real pseudo-terminal (its slave end as a text stream), and a plain file for comparison."""
    master, slave = os.openpty()
    stream = os.fdopen(slave, "w")
    yield stream
    stream.close()
    os.close(master)


def test_keras_verbose_keeps_the_bar_only_on_a_terminal(terminal, tmp_path):
    with open(tmp_path / "log.txt", "w") as log:
        assert terminal.isatty() and not log.isatty()
        assert keras_verbose(1, terminal) == 1
        assert keras_verbose(1, log) == 2
        assert keras_verbose(1, io.StringIO()) == 2
        for stream in (terminal, log):
            assert keras_verbose(0, stream) == 0 and keras_verbose(2, stream) == 2


def test_fit_to_a_file_prints_one_line_per_epoch(tmp_path, capsys):
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(2)])
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(4).repeat()
    fit(model, data, TrainConfig(epochs=3), str(tmp_path / "fit"), steps_per_epoch=16, verbose=1)
    out = capsys.readouterr().out  # pytest's capture is not a terminal, like a log file
    assert "\r" not in out and "\b" not in out
    lines = [line for line in out.splitlines() if line.strip()]
    assert [line for line in lines if line.startswith("Epoch ")] == ["Epoch 1/3", "Epoch 2/3", "Epoch 3/3"]
    summaries = [line for line in lines if "loss:" in line]
    assert len(summaries) == 3 and all(line.startswith("16/16 - ") for line in summaries)


def test_search_progress_bars_only_on_a_terminal(terminal, tmp_path):
    run = Run.open(str(tmp_path / "run"), load_config(preset="digits"))
    assert progress_bars(run, terminal) is True
    with open(tmp_path / "log.txt", "w") as log:
        assert progress_bars(run, log) is False
    quiet = Run.open(str(tmp_path / "run"), None, verbose=0)
    assert progress_bars(quiet, terminal) is False
