"""Every stage records its own wall time in the run directory, kept across resumption: an interrupted stage that is
resumed adds the time of its new session to the time it had spent (`pipeline.stages.stage_seconds`), and
``--restart-from`` forgets it with the stage's other files."""

import pytest

import larq_mobisearch  # noqa: F401  (Keras 2 before TensorFlow)
import tensorflow as tf
from larq_mobisearch.config import load_config
from larq_mobisearch.pipeline import Run, train_supernet
from larq_mobisearch.pipeline.clock import stage_clock, stage_seconds, stage_seconds_path
from larq_mobisearch.training import read_history, resume_epoch

# tf_keras's seeded initializers call random.randint with a float bound (not this project's code).
pytestmark = pytest.mark.filterwarnings("ignore:non-integer arguments to randrange:DeprecationWarning")


class _Clock:
    """A monotonic clock the test advances by hand (no sleeping, exact expectations)."""

    def __init__(self):
        self.now = 1000.0

    def monotonic(self):
        return self.now


def test_an_interrupted_stage_keeps_its_time_and_a_resumed_one_adds_to_it(tmp_path, monkeypatch):
    from larq_mobisearch.pipeline import clock

    fake = _Clock()
    monkeypatch.setattr(clock, "time", fake)
    run = Run.open(str(tmp_path / "run"), load_config(preset="digits"))
    assert stage_seconds(run, "search") is None
    with pytest.raises(KeyboardInterrupt):
        with stage_clock(run, "search"):
            fake.now += 0.3
            raise KeyboardInterrupt  # the user stops the run
    assert stage_seconds(run, "search") == 0.3
    with stage_clock(run, "search") as flush:
        fake.now += 0.2
        flush()
        assert stage_seconds(run, "search") == 0.5  # a flush mid-stage (after an epoch) writes the time so far
        fake.now += 0.2
    assert stage_seconds(run, "search") == 0.7
    assert stage_seconds(run, "export") is None and stage_seconds(run, "retrain") is None
    Run.open(run.run_dir, None, search="default", restart_from="search", echo=lambda line: None)
    assert stage_seconds(run, "search") is None  # deleted with the stage's other files
    with pytest.raises(ValueError, match=r"stage: received 'teacher'; allowed: \['supernet', 'search'"):
        stage_seconds_path(run, "teacher")


class _Advance(tf.keras.callbacks.Callback):
    """Advances the hand-driven stage clock by `seconds` when training starts; with `stop`, interrupts the run at
    the end of its first epoch (after BackupAndRestore saved it)."""

    def __init__(self, fake, seconds, stop):
        super().__init__()
        self.fake, self.seconds, self.stop = fake, seconds, stop

    def on_train_begin(self, logs=None):
        self.fake.now += self.seconds

    def on_epoch_end(self, epoch, logs=None):
        if self.stop and epoch == 0:
            raise KeyboardInterrupt


def test_supernet_training_resumed_after_an_interruption_adds_its_time(tmp_path, monkeypatch):
    # One epoch, interrupted at its end (after its backup): the second session resumes from the backup with no
    # epoch left to train (restores, writes the weights and the marker), so only the first session traces a
    # training step. The stage clock runs on a hand-advanced clock: 40 s in the first session, 7 s in the second.
    from larq_mobisearch.pipeline import clock

    fake = _Clock()
    monkeypatch.setattr(clock, "time", fake)
    overrides = ["data.image_size=8", "data.test_fraction=0.5", "data.holdout_fraction=0.5", "data.batch_size=128",
                 "model.width_multiplier=0.25", "supernet.epochs=1"]
    run = Run.open(str(tmp_path / "run"), load_config(preset="digits", overrides=overrides), verbose=0)
    with pytest.raises(KeyboardInterrupt):
        train_supernet(run, [_Advance(fake, 40.0, stop=True)])
    assert stage_seconds(run, "supernet") == 40.0 and not run.done("supernet")
    assert resume_epoch(run.path("supernet", "backup")) == 1  # the second session resumes, it does not start again
    train_supernet(run, [_Advance(fake, 7.0, stop=False)])
    assert run.done("supernet") and stage_seconds(run, "supernet") == 47.0  # its own time added, not the whole again
    assert len(read_history(run.path("supernet", "history.csv"))["loss"]) == 1  # the epoch was trained once
