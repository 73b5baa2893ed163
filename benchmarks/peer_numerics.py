"""Where a larq-zoo peer's `.tflite` departs from its Keras model at small inputs: LCE against Keras layer by layer.

`pareto.py` records the export's numerics gate for every model; at 32x32 the larq-zoo QuickNets fail it (on
every test image that is not a near tie the logits differ by more than 1e-3, and 0.2-0.5% change their top-1)
while our models pass on all 10,000 images. This script looks for where the difference comes from. For each
model and input size it builds the model (``weights=None``, 1 channel, 10 classes, softmax dropped, as
`pareto.py`), gives every BatchNorm the exact statistics of ``--calibration`` Fashion-MNIST training images (zero-padded with the background value; so the
moving statistics are realistic without training), then cuts the network after each BatchNorm (and at the
logits), converts each cut with the package's LCE converter and compares LCE's output with Keras's on
``--images`` test images: the largest absolute difference, the output's scale, and the BatchNorm's largest gain
``|gamma| / sqrt(moving variance + epsilon)``.

Also recorded per cut: the median image's relative difference and the share of images above 1e-4 (a systematic
difference moves the median; sign flips at near ties move a few images). ``--train-epochs N`` trains the model
on all 60,000 training images instead (Adam 5e-3 constant, batch 128; the Pareto run trains 8 epochs with
cosine decay). Results are
kept per (model, size, epochs) in ``--json``, each with its command. The reading is in BENCHMARKS.md
(`pareto_md.peer_numerics_markdown`): untrained, the QuickNets match Keras on the typical image at 32 and 64 px;
trained, QuickNetSmall departs from the first BatchNorm whose gain reaches ~1/sqrt(epsilon). Bi-RealNet departs
at once at its first 2x2 map: ``--padding`` times one zero-padded 3x3 binary conv alone (`padding_repro`), which
LCE computes wrongly on 1x1 and 2x2 inputs.

    .venv/bin/python benchmarks/peer_numerics.py --json benchmarks/results/peer_numerics.json
    .venv/bin/python benchmarks/peer_numerics.py --models QuickNetSmall:bn --sizes 32 --train-epochs 1 --images 256 \
        --json benchmarks/results/peer_numerics.json
    .venv/bin/python benchmarks/peer_numerics.py --models Bi-RealNet:bn --sizes 28 --json benchmarks/results/peer_numerics.json
    .venv/bin/python benchmarks/peer_numerics.py --padding --json benchmarks/results/peer_numerics.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import larq_mobisearch  # noqa: E402,F401  (Keras 2 before TensorFlow)
import common  # noqa: E402

FASHION = "/usr/share/datasets/fashion-mnist"


def fashion_labels(split: str, n: int):
    from larq_mobisearch.data.idx import read_idx

    return read_idx(f"{FASHION}/{split}-labels-idx1-ubyte.gz")[:n].astype("int64")


def fashion_images(split: str, n: int, size: int):
    """The first `n` Fashion-MNIST images of `split` ("train" / "t10k"), normalized as the package does
    ([-1, 1]) and centred in size x size on the background as the Pareto run pads them (`pareto.pad_batch`)."""
    import numpy as np

    import pareto
    from larq_mobisearch.data.idx import read_idx

    x = read_idx(f"{FASHION}/{split}-images-idx3-ubyte.gz")[:n].astype(np.float32)[..., None] / 127.5 - 1.0
    return pareto.pad_batch(x, size)


def bn_gain(layer) -> float:
    import numpy as np

    var = layer.moving_variance.numpy()
    gamma = layer.gamma.numpy() if layer.scale else np.ones_like(var)
    return float(np.max(np.abs(gamma) / np.sqrt(var + layer.epsilon)))


def cuts(name: str, size: int, calibration, images, every_bn: bool, train=None, epochs: int = 0
         ) -> List[Dict[str, Any]]:
    """LCE vs Keras after each BatchNorm (or only at the logits) of larq-zoo model `name` at `size`: untrained
    with the BatchNorm statistics of `calibration`, or trained `epochs` epochs on `train` (images, labels)."""
    import numpy as np
    import tensorflow as tf
    import larq_zoo
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    import pareto
    from larq_mobisearch.deploy.converter import convert
    from larq_mobisearch.nn.batchnorm import recalibrate_batchnorm

    tf.keras.backend.clear_session()
    tf.random.set_seed(0)
    fn = larq_zoo
    for part in pareto.ZOO_PEERS[name].split("."):
        fn = getattr(fn, part)
    model = pareto.logits_model(fn(weights=None, input_shape=(size, size, 1), num_classes=10))
    if epochs:
        model.compile(tf.keras.optimizers.Adam(5e-3), tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(train[0], train[1], batch_size=128, epochs=epochs, verbose=2, shuffle=True)
    else:
        recalibrate_batchnorm(model, [calibration[i:i + 128] for i in range(0, len(calibration), 128)])
    bns = [layer for layer in model.layers if isinstance(layer, tf.keras.layers.BatchNormalization)]
    points = (bns if every_bn else []) + [model.layers[-1]]
    rows = []
    for layer in points:
        sub = model if layer is model.layers[-1] else tf.keras.Model(model.inputs, layer.output)
        interpreter = Interpreter(convert(sub), num_threads=1, use_indirect_bgemm=True)
        lce = np.concatenate([interpreter.predict(images[i:i + 1]) for i in range(len(images))])
        keras = sub.predict(images, verbose=0)
        diff = np.abs(lce.reshape(keras.shape) - keras)
        scale = float(np.abs(keras).max())
        per_image = diff.reshape(len(images), -1).max(axis=1) / scale
        rows.append({"layer": layer.name, "shape": list(keras.shape[1:]), "scale": scale,
                     "max_abs_diff": float(diff.max()), "relative": float(diff.max() / scale),
                     "median_image_relative": float(np.median(per_image)),
                     "images_over_1e-4": float(np.mean(per_image > 1e-4)),
                     "bn_gain": bn_gain(layer) if layer in bns else None,
                     "top1_agreement": float(np.mean(lce.reshape(keras.shape).argmax(-1) == keras.argmax(-1)))
                     if layer is model.layers[-1] else None})
        print(f"  {name} {size}px {layer.name:<26} {str(rows[-1]['shape']):<15} scale {rows[-1]['scale']:10.3f} "
              f"max diff {rows[-1]['max_abs_diff']:.3g} (relative {rows[-1]['relative']:.2g}, median image "
              f"{rows[-1]['median_image_relative']:.2g}, {100 * rows[-1]['images_over_1e-4']:.0f}% of images > 1e-4)"
              + (f" BN gain {rows[-1]['bn_gain']:.3g}" if rows[-1]["bn_gain"] is not None else ""), flush=True)
    return rows


def padding_repro(sides=(1, 2, 3, 4, 7), channels: int = 32) -> List[Dict[str, Any]]:
    """One 3x3 "same" binary conv (+ BatchNorm) on random inputs of each side, zero (``pad_values=0``, larq's
    default and Bi-RealNet's) or one padding, sign or magnitude-aware sign weights: LCE against Keras."""
    import larq as lq
    import numpy as np
    import tensorflow as tf
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    from larq_mobisearch.deploy.converter import convert

    rng = np.random.default_rng(0)
    rows = []
    for side in sides:
        for pad in (0.0, 1.0):
            for quantizer in ("ste_sign", "magnitude_aware_sign"):
                tf.keras.backend.clear_session()
                inp = tf.keras.Input((side, side, channels))
                x = lq.layers.QuantConv2D(channels, 3, padding="same", pad_values=pad, input_quantizer="approx_sign",
                                          kernel_quantizer=quantizer, use_bias=False)(inp)
                model = tf.keras.Model(inp, tf.keras.layers.BatchNormalization()(x))
                images = rng.normal(size=(8, side, side, channels)).astype(np.float32)
                interpreter = Interpreter(convert(model), num_threads=1, use_indirect_bgemm=True)
                lce = np.concatenate([interpreter.predict(images[i:i + 1]) for i in range(len(images))])
                keras = model.predict(images, verbose=0)
                rel = float(np.abs(lce.reshape(keras.shape) - keras).max() / np.abs(keras).max())
                rows.append({"side": side, "pad_values": pad, "kernel_quantizer": quantizer, "channels": channels,
                             "relative": rel})
                print(f"  padding: {side}x{side} pad_values={pad:g} {quantizer:<22} relative difference {rel:.2g}",
                      flush=True)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="QuickNetSmall:bn,QuickNet:logits",
                   help="name:bn (cut after every BatchNorm) or name:logits (logits only), comma-separated")
    p.add_argument("--sizes", default="32,64", help="input sizes (28x28 images zero-padded)")
    p.add_argument("--calibration", type=int, default=1024, help="training images for the BatchNorm statistics")
    p.add_argument("--images", type=int, default=64, help="test images compared")
    p.add_argument("--padding", action="store_true",
                   help="instead: one 3x3 'same' binary conv at input sides 1-7, zero or one padding (padding_repro)")
    p.add_argument("--train-epochs", type=int, default=0,
                   help="train each model this many epochs on all 60,000 training images (Adam 5e-3, batch 128) "
                        "instead of calibrating its BatchNorms on untrained weights")
    p.add_argument("--json", default=None, help="write the results here (benchmarks/results/peer_numerics.json); "
                                                "results of other (model, size, epochs) already there are kept")
    args = p.parse_args(argv)
    start = time.time()
    old = json.loads(Path(args.json).read_text()) if args.json and Path(args.json).is_file() else {}
    results = {(r["model"], r["input_size"], r.get("trained_epochs", 0)): r for r in old.get("results", [])}
    padding = old.get("padding")
    if args.padding:
        padding = {"command": common.command_line(), "rows": padding_repro()}
    for item in ([] if args.padding else args.models.split(",")):
        name, _, how = item.partition(":")
        for size in (int(s) for s in args.sizes.split(",")):
            train = None if not args.train_epochs else \
                (fashion_images("train", 60000, size), fashion_labels("train", 60000))
            rows = cuts(name, size, fashion_images("train", args.calibration, size),
                        fashion_images("t10k", args.images, size), every_bn=how == "bn", train=train,
                        epochs=args.train_epochs)
            results[(name, size, args.train_epochs)] = {
                "model": name, "input_size": size, "trained_epochs": args.train_epochs, "test_images": args.images,
                "calibration_images": 0 if args.train_epochs else args.calibration, "command": common.command_line(),
                "cuts": rows}
    out = {"benchmark": "peer_numerics", "padding": padding, "results": sorted(results.values(), key=lambda r: (
        r.get("trained_epochs", 0), r["model"] != "QuickNetSmall", r["input_size"])),
        "seconds": round(time.time() - start, 1)}
    if args.json:
        from larq_mobisearch.fileio import atomic_write_text

        atomic_write_text(args.json, json.dumps(out, indent=1) + "\n")
        print(f"Wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
