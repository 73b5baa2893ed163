"""Wall time of one LCE conversion, three ways, side by side in one process, with the ops and outputs compared.

- ``signature`` (the package's default, `deploy.converter.convert_signature`): trace ``model.call`` once, freeze
  the weights into it, save a SavedModel of that one signature, convert it.
- ``variables`` (the package's default until this benchmark): the same signature saved with the model's
  variables (a checkpoint written, and lifted back into constants by the converter). Reproduced here as it was.
- ``keras``: `larq_compute_engine.convert_keras_model` (a full Keras SavedModel: AutoGraph converts every layer).

Models: `build_model(module, uniform groups, ...)` for each module and (input size, width) pair of ``--configs``
(M3 with its pointwise pairs fused, as exported). After one untimed conversion per method, the conversions run
round-robin (every method once per round) so that drift slows all alike; the table gives the median seconds per
method and each method's ratio to ``signature``. Every flatbuffer is checked against the ``signature`` one: the same
op census, and the same LCE outputs on a few random images (max |diff|).

    .venv/bin/python benchmarks/convert_time.py --json benchmarks/results/convert_time.json   # ~5 minutes, idle

Run it alone on the machine: the figures are wall times.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import larq_mobisearch as lm  # noqa: E402  (selects Keras 2 before TensorFlow loads)
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import common  # noqa: E402  (benchmarks/common.py)
import convert_md  # noqa: E402
from larq_mobisearch.deploy import converter, fuse_pointwise_pairs, machine_info, op_census  # noqa: E402
from larq_mobisearch.fileio import atomic_write_json  # noqa: E402
from larq_mobisearch.nn.batchnorm import recalibrate_batchnorm  # noqa: E402
from larq_mobisearch.nn.specs import architecture  # noqa: E402

METHODS = convert_md.METHODS


def convert_with_variables(model: tf.keras.Model) -> bytes:
    """The package's conversion before freezing: the signature saved with the model's variables."""
    import larq_compute_engine as lce

    module = tf.Module()
    module.variables_to_save = list(model.variables)
    options = tf.saved_model.SaveOptions(experimental_custom_gradients=False)
    with tempfile.TemporaryDirectory(prefix="lce_export_") as directory:
        tf.saved_model.save(module, directory, signatures=converter.inference_function(model), options=options)
        return lce.convert_saved_model(directory, target="arm")


def convert(model: tf.keras.Model, method: str) -> bytes:
    """One conversion by `method` (one of `METHODS`), the converter's native stderr captured (not shown)."""
    import larq_compute_engine as lce

    with converter.native_stderr_captured():
        if method == "variables":
            return convert_with_variables(model)
        if method == "keras":
            return lce.convert_keras_model(model, target="arm")
        return converter.convert_signature(model, "arm")


def lce_outputs(flatbuffer: bytes, images: np.ndarray) -> np.ndarray:
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    interp = Interpreter(flatbuffer, num_threads=1, use_indirect_bgemm=True)
    return np.concatenate([interp.predict(images[i:i + 1]) for i in range(len(images))])


def model_for(module: str, size: int, width: float, groups: int, seed: int) -> tf.keras.Model:
    tf.keras.utils.set_random_seed(seed)
    space = lm.SearchSpace(architecture(module, (size, size, 3), 10, width))
    model = lm.build_model(module, space.uniform(groups), (size, size, 3), 10, width)
    images = np.random.default_rng(seed).uniform(-1, 1, (64, size, size, 3)).astype(np.float32)
    recalibrate_batchnorm(model, [images[:32], images[32:]])  # realistic statistics: no sign ties at 0
    return fuse_pointwise_pairs(model) if module == "m3" else model


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--modules", default="m1,m2,m3")
    p.add_argument("--configs", default="16:0.25,32:0.5",
                   help="input size:width multiplier pairs, comma-separated (default 16:0.25,32:0.5)")
    p.add_argument("--groups", type=int, default=2,
                   help="every block at this group count, or the largest one LCE lowers below it (default 2)")
    p.add_argument("--rounds", type=int, default=3, help="conversions per method and model (default 3)")
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args(argv)
    if args.rounds < 1:
        p.error(f"--rounds must be >= 1, received {args.rounds}")
    modules = [m.strip() for m in args.modules.split(",") if m.strip()]
    try:
        configs = [(int(c.split(":")[0]), float(c.split(":")[1])) for c in args.configs.split(",") if c.strip()]
    except (ValueError, IndexError):
        p.error(f"--configs: received {args.configs!r}; expected SIZE:WIDTH pairs such as 16:0.25,32:0.5")
    machine = machine_info(1)
    common.print_machine(machine)
    load_before = common.load_average()
    rows = []
    for (size, width), module in ((c, m) for c in configs for m in modules):
        model = model_for(module, size, width, args.groups, seed=0)
        images = np.random.default_rng(1).uniform(-1, 1, (8,) + model.input_shape[1:]).astype(np.float32)
        seconds = {m: [] for m in METHODS}
        flatbuffers = {method: convert(model, method) for method in METHODS}  # warm-up, not timed
        for r in range(args.rounds):
            for method in METHODS:
                start = time.perf_counter()
                flatbuffers[method] = convert(model, method)
                seconds[method].append(time.perf_counter() - start)
                print(f"{module} {size}px w{width} round {r + 1}/{args.rounds} {method:<9} "
                      f"{seconds[method][-1]:6.2f} s", flush=True)
        reference = flatbuffers["signature"]
        ref_out = lce_outputs(reference, images)
        row = {"module": module, "input_size": size, "width": width, "params": int(model.count_params()),
               "methods": {}}
        for method in METHODS:
            fb = flatbuffers[method]
            row["methods"][method] = {
                "seconds": [round(s, 3) for s in seconds[method]],
                "median_seconds": round(statistics.median(seconds[method]), 3),
                "bytes": len(fb),
                "same_ops": op_census(fb) == op_census(reference),
                "max_abs_output_diff": float(np.abs(lce_outputs(fb, images) - ref_out).max()),
            }
        rows.append(row)
    out = {"benchmark": "convert_time", "command": common.command_line(), "machine": machine,
           "settings": {"configs": [list(c) for c in configs], "groups": args.groups, "rounds": args.rounds,
                        "classes": 10},
           "load_average_before": load_before, "load_average_after": common.load_average(), "rows": rows}
    print()
    print(convert_md.table(out))
    if args.json:
        atomic_write_json(args.json, out, indent=1)
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
