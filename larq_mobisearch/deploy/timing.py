"""Host timing of converted models: LCE's interpreter (or TFLite's) in a round-robin loop.

`measure_latencies(flatbuffers)` times several models **together**: one inference of each model in turn, in a
shuffled order, for ``runs`` rounds. On a shared or virtualized host the speed drifts over seconds (other
processes, a busy hyperthread sibling, steal time), so models timed one after the other can differ by tens of
percent for that reason alone; in the round-robin loop every model sees the same conditions, and the mean
time of a network is the sum of the mean times of its parts (what the host latency tables rely on). Each
round's times can be kept (`times_out`) for paired comparisons: the ratio of two models in the same round.

The numbers are cold-cache-ish single-image latencies of LCE's x86 kernels (``use_indirect_bgemm=True``:
grouped ``LceBconv2d`` only runs on the indirect BGEMM kernel): use them to rank models and compare ratios,
never as phone or Raspberry Pi latencies.
"""

from __future__ import annotations

import contextlib
import gc
import sys
import time
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np

from ..choices import RUNTIMES, STATISTICS, check_choice
from .flatbuffer import Flatbuffer, read_flatbuffer

#: Summary of the round-robin timings stored in tables. The mean is the additive one: in the round-robin loop
#: every model sees the same distribution of host conditions, and the expected time of a network is the sum of
#: the expected times of its parts (quantiles such as the median or p10 do not add up).
DEFAULT_STATISTIC = "mean"
DEFAULT_WARMUP = 10
DEFAULT_RUNS = 50


@dataclass(frozen=True)
class LatencyStats:
    """Wall-clock single-image inference times of one model, in milliseconds."""

    median_ms: float
    mean_ms: float
    p10_ms: float
    p90_ms: float
    q25_ms: float
    q75_ms: float
    min_ms: float
    max_ms: float
    std_ms: float
    runs: int
    num_threads: int = 1

    @property
    def iqr_ms(self) -> float:
        return self.q75_ms - self.q25_ms

    @classmethod
    def from_times(cls, times_ms: Sequence[float], num_threads: int = 1) -> "LatencyStats":
        t = np.asarray(times_ms, dtype=np.float64)
        if t.size == 0:
            raise ValueError("LatencyStats needs at least one timing")
        p10, q25, med, q75, p90 = np.percentile(t, [10, 25, 50, 75, 90])
        return cls(
            median_ms=float(med),
            mean_ms=float(t.mean()),
            p10_ms=float(p10),
            p90_ms=float(p90),
            q25_ms=float(q25),
            q75_ms=float(q75),
            min_ms=float(t.min()),
            max_ms=float(t.max()),
            std_ms=float(t.std()),
            runs=int(t.size),
            num_threads=int(num_threads),
        )

    def statistic(self, name: str) -> float:
        """One summary number: "median", "mean", "min" or "p10"."""
        check_choice("Unknown statistic", name, STATISTICS)
        return {"median": self.median_ms, "mean": self.mean_ms, "min": self.min_ms, "p10": self.p10_ms}[name]

    def as_dict(self) -> Dict[str, float]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["iqr_ms"] = self.iqr_ms
        return d

    def __str__(self) -> str:
        return (
            f"median {self.median_ms:.3f} ms (p10 {self.p10_ms:.3f}, p90 {self.p90_ms:.3f}, "
            f"mean {self.mean_ms:.3f}, {self.runs} runs, {self.num_threads} thread(s))"
        )


def make_interpreter(flatbuffer: Flatbuffer, *, num_threads: int = 1, use_indirect_bgemm: bool = True):
    """LCE's Python interpreter for a converted model (bytes or a .tflite path)."""
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    if int(num_threads) < 1:
        raise ValueError(f"num_threads must be >= 1, received {num_threads}")
    return Interpreter(
        read_flatbuffer(flatbuffer), num_threads=int(num_threads), use_indirect_bgemm=bool(use_indirect_bgemm)
    )


@contextlib.contextmanager
def gc_paused():
    """Python's garbage collector off inside the block (no collection pauses inside a timing)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def random_input(shape: Sequence[int], dtype, rng: np.random.Generator) -> np.ndarray:
    """A random array: standard normal for floats, uniform over the whole range for integers."""
    shape = tuple(int(s) for s in shape)
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)


def lce_call(flatbuffer: Flatbuffer, num_threads: int, use_indirect_bgemm: bool, rng):
    """(interpreter, predict, inputs) for LCE's interpreter: ``predict(inputs)`` is the wrapper's predict on one
    batch of random inputs (sets the inputs, invokes, copies the outputs out)."""
    interp = make_interpreter(flatbuffer, num_threads=num_threads, use_indirect_bgemm=use_indirect_bgemm)
    inputs = [random_input(s, t, rng) for s, t in zip(interp.input_shapes, interp.input_types)]
    return interp, interp.interpreter.predict, inputs


def _tflite_call(flatbuffer: Flatbuffer, num_threads: int, rng):
    """(interpreter, predict, inputs) for TensorFlow's plain ``tf.lite.Interpreter``: set input, invoke, copy out."""
    import tensorflow as tf

    interp = tf.lite.Interpreter(model_content=read_flatbuffer(flatbuffer), num_threads=int(num_threads))
    interp.allocate_tensors()
    (inp,), (out,) = interp.get_input_details(), interp.get_output_details()
    x = random_input(inp["shape"], inp["dtype"], rng)

    def predict(inputs):
        interp.set_tensor(inp["index"], inputs[0])
        interp.invoke()
        return interp.get_tensor(out["index"])

    return interp, predict, [x]


def measure_latencies(
    flatbuffers: Mapping[str, Flatbuffer],
    *,
    num_threads: int = 1,
    warmup: int = DEFAULT_WARMUP,
    runs: int = DEFAULT_RUNS,
    use_indirect_bgemm: bool = True,
    min_time_s: float = 0.0,
    seed: int = 0,
    progress: bool = False,
    runtimes: Optional[Mapping[str, str]] = None,
    times_out: Optional[Dict[str, List[float]]] = None,
) -> Dict[str, LatencyStats]:
    """Time several converted models **round-robin**: one inference of each model in turn, `runs` rounds.

    # Arguments
        flatbuffers: {name: flatbuffer bytes or .tflite path}.
        num_threads: interpreter threads.
        warmup: untimed runs of every model first.
        runs: timed rounds; more are made while `min_time_s` has not elapsed.
        use_indirect_bgemm: LCE's indirect BGEMM kernel (required by grouped binary convs).
        seed: seed of the random inputs and of the order within each round.
        progress: a tqdm bar on stderr.
        runtimes: optional {name: "lce" | "tflite"} (default "lce"); "tflite" runs that model in TensorFlow's
            ``tf.lite.Interpreter`` (with its default XNNPACK delegate), e.g. a float reference model.
        times_out: if a dict, receives {name: [ms of round 0, round 1, ...]} (same index = same round).

    # Returns
        {name: LatencyStats}.
    """
    if int(runs) < 1:
        raise ValueError(f"runs must be >= 1, received {runs}")
    if int(warmup) < 0:
        raise ValueError(f"warmup must be >= 0, received {warmup}")
    names = list(flatbuffers)
    rng = np.random.default_rng(seed)
    runtimes = dict(runtimes or {})
    unknown = {n: r for n, r in runtimes.items() if r not in RUNTIMES or n not in flatbuffers}
    if unknown:
        raise ValueError(f"runtimes must map model names to one of {list(RUNTIMES)}; received {unknown}")
    calls = {}
    for name in names:
        if runtimes.get(name, "lce") == "tflite":
            calls[name] = _tflite_call(flatbuffers[name], num_threads, rng)
        else:
            calls[name] = lce_call(flatbuffers[name], num_threads, use_indirect_bgemm, rng)
    for name in names:
        _, predict, inputs = calls[name]
        for _ in range(int(warmup)):
            predict(inputs)
    times: Dict[str, List[float]] = {name: [] for name in names}
    order = list(names)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=int(runs), desc=f"timing {len(names)} model(s)", unit="round", leave=False, file=sys.stderr)
    with gc_paused():
        start = time.perf_counter()
        r = 0
        while r < int(runs) or time.perf_counter() - start < float(min_time_s):
            rng.shuffle(order)
            for name in order:
                _, predict, inputs = calls[name]
                t0 = time.perf_counter()
                predict(inputs)
                times[name].append((time.perf_counter() - t0) * 1e3)
            r += 1
            if bar is not None and r <= int(runs):
                bar.update(1)
    if bar is not None:
        bar.close()
    del calls
    if times_out is not None:
        times_out.update({name: list(times[name]) for name in names})
    return {name: LatencyStats.from_times(times[name], num_threads=int(num_threads)) for name in names}


def measure_latency(
    flatbuffer: Flatbuffer,
    *,
    num_threads: int = 1,
    warmup: int = DEFAULT_WARMUP,
    runs: int = DEFAULT_RUNS,
    use_indirect_bgemm: bool = True,
    min_time_s: float = 0.0,
    seed: int = 0,
) -> LatencyStats:
    """Time single-image inference of one converted model on this host with LCE's interpreter.

    # Arguments
        flatbuffer: the converted model (bytes) or a path to a ``.tflite``.
        num_threads: interpreter threads.
        warmup: untimed runs first (allocations, caches).
        runs: timed runs (each one `predict` of one random image, timed with `time.perf_counter`). More are
            made while `min_time_s` has not elapsed.
        use_indirect_bgemm: use LCE's indirect BGEMM kernel for `LceBconv2d` (required for grouped binary
            convs; the default kernel rejects them with "Grouped binary convolutions are not supported
            with this kernel").
        min_time_s: keep timing until at least this long has passed.
        seed: seed of the random input image.

    # Returns
        `LatencyStats` (milliseconds). The timing covers setting the input, `Invoke` and copying the output.
        To compare models, time them together with `measure_latencies` (round-robin).
    """
    return measure_latencies(
        {"model": flatbuffer},
        num_threads=num_threads,
        warmup=warmup,
        runs=runs,
        use_indirect_bgemm=use_indirect_bgemm,
        min_time_s=min_time_s,
        seed=seed,
    )["model"]
