"""The README quotes real output: its example lines are what the code prints for the configuration they name, so
the documentation cannot drift from the code."""

import itertools
import re
from pathlib import Path

import larq_mobisearch  # noqa: F401  (Keras 2 before TensorFlow)
from larq_mobisearch.config import load_config
from larq_mobisearch.pipeline import Run, run_all
from larq_mobisearch.search.costs import FlopsCostModel

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


class _FirstLine(Exception):
    pass


def _first_echo(run):
    """The first line `run_all` prints for `run` (it stops there: nothing trains)."""
    lines = []

    def echo(line):
        lines.append(line)
        raise _FirstLine

    try:
        run_all(run, echo=echo)
    except _FirstLine:
        pass
    return lines


def test_readme_feasible_count_is_what_mobisearch_run_prints_on_digits(tmp_path):
    documented = re.search(r"`mobisearch run` on digits prints\s+`(\[search\] [^`]+)`", README)
    assert documented, "README lost its example of the feasible-genotype line"
    run = Run.open(str(tmp_path / "run"), load_config(preset="digits"))
    assert _first_echo(run) == [documented.group(1)]
    # independent reference: enumerate the whole space against the FLOPs budget
    space, budget = run.space, run.flops_budget()
    model = FlopsCostModel(space.arch, space.candidates)
    genotypes = list(itertools.product(*space.candidates))
    fit = sum(model.cost(g) <= budget for g in genotypes)
    count, size = map(lambda s: int(s.replace(",", "")),
                      re.match(r"\[search\] ([\d,]+) of ([\d,]+) genotypes", documented.group(1)).groups())
    assert (count, size) == (fit, len(genotypes))
