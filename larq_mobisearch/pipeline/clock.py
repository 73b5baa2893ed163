"""Wall time per stage, measured by the run itself and kept across resumption.

Each stage adds the wall seconds of every session to a small JSON file in the run directory (`stage_seconds_path`;
``--restart-from`` deletes it with the stage's other files): an interrupted stage keeps the time it had spent
(written when the stage fails or is interrupted, and after every training epoch) and a resumed one adds its own.
The search's report carries the totals (``report.json``, ``stage_seconds``).
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from typing import Optional

from ..fileio import atomic_write_json
from .rundir import Run, read_json


#: File of a stage's accumulated wall seconds (in the stage's directory, or next to its files in the search's).
WALL_SECONDS = "wall_seconds.json"
TIMED_STAGES = ("supernet", "search", "retrain", "export")


def stage_seconds_path(run: Run, stage: str) -> str:
    """Where `stage` keeps its wall time (deleted with the stage's files by ``--restart-from``)."""
    if stage == "supernet":
        return run.path("supernet", WALL_SECONDS)
    if stage == "retrain":
        return run.search_path("final", WALL_SECONDS)
    if stage in ("search", "export"):
        return run.search_path(f"{stage}_{WALL_SECONDS}")
    raise ValueError(f"stage: received {stage!r}; allowed: {list(TIMED_STAGES)}")


def stage_seconds(run: Run, stage: str) -> Optional[float]:
    """Wall seconds `stage` has run so far, over every session (an interrupted and resumed stage adds its time);
    None if it never ran in this run directory."""
    path = stage_seconds_path(run, stage)
    return read_json(path, "Stage wall time").get("seconds") if os.path.exists(path) else None


@contextlib.contextmanager
def stage_clock(run: Run, stage: str):
    """Add the wall time spent inside the block to `stage`'s total (written at the end, also when the block
    fails, and whenever the yielded ``flush()`` is called, e.g. after every epoch)."""
    path = stage_seconds_path(run, stage)
    before = read_json(path, "Stage wall time") if os.path.exists(path) else {}
    start = time.monotonic()

    def flush():
        if run.worker.is_chief:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            atomic_write_json(path, {"seconds": round(before.get("seconds", 0.0) + time.monotonic() - start, 1),
                                     "sessions": before.get("sessions", 0) + 1})

    try:
        yield flush
    finally:
        flush()


def timed(stage: str):
    """Decorator: run the stage function inside `stage_clock`; a training stage (``callbacks`` argument) also
    flushes the clock after every epoch."""

    def wrap(fn):
        @functools.wraps(fn)
        def timed(run: Run, *args, **kwargs):
            with stage_clock(run, stage) as flush:
                if stage in ("supernet", "retrain"):
                    import tensorflow as tf

                    each_epoch = tf.keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: flush())
                    if stage == "supernet" and args:  # train_supernet(run, callbacks)
                        args = ([*args[0], each_epoch], *args[1:])
                    else:
                        kwargs["callbacks"] = [*kwargs.get("callbacks", ()), each_epoch]
                return fn(run, *args, **kwargs)

        return timed

    return wrap
