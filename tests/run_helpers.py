"""Settings and helpers of the shared digits run (the `digits_run` fixture in conftest.py)."""

import shutil

#: The shared run's settings (`--set` values): 16x16 digits, M1 at width 0.25, a tiny search. Sized so that
#: something is learned, cheaply: measured on the shared 2-core machine, the supernet (4 epochs, ~30 s) scores
#: ~0.6 held-out top-1 in the search (chance 0.1), and the winner retrained 8 epochs reaches ~0.85-0.88 test
#: top-1 (the floors in the tests, `RUN_MIN_TEST_TOP1` / `RUN_MIN_FITNESS`, leave margin for other seeds'
#: genotypes). Tests that need another search on the same supernet use `--search NAME` with their own cheaper
#: settings for the later stages (`retrain.epochs=1`).
TINY_SETTINGS = (
    "data.image_size=16",
    "model.width_multiplier=0.25",
    "supernet.epochs=4",
    "supernet.learning_rate=5e-3",
    "retrain.epochs=8",
    "retrain.learning_rate=5e-3",
    "search.population=4",
    "search.top_k=2",
    "search.iterations=2",
    "search.recalibration_batches=1",
    "search.random_baseline_samples=3",
    "export.verify_samples=16",
    "export.float_size=false",  # the float twin's conversion: checked in test_export.py
)
TINY = [a for s in TINY_SETTINGS for a in ("--set", s)]
#: Test top-1 floor for the shared run's retrained winner (measured ~0.85-0.88; an untrained net is ~0.1).
RUN_MIN_TEST_TOP1 = 0.75
#: Held-out top-1 floor for the supernet's fitness of the searched winner (measured ~0.6; chance 0.1).
RUN_MIN_FITNESS = 0.4


def invoke(*args):
    """The `mobisearch` CLI in this process (click's runner); exceptions propagate."""
    from click.testing import CliRunner

    from larq_mobisearch.cli import main

    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def copy_run(run_dir, dest):
    """A private copy of a run directory (tests that write into a run must not touch the shared one)."""
    shutil.copytree(run_dir, dest)
    return dest
