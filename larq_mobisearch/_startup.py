"""Quiet start-up for the `mobisearch` command line, decided before TensorFlow is imported.

TensorFlow prints C++ log lines when it loads ("Unable to register cuDNN/cuFFT/cuBLAS factory" on a CPU
machine, oneDNN notices, XLA service lines) that a user reads as errors. Their level must be chosen by
environment variables *before* TensorFlow loads. `cli.py` calls `quiet_cli_startup` first thing (the package's
``__init__`` does not import TensorFlow, so nothing has loaded it yet). It only acts when this process runs the
``mobisearch`` command (the console script, ``python -m larq_mobisearch.cli``, or a caller that set
``MOBISEARCH_CLI=1``): ``import larq_mobisearch`` never changes TensorFlow's log level, and library users keep
TensorFlow's defaults. Pure Python, standard library only.

Verbosity is counted from the ``-v`` / ``--verbose`` options before the subcommand: 0 sets
``TF_CPP_MIN_LOG_LEVEL=3`` (errors reach the user as Python exceptions, which the CLI prints), 1 sets 1 (warnings
and errors), 2 or more sets 0 (everything). A value already in the environment is never overridden.
"""

from __future__ import annotations

import os
import re
import sys
from typing import List, Optional, Sequence

CLI_MODULE = "larq_mobisearch.cli"
CLI_SCRIPT = "mobisearch"
#: Set by a process that runs the CLI in some other way (e.g. a wrapper script) to get the same start-up.
CLI_ENV = "MOBISEARCH_CLI"


def cli_arguments(argv: Optional[Sequence[str]] = None, orig_argv: Optional[Sequence[str]] = None) -> Optional[List[str]]:
    """The command-line arguments if this process runs the `mobisearch` CLI, else None."""
    argv = list(sys.argv if argv is None else argv)
    orig = list(getattr(sys, "orig_argv", []) if orig_argv is None else orig_argv)
    if argv and os.path.basename(argv[0]) in (CLI_SCRIPT, CLI_SCRIPT + ".exe"):
        return argv[1:]
    for i, arg in enumerate(orig[:-1]):
        if arg == "-m" and orig[i + 1] == CLI_MODULE:
            return orig[i + 2:]
    if os.environ.get(CLI_ENV) == "1":
        return argv[1:]
    return None


def verbosity(args: Sequence[str]) -> int:
    """How many ``-v`` (``-vv`` counts 2, ``--verbose`` 1) come before the subcommand."""
    count = 0
    for arg in args:
        if arg == "--verbose":
            count += 1
        elif re.fullmatch(r"-v+", arg):
            count += len(arg) - 1
        elif not arg.startswith("-"):
            break
    return count


def tf_log_level(level: int) -> str:
    """``TF_CPP_MIN_LOG_LEVEL`` for a CLI verbosity: 0 -> "3", 1 -> "1", 2+ -> "0"."""
    return "3" if level <= 0 else "1" if level == 1 else "0"


def quiet_cli_startup() -> Optional[int]:
    """If this process runs the CLI, set TensorFlow's log level from its ``-v`` count; returns the count."""
    args = cli_arguments()
    if args is None:
        return None
    level = verbosity(args)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", tf_log_level(level))
    return level
