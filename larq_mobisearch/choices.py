"""The allowed values of every enumerated setting, in one place, and the one way to report a bad value.

Pure Python: the config, the CLI and every module that checks such a value import it from here.
"""

from __future__ import annotations

from typing import Any, Iterable, Tuple, Type

MODULES: Tuple[str, ...] = ("m1", "m2", "m3")  #: binary MobileNet modules (paper §3.2.2)
#: stems: MobileNet's float 3x3 stride-2 conv (2x down), or QuickNet's float conv s2 + depthwise s2 + 1x1 (4x down)
STEMS: Tuple[str, ...] = ("mobilenet", "quicknet")
DEFAULT_STEM = STEMS[0]  #: the paper's; tables and search hashes name a stem only when it is another
SPACE_GENES: Tuple[str, ...] = ("groups", "width", "joint")  #: genes searched: group counts, block widths, both
SPACE_MODES: Tuple[str, ...] = ("lce", "paper")  #: search spaces: LCE-lowerable group counts, or all divisors
SCHEDULES: Tuple[str, ...] = ("cosine", "linear", "constant")  #: learning-rate schedules
#: "bop": larq's Bop for the binary kernels (CaseOptimizer), Adam for every other weight
OPTIMIZERS: Tuple[str, ...] = ("adam", "sgd", "bop")
FLOAT_OPTIMIZERS: Tuple[str, ...] = ("adam", "sgd")  #: optimizers of a real-valued model (the teacher)
ACTIVATIONS: Tuple[str, ...] = ("approx_sign", "rsign")  #: binary activations: ApproxSign, ReActNet's RSign
NONLINEARITIES: Tuple[str, ...] = ("none", "rprelu")  #: after each residual add: nothing, ReActNet's RPReLU
#: training losses: cross-entropy with the labels, or ReActNet's distributional loss (distillation)
LOSSES: Tuple[str, ...] = ("cross_entropy", "distributional")
#: the distillation teacher: the real-valued twin trained in the run directory, or a saved Keras model
TEACHER_SOURCES: Tuple[str, ...] = ("twin", "path")
BASELINES: Tuple[str, ...] = ("mobinet",)  #: named fixed-genotype baselines (MoBiNet-style: depthwise 3x3)
EXPORT_TARGETS: Tuple[str, ...] = ("arm", "xcore")  #: LCE converter targets
EXPORT_METHODS: Tuple[str, ...] = ("signature", "keras")  #: how a Keras model reaches the LCE converter
CACHE_MODES: Tuple[str, ...] = ("auto", "memory", "none")  #: tf.data caching of the data splits
#: built-in data sources (`data.name`); any other name is read as a prepared TFDS dataset
DATASETS: Tuple[str, ...] = ("digits", "fashion_mnist", "mnist", "idx", "folder")
STRATEGIES: Tuple[str, ...] = ("default", "mirrored", "multi_worker", "tpu")  #: tf.distribute strategies
COMMUNICATION: Tuple[str, ...] = ("auto", "ring", "nccl")  #: multi-worker all-reduce implementations
STATISTICS: Tuple[str, ...] = ("median", "mean", "min", "p10")  #: summaries of repeated latency timings
RUNTIMES: Tuple[str, ...] = ("lce", "tflite")  #: interpreters a latency benchmark can time a model with
MAPPINGS: Tuple[str, ...] = ("auto", "names", "order")  #: profiled ops -> layers, for device latency tables
#: parents of each search generation: the top-K of every genotype evaluated so far ("elitist", SPOS and
#: MetaPruning code, the default) or of the current generation only ("generation", the paper's literal reading)
SELECTIONS: Tuple[str, ...] = ("elitist", "generation")
#: genotypes a supernet trains: within the search's FLOPs budget, or uniform over the whole space
SUPERNET_SAMPLINGS: Tuple[str, ...] = ("budget", "uniform")


def not_allowed(message: str, allowed: Iterable[Any], *, error: Type[Exception] = ValueError) -> Exception:
    """The error for a value outside its allowed set: ``"<message>; allowed: [...]"``.

    # Arguments
        message: what was received and, optionally, why it is refused, e.g.
            ``"Invalid group count 3 for layer block1_conv3x3 (gene 0): groups must divide 32"``.
        allowed: the values that would have been accepted.
        error: the exception class to build.

    # Returns
        The exception, to raise: ``raise not_allowed(f"Unknown module {module!r}", MODULES)``.
    """
    return error(f"{message}; allowed: {list(allowed)}")


def check_choice(what: str, received: Any, allowed: Iterable[Any], *, error: Type[Exception] = ValueError) -> Any:
    """`received` if it is one of `allowed`, else raise ``not_allowed(f"{what} {received!r}", allowed)``."""
    allowed = tuple(allowed)
    if received not in allowed:
        raise not_allowed(f"{what} {received!r}", allowed, error=error)
    return received
