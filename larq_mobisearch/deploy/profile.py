"""Per-op time breakdown of a flatbuffer on this host, with LCE's interpreter.

LCE's Python interpreter exposes no profiler (only ``predict``; ``lce_benchmark_model
--enable_op_profiling=true`` is the on-device way, `benchmark_output`), and TensorFlow's
``tf.lite.Interpreter`` cannot run LCE's custom ops. So each operator is cut out of the network into a
**single-op model** (its constant inputs kept, its other inputs made model inputs, `single_op_model`), next to
an **empty twin** with the same inputs and outputs and no operator (`empty_twin`): the twin costs what the
single-op model costs besides the op itself (setting the inputs, invoking, copying the output). Each round
runs every op's pair back to back (in a random order, pairs shuffled) and the whole network once, so that a
single-op model and its twin see the same host conditions even on a loaded machine, and

    op time = median over rounds of [single-op model - empty twin]

The sum of the op times is compared with the whole network's median time (the difference is what the isolated
runs do not see: interpreter overhead between ops, cache effects between consecutive ops).
"""

from __future__ import annotations

import copy
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Union

import numpy as np

from .flatbuffer import Flatbuffer, Op, TFLiteModel, read_model, schema
from .timing import gc_paused, lce_call


def _submodel(model: TFLiteModel, op: Optional[Op], inputs, outputs) -> bytes:
    """A flatbuffer holding `op` (or no op) of subgraph 0 of `model`, with the given tensors as inputs/outputs."""
    s = schema()
    src = model.model
    graph = src.subgraphs[0]
    used = [t.index for t in inputs] + [t.index for t in outputs]
    if op is not None:
        used += [t.index for t in op.inputs if t is not None]
    order = list(dict.fromkeys(used))
    index = {old: new for new, old in enumerate(order)}
    new = s.ModelT()
    new.version = src.version
    new.operatorCodes = src.operatorCodes
    new.description = b"single-op model cut out by larq_mobisearch.deploy.profile"
    new.buffers = [s.BufferT()]
    tensors = []
    for old in order:
        t = copy.copy(graph.tensors[old])
        buffer = src.buffers[t.buffer] if 0 < t.buffer < len(src.buffers) else None
        if buffer is not None and buffer.data is not None and len(buffer.data):
            new.buffers.append(buffer)
            t.buffer = len(new.buffers) - 1
        else:
            t.buffer = 0
        tensors.append(t)
    sub = s.SubGraphT()
    sub.tensors = tensors
    sub.inputs = np.array([index[t.index] for t in inputs], dtype=np.int32)
    sub.outputs = np.array([index[t.index] for t in outputs], dtype=np.int32)
    sub.operators = []
    if op is not None:
        o = copy.copy(graph.operators[op.index])
        o.inputs = np.array([index[t.index] if t is not None else -1 for t in op.inputs], dtype=np.int32)
        o.outputs = np.array([index[t.index] for t in op.outputs], dtype=np.int32)
        sub.operators = [o]
    sub.name = b"op"
    new.subgraphs = [sub]
    out = TFLiteModel.__new__(TFLiteModel)
    out.data, out.model, out._ops = model.data, new, {}
    return out.to_bytes()


def single_op_model(model: TFLiteModel, op: Op) -> bytes:
    """A flatbuffer running only `op`: its non-constant inputs are the model inputs, its outputs the outputs."""
    inputs = [t for t in op.inputs if t is not None and not t.constant]
    return _submodel(model, op, inputs, list(op.outputs))


def empty_twin(model: TFLiteModel, op: Op) -> bytes:
    """Same inputs and outputs as `single_op_model(model, op)`, no operator: its time is the call overhead."""
    inputs = [t for t in op.inputs if t is not None and not t.constant]
    return _submodel(model, None, inputs, list(op.outputs))


@dataclass
class OpTime:
    """One operator's share of the network time."""

    index: int
    name: str
    output_shape: List[int]
    ms: float
    single_op_ms: float
    overhead_ms: float
    output_name: str = ""


@dataclass
class OpProfile:
    """`op_profile` result: per op, per op type, and the whole network (milliseconds, medians over rounds)."""

    ops: List[OpTime]
    network_ms: float
    sum_ops_ms: float
    num_threads: int
    runs: int
    by_type: Dict[str, Dict[str, float]] = field(default_factory=dict)

    def to_json(self) -> Dict[str, Any]:
        return asdict(self)

    def top(self, n: int = 10) -> List[OpTime]:
        return sorted(self.ops, key=lambda o: -o.ms)[:n]


def op_profile(
    flatbuffer: Union[Flatbuffer, TFLiteModel],
    *,
    num_threads: int = 1,
    runs: int = 20,
    warmup: int = 3,
    seed: int = 0,
    progress: bool = False,
    use_indirect_bgemm: bool = True,
) -> OpProfile:
    """Time every operator of subgraph 0 of `flatbuffer` on this host (see the module docstring).

    # Arguments
        flatbuffer: bytes, a path, or a parsed `TFLiteModel`.
        num_threads: interpreter threads.
        runs: rounds (each: every op's single-op model and empty twin back to back, and the network once).
        warmup: untimed runs of every model first.
        seed: seed of the random inputs and of the orders.
        progress: a tqdm bar on stderr.
        use_indirect_bgemm: LCE's indirect BGEMM kernel (required by grouped binary convs).

    # Returns
        An `OpProfile`: op times (median over rounds of single-op model minus empty twin), totals per op type
        (ms, count, share of the sum), the network's median time and the sum of the op times.
    """
    import time

    if int(runs) < 1:
        raise ValueError(f"runs must be >= 1, received {runs}")
    model = read_model(flatbuffer)
    ops = model.ops(0)
    rng = np.random.default_rng(seed)
    network = lce_call(model.data, num_threads, use_indirect_bgemm, rng)
    pairs = [(lce_call(single_op_model(model, op), num_threads, use_indirect_bgemm, rng),
              lce_call(empty_twin(model, op), num_threads, use_indirect_bgemm, rng)) for op in ops]
    for _, predict, inputs in [network] + [c for pair in pairs for c in pair]:
        for _ in range(int(warmup)):
            predict(inputs)

    def timed(call) -> float:
        _, predict, inputs = call
        t0 = time.perf_counter()
        predict(inputs)
        return (time.perf_counter() - t0) * 1e3

    diffs = np.zeros((int(runs), len(ops)))
    single = np.zeros_like(diffs)
    empty = np.zeros_like(diffs)
    whole = np.zeros(int(runs))
    order = np.arange(len(ops))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=int(runs), desc=f"profiling {len(ops)} ops", unit="round", leave=False)
    with gc_paused():
        for r in range(int(runs)):
            rng.shuffle(order)
            whole[r] = timed(network)
            for i in order:
                op_call, twin_call = pairs[i]
                if rng.random() < 0.5:
                    single[r, i], empty[r, i] = timed(op_call), timed(twin_call)
                else:
                    empty[r, i], single[r, i] = timed(twin_call), timed(op_call)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    diffs = single - empty
    out = [OpTime(op.index, op.name, list(op.outputs[0].shape) if op.outputs else [],
                  float(np.median(diffs[:, k])), float(np.median(single[:, k])), float(np.median(empty[:, k])),
                  op.outputs[0].name if op.outputs else "")
           for k, op in enumerate(ops)]
    by_type: Dict[str, Dict[str, float]] = defaultdict(lambda: {"count": 0, "ms": 0.0})
    for o in out:
        by_type[o.name]["count"] += 1
        by_type[o.name]["ms"] += o.ms
    total = sum(o.ms for o in out)
    for v in by_type.values():
        v["share"] = v["ms"] / total if total > 0 else 0.0
    ordered = dict(sorted(by_type.items(), key=lambda kv: -kv[1]["ms"]))
    return OpProfile(out, float(np.median(whole)), total, int(num_threads), int(runs), ordered)
