"""Accuracy x latency on Fashion-MNIST: the searched binary MobileNets against what users would otherwise pick.

One training recipe for every model (the run directory's retraining settings: `fashion_joint`'s Adam 5e-3 with
cosine decay, batch 128, no augmentation; ``--epochs`` epochs, default 8 as `table1_joint.py`; one retraining per
seed in ``--seeds``, default 0,1: ``retrain.seed``, the initialization), the official 10k test split, and host LCE
latency of every ``.tflite`` timed together. Four families of rows:

1. **searched** (ours): the package's evolutionary search on the joint width x groups space, on the trained
   supernet of ``--run-dir`` (default ``runs/fashion_joint``, made by ``mobisearch run --preset fashion_joint
   --run-dir runs/fashion_joint``), one search per FLOPs budget (``--fractions``, default 0.35, 0.5, 0.75 x the
   uniform width-1 / groups-1 model, or ``none``) and one per latency budget (``--latency-fractions`` x the
   latency of that model as the host latency table ``--latency-table`` of the joint space predicts it; the
   table is `benchmarks/latency_joint.py`'s, of the data's input size). Search ``pareto-f<fraction>`` or
   ``pareto-l<fraction>`` of the run directory (seed ``--search-seed``, no random-search baseline); its winner is
   retrained from scratch and exported by the pipeline's own ``retrain`` and ``export`` stages in search
   ``pareto-<f|l><fraction>-s<seed>``. The supernet trained only the genotypes within the run's own budget
   (``supernet.sampling=budget``: 0.5x for `fashion_joint`); a search at a larger budget also scores wider
   genotypes whose weights the supernet trained less.
2. **uniform** (ours): uniform (width, groups) points (``--uniform``, default w0.5g1, w0.75g4, w0.75g1, w1g4,
   w1g1: `SearchSpace.uniform(groups, width)`, from 0.30x to 1x the FLOPs of width 1 / groups 1), retrained and
   exported the same way in search ``pareto-w<width>g<groups>-s<seed>``.
3. **larq-zoo** peers: ``QuickNetSmall``, ``QuickNet`` (`larq_zoo.sota`) and ``BiRealNet`` (`larq_zoo.literature`),
   ``weights=None``, 1 input channel (they build with it), 10 classes, their final softmax dropped (the loss takes
   logits, as for our models); trained by the package's `training.fit` with the same `TrainConfig` and data
   stream, exported by `deploy.export.export_report` (which refuses any binary conv that did not become
   ``LceBconv2d``) and verified against Keras on the whole test split.
4. **float** MobileNetV1 (``tf.keras.applications.MobileNet``, alpha 0.25 and 0.5, ``weights=None``): the accuracy
   ceiling of a float network; plain TFLite conversion (`peers.convert_float`), timed in TensorFlow's
   ``tf.lite.Interpreter`` in the same round-robin loop.

Inputs: 28x28x1 for every model that builds at 28 (ours, Bi-RealNet). QuickNetSmall and QuickNet fail at 28 (a
max-pool runs out of pixels) and MobileNetV1 refuses < 32, so they get the same images zero-padded to 32x32 with
the background value (pixel 0, -1 after the package's normalization): the same information, at the cost of
their latency at 32 (``input_size`` and ``input_note`` per row). Padding only those, not every model: our models
are the supernet's, at the data's native size.

Peers and float models (no run directory) train in ``--out-dir`` (default ``runs/benchmarks/pareto``), one
directory per (model, seed): `training.fit`'s per-epoch backup (a killed run resumes at its epoch), ``weights.h5``,
``done.json``, ``model.tflite`` and ``export.json``. The JSON (``--json``) is rewritten after every search and
every finished (model, seed), with the command line and the machine, and it is the ledger across sessions and
machines (run directories do not travel; the committed JSON does): a re-run with the same recipe
(`RECIPE_KEYS`; another one is refused) takes every searched genotype and every (model, seed) result it holds
instead of searching or training again, so only work it lacks needs the supernet or a GPU-free afternoon. The
timing loop runs once every model is trained (``--time-only`` times what is trained so far). Latency per row:
its first seed's ``.tflite`` when it is on this machine, else the same architecture exported untrained
(`timing_flatbuffer`: LCE's and TFLite's kernels do not depend on weight values), 1 thread, mean and p10-p90
over ``--runs`` rounds, and the paired median per-round ratio to ``--reference`` (`common.paired_ratio`).

Reported per row: test top-1 mean ± SE over seeds (SE = sqrt(binomial SE of the mean on the test set^2 + seed
std^2 / seeds): the test images are the same for every seed), the ``.tflite`` top-1, FLOPs / BOPs (ours:
`count_costs`; others: Larq's `ModelProfile`, `common.profile_costs`), ``.tflite`` bytes and latency; the
accuracy-vs-latency PNG with each family's Pareto front (`pareto_md.plot_pareto`); and the reading
(`pareto_md.dominance_reading`): for every uniform, larq-zoo and float point, the most accurate searched point at
or below its latency and the margin ± SE. Goal: the searched front dominates every uniform and larq-zoo point.
Why a search lost (`pareto_md.budget_neighbours`): each latency budget's winner against the uniform point nearest
to it in measured latency, whether the table let the search pick that point, and with ``--supernet-scores`` what
the supernet scored each of our genotypes (`supernet_scores`: held-out top-1 after BatchNorm recalibration, as the
search scores) with the Kendall tau between those scores and test top-1; ``--recalibration-batches`` adds scores
after other numbers of recalibration batches, ``--score-variants`` scores on the supernets of
`ranking_variants.py`'s variants (trained beside the run directory if absent).

    nice -n 15 .venv/bin/python benchmarks/pareto.py --quick --out-dir /tmp/pareto_quick     # smoke run (digits)
    .venv/bin/python benchmarks/pareto.py --json benchmarks/results/pareto.json             # the full benchmark

``--quick``: digits (preset ``digits`` with joint genes, a 1-epoch supernet trained in ``<out-dir>/quick_run``),
seed 0, 1 epoch, one searched budget (0.6x), uniform w0.5g1 and w0.75g1, QuickNetSmall, MobileNetV1 0.25,
20 timing rounds.

Run time: 13 models x 2 seeds x 8 epochs; the slowest are the larq-zoo QuickNets at 32x32 (several times a
searched winner's step). Expect hours on a 2-core host: run it alone, in the background. Every finished (model, seed) is kept: the run can be spread over several sessions.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import larq_mobisearch  # noqa: E402,F401  (selects Keras 2 before TensorFlow is imported)
from larq_mobisearch.fileio import atomic_write_json  # noqa: E402

import common  # noqa: E402  (benchmarks/common.py)
import pareto_md  # noqa: E402

#: Image value of a padded pixel: pixel 0 (the background of Fashion-MNIST and digits) after the package's
#: normalization (pixel / 127.5 - 1).
BACKGROUND = -1.0
#: The size a model that does not build at the data's size is padded to (larq-zoo's QuickNets, MobileNetV1).
PAD_SIZE = 32
ZOO_PEERS = {"QuickNetSmall": "sota.QuickNetSmall", "QuickNet": "sota.QuickNet", "Bi-RealNet": "literature.BiRealNet"}
DEFAULT_FRACTIONS = "0.35,0.5,0.75"
DEFAULT_LATENCY_FRACTIONS = "0.35,0.5,0.65"
DEFAULT_UNIFORM = "w0.5g1,w0.75g4,w0.75g1,w1g4,w1g1"
DEFAULT_PEERS = "QuickNetSmall,QuickNet,Bi-RealNet"
DEFAULT_FLOATS = "0.25,0.5"
#: `--quick`: digits with joint genes, everything tiny.
QUICK_OVERRIDES = (
    "model.space_genes=joint", "supernet.epochs=1", "search.population=4", "search.top_k=2", "search.crossover=2",
    "search.mutation=2", "search.iterations=1", "search.recalibration_batches=2", "search.random_baseline_samples=0",
    "search.flops_budget_fraction=0.6",
)
INSTALL_HINT = ".venv/bin/pip install --no-deps -r benchmarks/requirements-peers.txt"
#: The settings a ledger's results depend on: a re-run may add seeds, rows or timing rounds, not change these.
RECIPE_KEYS = ("preset", "dataset", "image_size", "channels", "num_classes", "module", "width_multiplier",
               "space_genes", "epochs", "optimizer", "learning_rate", "schedule", "batch_size", "augment",
               "test_size", "search_seed", "supernet_sampling", "supernet_budget_fraction", "pad_size", "pad_value",
               "quick")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run-dir", default=None, help="a trained joint-space run (default runs/fashion_joint; "
                                                  "--quick: <out-dir>/quick_run, trained if new)")
    p.add_argument("--preset", default=None, help="preset of a new run directory (--quick: digits)")
    p.add_argument("--seeds", default=None, help="retraining seeds (default 0,1; --quick: 0)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs of every model (default 8; --quick: 1)")
    p.add_argument("--fractions", default=None,
                   help=f"searched FLOPs budgets, x the uniform width-1 / groups-1 model, or 'none' "
                        f"(default {DEFAULT_FRACTIONS})")
    p.add_argument("--latency-table", default=None,
                   help="a host latency table of the run's space (scope block_convs: benchmarks/latency_joint.py) "
                        "for latency-budget searches")
    p.add_argument("--latency-fractions", default=None,
                   help="searched latency budgets, x the table's prediction of the uniform width-1 / groups-1 model "
                        f"(default with --latency-table: {DEFAULT_LATENCY_FRACTIONS}; else none)")
    p.add_argument("--search-seed", type=int, default=0, help="seed of every search (search.seed)")
    p.add_argument("--uniform", default=None, help=f"uniform points w<width>g<groups> (default {DEFAULT_UNIFORM})")
    p.add_argument("--peers", default=None, help=f"larq-zoo peers, or 'none' (default {DEFAULT_PEERS})")
    p.add_argument("--floats", default=None, help=f"MobileNetV1 alphas, or 'none' (default {DEFAULT_FLOATS})")
    p.add_argument("--reference", default="QuickNetSmall", help="the row every paired latency ratio is to "
                                                                "(default QuickNetSmall; else the first searched row)")
    p.add_argument("--runs", type=int, default=None, help="round-robin timing rounds (default 300; --quick: 20)")
    p.add_argument("--warmup", type=int, default=10, help="untimed runs of every model before timing")
    p.add_argument("--out-dir", default="runs/benchmarks/pareto", help="peers' and float models' training dirs")
    p.add_argument("--json", default=None, help="write the results here (intended: benchmarks/results/pareto.json)")
    p.add_argument("--plot", default=None,
                   help="the PNG (default: the --json path with .png, else <out-dir>/pareto.png)")
    p.add_argument("--time-only", action="store_true", help="train nothing: time and report what is exported")
    p.add_argument("--supernet-scores", action="store_true",
                   help="score our rows' genotypes on the run's supernet (the search's evaluator; trains the "
                        "supernet first if the run directory has none) and keep the scores in the JSON")
    p.add_argument("--score-variants", default=None,
                   help="with --supernet-scores: also score on the supernets of these benchmarks/ranking_variants.py "
                        "variants (comma-separated), in the run directory's sibling <parent>/<variant> as that "
                        "benchmark lays them out, each trained first if absent")
    p.add_argument("--recalibration-batches", default=None,
                   help="with --supernet-scores: also score with these BatchNorm recalibration batch counts "
                        "(comma-separated; the search's own count is always scored)")
    p.add_argument("--quick", action="store_true", help="smoke run on digits (see the module docstring)")
    args = p.parse_args(argv)
    quick = args.quick
    args.run_dir = args.run_dir or (os.path.join(args.out_dir, "quick_run") if quick else "runs/fashion_joint")
    args.preset = args.preset or ("digits" if quick else "fashion_joint")
    args.seeds = args.seeds or ("0" if quick else "0,1")
    items = [n.strip() for n in (args.recalibration_batches or "").split(",") if n.strip()]
    if not all(n.isdigit() and int(n) >= 1 for n in items):
        p.error(f"--recalibration-batches: received {args.recalibration_batches!r}; expected integers >= 1")
    args.recalibration_list = [int(n) for n in items]
    args.variant_list = [v.strip() for v in (args.score_variants or "").split(",") if v.strip()]
    if args.variant_list:  # ranking_variants (and what it imports) only when asked for
        from ranking_variants import VARIANTS

        if any(v not in VARIANTS for v in args.variant_list):
            p.error(f"--score-variants: received {args.score_variants!r}; allowed: comma-separated names of "
                    f"{', '.join(VARIANTS)}")
    args.epochs = args.epochs or (1 if quick else 8)
    args.fractions = args.fractions or ("0.6" if quick else DEFAULT_FRACTIONS)
    args.uniform = args.uniform or ("w0.5g1,w0.75g1" if quick else DEFAULT_UNIFORM)
    args.peers = args.peers or ("QuickNetSmall" if quick else DEFAULT_PEERS)
    args.floats = args.floats or ("0.25" if quick else DEFAULT_FLOATS)
    args.runs = args.runs or (20 if quick else 300)
    args.overrides = list(QUICK_OVERRIDES) if quick else []
    args.plot = args.plot or (str(Path(args.json).with_suffix(".png")) if args.json else
                              os.path.join(args.out_dir, "pareto.png"))
    try:
        args.seed_list = [int(s) for s in args.seeds.split(",") if s.strip()]
        args.fraction_list = [] if args.fractions == "none" else \
            [float(f) for f in args.fractions.split(",") if f.strip()]
        latency = args.latency_fractions or (DEFAULT_LATENCY_FRACTIONS if args.latency_table else "none")
        args.latency_fraction_list = [] if latency == "none" else [float(f) for f in latency.split(",") if f.strip()]
        args.uniform_list = parse_uniform(args.uniform)
        args.float_list = [] if args.floats == "none" else [float(a) for a in args.floats.split(",") if a.strip()]
    except ValueError as exc:
        p.error(str(exc))
    args.peer_list = [] if args.peers == "none" else [x.strip() for x in args.peers.split(",") if x.strip()]
    unknown = [x for x in args.peer_list if x not in ZOO_PEERS]
    if unknown:
        p.error(f"--peers: unknown {unknown}; allowed: {sorted(ZOO_PEERS)} or 'none'")
    if not args.seed_list or len(set(args.seed_list)) != len(args.seed_list):
        p.error(f"--seeds: received {args.seeds!r}; expected distinct integers")
    if args.epochs < 1 or any(not 0 < f <= 4 for f in args.fraction_list + args.latency_fraction_list):
        p.error("--epochs must be >= 1 and every --fractions / --latency-fractions value in (0, 4]")
    if args.latency_fraction_list and not args.latency_table:
        p.error("--latency-fractions needs --latency-table (benchmarks/latency_joint.py writes one)")
    if args.latency_table:
        if not os.path.isfile(args.latency_table):
            p.error(f"--latency-table: no file {args.latency_table!r}")
        args.latency_table = os.path.abspath(args.latency_table)
    return args


def parse_uniform(spec: str) -> List[Tuple[float, int]]:
    """``"w0.5g1,w0.75g4"`` -> [(0.5, 1), (0.75, 4)]."""
    out = []
    for item in (x.strip() for x in spec.split(",") if x.strip()):
        m = re.fullmatch(r"w([0-9.]+)g([0-9]+)", item)
        if not m:
            raise ValueError(f"--uniform: received {item!r}; expected w<width>g<groups>, e.g. w0.75g4")
        out.append((float(m.group(1)), int(m.group(2))))
    return out


# ----------------------------------------------------------------------------------------------------------
# Data: the run's own pipelines, padded for the models that need a larger input


def pad_batch(images, size: int):
    """A batch of images [B, H, W, C] centred in size x size, padded with `BACKGROUND` (TensorFlow or NumPy)."""
    import numpy as np
    import tensorflow as tf

    h, w = int(images.shape[1]), int(images.shape[2])
    if (h, w) == (size, size):
        return images
    if h > size or w > size:
        raise ValueError(f"cannot pad {h}x{w} images to {size}x{size}")
    top, left = (size - h) // 2, (size - w) // 2
    pads = [[0, 0], [top, size - h - top], [left, size - w - left], [0, 0]]
    if isinstance(images, np.ndarray):
        return np.pad(images, pads, constant_values=BACKGROUND)
    return tf.pad(images, pads, constant_values=BACKGROUND)


@dataclass
class Streams:
    """The training stream, holdout and test batches of a `Dataset` at one input size (padded if larger)."""

    train_from: Callable[[int], Any]
    steps_per_epoch: int
    holdout: Any
    test: Any

    @classmethod
    def of(cls, data, size: int) -> "Streams":
        pad = (lambda ds: ds) if size == data.input_shape[0] else \
            (lambda ds: ds.map(lambda x, y: (pad_batch(x, size), y)))
        return cls(lambda epoch: pad(data.train_from(epoch)), data.steps_per_epoch,
                   pad(data.eval_batches("holdout")), pad(data.eval_batches("test")))


# ----------------------------------------------------------------------------------------------------------
# Models without a run directory: larq-zoo peers and float MobileNetV1


@dataclass(frozen=True)
class ModelSpec:
    """A model trained outside the pipeline: its row label, family and builder (size, channels, classes) -> logits."""

    label: str
    family: str
    what: str
    build: Callable[[int, int, int], Any]
    binary: bool

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9.]+", "-", self.label.lower()).strip("-")


def logits_model(model):
    """`model` without its final softmax activation (larq-zoo heads end in one; the loss takes logits)."""
    import tensorflow as tf

    last = model.layers[-1]
    if isinstance(last, tf.keras.layers.Activation) and last.get_config().get("activation") == "softmax":
        return tf.keras.Model(model.inputs, model.layers[-2].output, name=model.name)
    return model


def zoo_spec(label: str) -> ModelSpec:
    path = ZOO_PEERS[label]

    def build(size: int, channels: int, classes: int):
        try:
            import larq_zoo
        except ImportError as exc:
            raise SystemExit(f"larq-zoo is not installed ({exc}); install it without dependencies:\n    "
                             f"{INSTALL_HINT}\nor run with --peers none") from None
        fn = larq_zoo
        for part in path.split("."):
            fn = getattr(fn, part)
        return logits_model(fn(weights=None, input_shape=(size, size, channels), num_classes=classes))

    return ModelSpec(label, "larq-zoo", f"larq_zoo.{path}(weights=None), softmax dropped", build, True)


def mobilenet_spec(alpha: float) -> ModelSpec:
    def build(size: int, channels: int, classes: int):
        import tensorflow as tf

        return tf.keras.applications.MobileNet(weights=None, alpha=alpha, input_shape=(size, size, channels),
                                               classes=classes, classifier_activation=None)

    return ModelSpec(f"MobileNetV1 {alpha:g} float", "float",
                     f"tf.keras.applications.MobileNet(alpha={alpha:g}, weights=None), float32", build, False)


def fitting_input_size(spec: ModelSpec, size: int, channels: int, classes: int) -> Tuple[int, Optional[str]]:
    """The data's size if `spec` builds at it, else `PAD_SIZE` (with why, for the row's ``input_note``)."""
    import tensorflow as tf

    try:
        spec.build(size, channels, classes)
        return size, None
    except ValueError as exc:
        if size >= PAD_SIZE:
            raise
        reason = str(exc).strip().splitlines()[0][:160]
        return PAD_SIZE, f"does not build at {size}x{size} ({reason}); images zero-padded to {PAD_SIZE}x{PAD_SIZE}"
    finally:
        tf.keras.backend.clear_session()


def check_settings(out_dir: str, settings: Dict[str, Any]) -> None:
    """Record `settings` in out_dir/settings.json, or refuse if the directory holds a run with other settings."""
    from larq_mobisearch.fingerprint import diff_keys

    path = os.path.join(out_dir, "settings.json")
    if os.path.exists(path):
        with open(path) as f:
            saved = json.load(f)
        diff = diff_keys(saved, settings)
        if diff:
            lines = "\n  ".join(f"{k}: {a!r} there, {b!r} now" for k, a, b in diff[:8])
            raise SystemExit(f"{out_dir} holds a training with other settings:\n  {lines}\nDelete it or use another "
                             "--out-dir.")
        return
    os.makedirs(out_dir, exist_ok=True)
    atomic_write_json(path, settings)


def export_binary(model, images, labels, max_abs_diff: float) -> Tuple[bytes, Dict[str, Any]]:
    """The package's LCE export (refuses a binary conv that is not an ``LceBconv2d``), verified on the images."""
    from larq_mobisearch.deploy.export import export_report

    report = export_report(model, fuse_pointwise=False, images=images, labels=labels, include_float_size=False,
                           max_abs_diff=max_abs_diff)
    info = report.to_json()
    info["tflite_accuracy"] = report.verify.tflite_accuracy
    return report.flatbuffer, info


def tflite_top1(flatbuffer: bytes, images, labels) -> float:
    """Top-1 of a float flatbuffer (batch 1) in TensorFlow's ``tf.lite.Interpreter``."""
    import numpy as np
    import tensorflow as tf

    interp = tf.lite.Interpreter(model_content=flatbuffer, num_threads=1)
    interp.allocate_tensors()
    (inp,), (out,) = interp.get_input_details(), interp.get_output_details()
    correct = 0
    for x, y in zip(images, labels):
        interp.set_tensor(inp["index"], x[None].astype(inp["dtype"]))
        interp.invoke()
        correct += int(np.argmax(interp.get_tensor(out["index"])[0]) == int(y))
    return correct / len(labels)


def export_float(model, images, labels) -> Tuple[bytes, Dict[str, Any]]:
    """Plain TFLite conversion (static batch 1, as peers.py) and its top-1 in TensorFlow's interpreter."""
    from peers import convert_float

    from larq_mobisearch.deploy.export import op_census

    flatbuffer = convert_float(model)
    return flatbuffer, {"tflite_bytes": len(flatbuffer), "op_census": op_census(flatbuffer),
                        "tflite_accuracy": tflite_top1(flatbuffer, images, labels)}


def numerics(exported: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """The export's numerics gate against Keras (`deploy.verify`; None for float models): recorded, not enforced,
    for models that are not ours (the pipeline's export stage refuses ours when it fails)."""
    v = exported.get("verification")
    if not v:
        return None
    return {k: v.get(k) for k in ("passed", "failures", "samples", "near_ties", "top1_agreement_clear",
                                  "max_abs_diff_clear")}


def train_model(spec: ModelSpec, data, cfg, out_dir: str, *, seed: int, verbose: int = 2) -> Dict[str, Any]:
    """Train `spec` on `data` (a `Dataset`: its training stream, holdout and test split) with `cfg` (a
    `TrainConfig`) in `out_dir` by `training.fit`, test it, and export it: binary models through LCE
    (`export_binary`), float ones through TFLite (`export_float`). Resumable: a finished training or export is
    read back, an interrupted training resumes at its epoch.

    # Returns
        The seed's entry: input size (and why, when padded), test top-1 (Keras and ``.tflite``), seconds, paths,
        costs and the export's figures.
    """
    import tensorflow as tf

    from larq_mobisearch.deploy.export import write_tflite
    from larq_mobisearch.deploy.verify import DEFAULT_MAX_ABS_DIFF
    from larq_mobisearch.training import accuracy, fit

    check_settings(out_dir, {"model": spec.label, "what": spec.what, "seed": seed, "train": cfg.model_dump(),
                             "data": data.config.model_dump()})
    done_path, export_path = os.path.join(out_dir, "done.json"), os.path.join(out_dir, "export.json")
    tflite_path = os.path.join(out_dir, "model.tflite")
    if os.path.exists(done_path):  # written last, after the export
        with open(done_path) as f:
            return json.load(f)
    size, note = fitting_input_size(spec, data.input_shape[0], data.input_shape[2], data.num_classes)
    tf.keras.utils.set_random_seed(int(seed))  # the initialization (fit seeds the rest, as the pipeline)
    model = spec.build(size, data.input_shape[2], data.num_classes)
    streams = Streams.of(data, size)
    seconds = None  # unknown when an earlier session trained it (its history.csv has the epochs)
    if os.path.exists(os.path.join(out_dir, "weights.h5")):
        model.load_weights(os.path.join(out_dir, "weights.h5"))
    else:
        start = time.time()
        fit(model, streams.train_from, cfg, out_dir, steps_per_epoch=streams.steps_per_epoch,
            validation=streams.holdout, verbose=verbose)
        seconds = round(time.time() - start, 1)
    test = accuracy(lambda x: model(x, training=False), streams.test)
    images, labels = data.numpy_samples("test", n=None)
    images = pad_batch(images, size)
    if spec.binary:
        flatbuffer, exported = export_binary(model, images, labels, max_abs_diff=DEFAULT_MAX_ABS_DIFF)
    else:
        flatbuffer, exported = export_float(model, images, labels)
    write_tflite(flatbuffer, tflite_path)
    atomic_write_json(export_path, exported)
    entry = {"seed": seed, "test_accuracy": test, "tflite_accuracy": exported["tflite_accuracy"],
             "tflite": tflite_path, "tflite_bytes": len(flatbuffer), "seconds": seconds,
             "input_size": size, "input_note": note, "costs": common.profile_costs(model),
             "fully_binary": exported.get("fully_binary"), "lce_bconv2d_ops": exported.get("num_lce_bconv"),
             "binary_convs": exported.get("num_binary_convs"), "numerics": numerics(exported), "dir": out_dir}
    atomic_write_json(done_path, entry)
    tf.keras.backend.clear_session()
    return entry


# ----------------------------------------------------------------------------------------------------------
# Our models through the pipeline: the searches, the uniform points, retraining and export per seed


def open_base_run(args):
    """The run directory (created from the preset if new), opened without a search. Its supernet is needed
    only for a search the ledger does not hold (`need_supernet`)."""
    return common.shared_run(args.run_dir, args.preset, args.overrides)


def need_supernet(run, args) -> None:
    """Refuse to search without a trained supernet (--quick trains its tiny one)."""
    if not run.done("supernet"):
        if not args.quick:
            raise SystemExit(f"{args.run_dir} has no trained supernet and the ledger has no searched genotype "
                             f"for every budget: run `mobisearch run --preset fashion_joint --run-dir "
                             f"{args.run_dir}` first")
        common.ensure_supernet(run)


#: A searched row's fields that the ledger carries (its genotype and how it was found).
SEARCHED_FIELDS = ("family", "label", "key", "genotype", "budget_kind", "budget_fraction", "flops_budget",
                   "latency_budget_ms", "predicted_ms", "latency_table_sha1", "supernet_fitness", "evaluations", "search",
                   "costs")


def budgets(run, args) -> List[Dict[str, Any]]:
    """The searches: one per FLOPs fraction (``pareto-f<fraction>``) and one per latency fraction
    (``pareto-l<fraction>``: fraction x the latency table's prediction of the uniform width-1 / groups-1 model; the
    table's cost model, loaded once, rides along as ``model``)."""
    out = [{"kind": "flops", "fraction": f, "key": f"f{f:g}", "label": f"searched <= {f:g}x",
            "update": {"flops_budget": None, "flops_budget_fraction": f}} for f in args.fraction_list]
    if args.latency_fraction_list:
        model = latency_model(run, args)
        reference = model.cost(run.space.uniform(1, 1.0))
        for f in args.latency_fraction_list:
            out.append({"kind": "latency", "fraction": f, "key": f"l{f:g}", "label": f"searched <= {f:g}x latency",
                        "model": model,
                        "update": {"flops_budget": None, "flops_budget_fraction": None, "latency_budget_ms": f * reference,
                                   "latency_table": args.latency_table, "latency_threads": 1}})
    return out


def latency_model(run, args):
    from larq_mobisearch.search.costs import WidthLatencyCostModel

    return WidthLatencyCostModel(args.latency_table, run.space, threads=1)


def searched_rows(run, args, known: Dict[str, Dict[str, Any]],
                  on_row: Callable[[List[Dict[str, Any]]], None] = lambda rows: None) -> List[Dict[str, Any]]:
    """One search per budget (`budgets`, resumable); its winner as a row. A budget whose winner the ledger
    (`known`, rows by label) holds is not searched again; `on_row(rows)` after every new search."""
    from larq_mobisearch import pipeline as P

    rows = []
    for budget in budgets(run, args):
        name, label, frac = f"pareto-{budget['key']}", budget["label"], budget["fraction"]
        if known.get(label, {}).get("genotype"):
            rows.append({k: known[label][k] for k in SEARCHED_FIELDS if k in known[label]})
            continue
        search = run.cfg.search.model_copy(update={**budget["update"], "random_baseline_samples": 0,
                                                   "seed": args.search_seed})
        r = P.Run.open(run.run_dir, run.cfg.model_copy(update={"search": search}), verbose=2, search=name)
        if not r.done("search"):
            if args.time_only:
                continue
            need_supernet(run, args)
            what = "FLOPs" if budget["kind"] == "flops" else \
                f"latency ({budget['update']['latency_budget_ms']:.4g} ms)"
            print(f"Search {name}: {what} <= {frac:g}x the uniform width-1 / groups-1 model ...", flush=True)
            try:
                P.search(r)
            except P.RunDirError as exc:
                print(f"  {label}: skipped ({exc})", flush=True)
                continue
        with open(r.search_path("search", "result.json")) as f:
            result = json.load(f)
        genotype = run.space.expand(result["genotype"])
        row = {"family": "searched", "label": label, "key": budget["key"], "genotype": result["genotype"],
               "budget_kind": budget["kind"], "budget_fraction": frac, "flops_budget": result["budgets"]["flops"],
               "supernet_fitness": result["fitness"], "evaluations": result["evaluations"], "search": name,
               "costs": run.genotype_costs(genotype).as_dict()}
        if budget["kind"] == "latency":
            row.update(latency_budget_ms=result["budgets"]["latency_ms"],
                       predicted_ms=budget["model"].cost(genotype),
                       latency_table_sha1=file_sha1(args.latency_table))
        rows.append(row)
        print(f"  {label}: {result['genotype']} ({rows[-1]['costs']['flops']:.4g} FLOPs"
              + (f", predicted {row['predicted_ms']:.4g} ms" if "predicted_ms" in row else "")
              + f"; supernet {100 * result['fitness']:.2f}%)", flush=True)
        on_row(rows)
    return rows


def file_sha1(path: str) -> str:
    import hashlib

    with open(path, "rb") as f:
        return hashlib.sha1(f.read()).hexdigest()


def uniform_rows(run, args) -> List[Dict[str, Any]]:
    space, rows = run.space, []
    for width, groups in args.uniform_list:
        if space.has_widths and width not in space.width_choices:
            raise SystemExit(f"--uniform: width {width:g} is not a width choice of {run.run_dir} "
                             f"({list(space.width_choices)})")
        if not space.has_widths and width != 1.0:
            raise SystemExit(f"--uniform: {run.run_dir} has no width genes; only w1 points")
        genotype = space.uniform(groups, width) if space.has_widths else space.uniform(groups)
        rows.append({"family": "uniform", "label": f"uniform w{width:g} g{groups}", "key": f"w{width:g}g{groups}",
                     "genotype": space.encode(genotype), "width": width, "groups": groups,
                     "costs": run.genotype_costs(genotype).as_dict()})
    return rows


def retrain_and_export(run, row: Dict[str, Any], args, seed: int) -> Optional[Dict[str, Any]]:
    """The pipeline's retrain + export stages of `row`'s genotype in search ``pareto-<key>-s<seed>``."""
    import tensorflow as tf

    from larq_mobisearch import pipeline as P

    cfg = run.cfg.model_copy(update={
        "retrain": run.cfg.retrain.model_copy(update={"epochs": args.epochs, "seed": seed}),
        "export": run.cfg.export.model_copy(update={"verify_samples": run.data.test_size})})
    r = P.Run.open(run.run_dir, cfg, verbose=2, search=f"pareto-{row['key']}-s{seed}")
    genotype = run.space.expand(row["genotype"])
    if not r.done("retrain"):
        if args.time_only:
            return None
        P.retrain(r, genotype, init_from_supernet=False)
        tf.keras.backend.clear_session()
    if not r.done("export"):
        if args.time_only:
            return None
        P.export(r)
        tf.keras.backend.clear_session()
    with open(r.search_path("final", "done.json")) as f:
        final = json.load(f)
    with open(r.search_path("export.json")) as f:
        exported = json.load(f)
    if final["genotype"] != run.space.encode(genotype):
        raise SystemExit(f"{r.search_path()} holds genotype {final['genotype']}, expected {row['genotype']}")
    return {"seed": seed, "test_accuracy": final["test_accuracy"],
            "tflite_accuracy": (exported.get("verify") or {}).get("tflite_accuracy"),
            "tflite_samples": (exported.get("verify") or {}).get("num_samples"),
            "tflite": r.search_path("model.tflite"), "tflite_bytes": exported.get("tflite_bytes"),
            "seconds": final.get("seconds"), "fully_binary": exported.get("fully_binary"),
            "lce_bconv2d_ops": exported.get("num_lce_bconv"), "numerics": numerics(exported), "dir": r.search_path()}


# ----------------------------------------------------------------------------------------------------------
# Rows, timing, summary


def model_rows(args) -> List[Tuple[Dict[str, Any], ModelSpec]]:
    specs = [zoo_spec(label) for label in args.peer_list] + [mobilenet_spec(a) for a in args.float_list]
    return [({"family": s.family, "label": s.label, "what": s.what, "runtime": "lce" if s.binary else "tflite"}, s)
            for s in specs]


def train_other(run, spec: ModelSpec, args, seed: int) -> Optional[Dict[str, Any]]:
    """`train_model` of a model outside the pipeline, with the run's data and retraining recipe (None with
    --time-only when it has not finished)."""
    out_dir = os.path.join(args.out_dir, f"{spec.slug}-s{seed}")
    if not os.path.exists(os.path.join(out_dir, "done.json")):
        if args.time_only:
            return None
        print(f"Training {spec.label} (seed {seed}) in {out_dir} ...", flush=True)
    run.begin_stage(seed)  # as the pipeline's retrain stage: seeds, and the data rebuilt
    cfg = run.cfg.retrain.model_copy(update={"epochs": args.epochs, "seed": seed})
    return train_model(spec, run.data, cfg, out_dir, seed=seed)


def carry_over(rows: List[Dict[str, Any]], known: Dict[str, Dict[str, Any]], test_size: int) -> None:
    """Every (model, seed) result the ledger (`known`, rows by label) holds for `rows`, added to them so that it
    is not trained again; a ledger row under the same label but of another model is refused."""
    for row in rows:
        old = known.get(row["label"])
        if not old:
            continue
        differ = [k for k in ("family", "genotype", "what") if old.get(k) != row.get(k)]
        if differ:
            raise SystemExit(f"the ledger's row {row['label']!r} is another model ({', '.join(differ)}: "
                             f"{[old.get(k) for k in differ]} there, {[row.get(k) for k in differ]} now): use "
                             f"another --json")
        for entry in old.get("per_seed", []):
            add_seed(row, entry, test_size)


def supernet_scores(run, rows: Sequence[Dict[str, Any]], extra_recalibration: Sequence[int] = (),
                    variants: Sequence[str] = ()) -> Dict[str, Any]:
    """Every row's genotype scored on the run's supernet by the search's evaluator (held-out top-1 after BatchNorm
    recalibration; cached in the run directory), with what the scores depend on; ``by_recalibration``: the same
    with each of `extra_recalibration` recalibration batch counts too; ``by_variant``: the scores on the supernet
    of each `ranking_variants.py` variant in `variants` (`variant_run`). The supernet is trained first if the run
    directory has none: then it is a retrained twin of the one the searches used, same recipe and seed."""
    common.ensure_supernet(run)
    genotypes = [run.space.expand(r["genotype"]) for r in rows]
    out: Dict[str, Any] = {}
    for batches in [None] + [n for n in extra_recalibration if n != run.cfg.search.recalibration_batches]:
        evaluator, _ = common.supernet_evaluator(run, f"pareto_scores{'' if batches is None else f'_r{batches}'}"
                                                      f".json", recalibration_batches=batches)
        n = evaluator.context["recalibration_batches"]
        scores = _scores(evaluator, rows, genotypes, f"{n} recalibration batches")
        if batches is None:
            out.update(scores=scores, **evaluator.context)
        out.setdefault("by_recalibration", {})[str(n)] = scores
    for name in variants:
        variant = variant_run(run, name)
        if os.path.abspath(variant.run_dir) == os.path.abspath(run.run_dir):
            continue
        common.ensure_supernet(variant)
        evaluator, _ = common.supernet_evaluator(variant, "pareto_scores.json")
        scores = _scores(evaluator, rows, genotypes, f"variant {name}")
        out.setdefault("by_variant", {})[name] = {"run_dir": str(variant.run_dir), "scores": scores,
                                                 "supernet": evaluator.context["supernet"]}
    return out


def _scores(evaluator, rows: Sequence[Dict[str, Any]], genotypes, what: str) -> Dict[str, float]:
    """`evaluator`'s scores of `genotypes` by their rows' labels, printed on one line."""
    scores = {r["label"]: s for r, s in zip(rows, evaluator.score(genotypes))}
    print(f"  supernet scores, {what}: " + ", ".join(f"{label} {100 * s:.2f}%" for label, s in scores.items()),
          flush=True)
    return scores


def variant_run(run, name: str):
    """`benchmarks/ranking_variants.py`'s run directory of variant `name` beside `run`'s (created from `run`'s saved
    config with the variant's overrides if new), refused if it was made otherwise."""
    from ranking_variants import VARIANTS, check_variant

    from larq_mobisearch import pipeline as P
    from larq_mobisearch.config import load_config
    from larq_mobisearch.pipeline.rundir import saved_config

    run_dir = os.path.join(os.path.dirname(os.path.normpath(run.run_dir)), name)
    cfg = saved_config(run_dir, None) or load_config(overrides=VARIANTS[name][1], base=saved_config(run.run_dir, None))
    check_variant(cfg, name, run_dir)
    return P.Run.open(run_dir, cfg, verbose=0, search=None, echo=print)


def is_complete(rows: Sequence[Dict[str, Any]], args) -> bool:
    """Whether `rows` hold a searched row per budget and every seed of every row (whether this run trained
    them or took them from the ledger: a --time-only run of a finished ledger is complete)."""
    budgets = len(args.fraction_list) + len(args.latency_fraction_list)
    return sum(r["family"] == "searched" for r in rows) == budgets and \
        all({e["seed"] for e in r.get("per_seed", [])} >= set(args.seed_list) for r in rows)


def has_seed(row: Dict[str, Any], seed: int) -> bool:
    return any(e["seed"] == seed for e in row.get("per_seed", []))


def record(row: Dict[str, Any], entry: Dict[str, Any], test_size: int) -> None:
    """`add_seed`, and one line about it (a warning when its `.tflite` fails the numerics gate)."""
    add_seed(row, entry, test_size)
    tfl = entry.get("tflite_accuracy")
    print(f"  seed {entry['seed']} {row['label']:<26} test {entry['test_accuracy']:.4f} .tflite "
          + ("-" if tfl is None else f"{tfl:.4f}") + f" (input {row.get('input_size')})", flush=True)
    if entry.get("numerics") and entry["numerics"].get("passed") is False:
        print(f"  WARNING: the .tflite of {row['label']} differs from Keras beyond the export's tolerance: "
              + "; ".join(entry["numerics"]["failures"]), flush=True)


def add_seed(row: Dict[str, Any], entry: Dict[str, Any], test_size: int) -> None:
    """Record one seed's entry in `row` and refresh its accuracy summary and per-model fields."""
    row["per_seed"] = [e for e in row.get("per_seed", []) if e["seed"] != entry["seed"]] + [entry]
    row["per_seed"].sort(key=lambda e: e["seed"])
    row["accuracy"] = pareto_md.accuracy_summary([e["test_accuracy"] for e in row["per_seed"]], test_size)
    first = row["per_seed"][0]
    for key in ("tflite", "tflite_bytes", "input_size", "input_note", "costs", "fully_binary", "lce_bconv2d_ops"):
        if first.get(key) is not None:
            row[key] = first[key]


def timing_flatbuffer(run, row: Dict[str, Any], spec: Optional[ModelSpec], out_dir: str) -> str:
    """A ``.tflite`` of `row`'s model to time: its first seed's export when it is on this machine, else the same
    architecture exported untrained to ``<out_dir>/timing/`` (the ledger of a fresh checkout has the results but
    not the run directories; LCE's and TFLite's kernels take the same time whatever the weights hold).
    ``row["timed"]`` says which."""
    import tensorflow as tf

    from larq_mobisearch import pipeline as P
    from larq_mobisearch.deploy.export import export_tflite, write_tflite

    if row.get("tflite") and os.path.isfile(row["tflite"]):
        row["timed"] = f"the trained .tflite (seed {row['per_seed'][0]['seed']})"
        return row["tflite"]
    path = os.path.join(out_dir, "timing", re.sub(r"[^a-z0-9.]+", "-", row["label"].lower()).strip("-") + ".tflite")
    if not os.path.isfile(path):
        if spec is None:  # ours: the pipeline's model and export options
            model = P.build_final(run, run.space.expand(row["genotype"]))
            flatbuffer = export_tflite(model, target=run.cfg.export.target, fuse_pointwise=run.cfg.export.fuse_pointwise)
        else:
            size, channels = row["input_size"], run.data.input_shape[2]
            model = spec.build(size, channels, run.data.num_classes)
            if spec.binary:
                flatbuffer = export_tflite(model, fuse_pointwise=False)
            else:
                from peers import convert_float

                flatbuffer = convert_float(model)
        write_tflite(flatbuffer, path)
        tf.keras.backend.clear_session()
    row["timed"] = "the same architecture exported untrained"
    return path


def time_rows(run, rows: List[Dict[str, Any]], specs: Dict[str, ModelSpec], args) -> Optional[str]:
    """Time every row with a trained seed together (round-robin, 1 thread): `timing_flatbuffer` of each;
    latency and paired ratio per row."""
    from larq_mobisearch import deploy as L

    timed = [r for r in rows if r.get("per_seed")]
    if not timed:
        return None
    fbs = {r["label"]: timing_flatbuffer(run, r, specs.get(r["label"]), args.out_dir) for r in timed}
    runtimes = {r["label"]: r.get("runtime", "lce") for r in timed}
    print(f"\nTiming {len(fbs)} models round-robin, 1 thread, {args.runs} rounds ...", flush=True)
    times: Dict[str, List[float]] = {}
    stats = L.measure_latencies(fbs, num_threads=1, warmup=args.warmup, runs=args.runs, runtimes=runtimes,
                                progress=True, seed=0, times_out=times)
    reference = args.reference if args.reference in fbs else \
        next((r["label"] for r in timed if r["family"] == "searched"), timed[0]["label"])
    for r in timed:
        r["latency"] = stats[r["label"]].as_dict()
        r["paired_to_reference"] = common.paired_ratio(times[r["label"]], times[reference])
    return reference


def print_table(result: Dict[str, Any]) -> None:
    ref = result.get("reference")
    epochs = result["settings"]["epochs"]
    print(f"\nAccuracy x latency ({result['settings']['dataset']}, {epochs} epoch{'' if epochs == 1 else 's'}; test "
          f"top-1 mean ± SE over seeds; host latency x86, 1 thread, mean (p10-p90); ratio: paired median to {ref}):")
    print(f"  {'family':<9} {'model':<26} {'in':>3} {'seeds':>5} {'top-1 %':>14} {'tflite %':>8} {'FLOPs':>9} "
          f"{'BOPs':>9} {'.tflite':>10} {'latency ms (p10-p90)':>24} {'ratio':>6}")
    for r in result["rows"]:
        acc, lat, c = r.get("accuracy"), r.get("latency"), r.get("costs") or {}
        print(f"  {r['family']:<9} {r['label']:<26} {r.get('input_size', '-')!s:>3} "
              f"{(acc or {}).get('n', 0):>5} "
              + (f"{acc['mean']:7.2f} ± {acc['se']:4.2f}" if acc else f"{'-':>14}")
              + f" {pareto_md.tflite_top1_text(r):>8}"
              + f" {c.get('flops', float('nan')):9.3g} {c.get('bops', float('nan')):9.3g}"
              + (f" {r['tflite_bytes'] / 1e3:8.0f}kB" if r.get("tflite_bytes") else f" {'-':>10}")
              + (f" {lat['mean_ms']:8.3f} ({lat['p10_ms']:6.3f}-{lat['p90_ms']:6.3f})" if lat else f" {'-':>24}")
              + (f" {r['paired_to_reference']['median']:5.2f}x" if r.get("paired_to_reference") else f" {'-':>6}"))
    if any(pareto_md.numerics_failed(r) for r in result["rows"]):
        print(f"  {pareto_md.NUMERICS_NOTE}")
    for r in result["rows"]:
        if r.get("genotype"):
            print(f"  {r['label']}: {r['genotype']}")
        if r.get("input_note"):
            print(f"  {r['label']}: {r['input_note']}")
    print("\nReading:")
    for line in pareto_md.reading_lines(result["reading"]):
        print(f"  {line}")


def settings(run, args) -> Dict[str, Any]:
    cfg, data = run.cfg, run.data
    return {"run_dir": args.run_dir, "preset": args.preset, "dataset": cfg.data.name, "image_size": cfg.data.image_size,
            "channels": data.input_shape[2], "num_classes": data.num_classes, "module": cfg.model.module,
            "width_multiplier": cfg.model.width_multiplier, "space_genes": cfg.model.space_genes,
            "epochs": args.epochs, "seeds": args.seed_list, "optimizer": cfg.retrain.optimizer,
            "learning_rate": cfg.retrain.learning_rate, "schedule": cfg.retrain.schedule,
            "batch_size": cfg.data.batch_size, "augment": cfg.data.augment, "test_size": data.test_size,
            "budget_fractions": args.fraction_list, "latency_fractions": args.latency_fraction_list,
            "latency_table": args.latency_table and os.path.relpath(args.latency_table),
            "search_seed": args.search_seed,
            "supernet_sampling": cfg.supernet.sampling,
            "supernet_budget_fraction": cfg.search.flops_budget_fraction,
            "uniform": [f"w{w:g}g{g}" for w, g in args.uniform_list], "peers": args.peer_list,
            "float_alphas": args.float_list, "pad_size": PAD_SIZE, "pad_value": BACKGROUND,
            "timing_runs": args.runs, "timing_warmup": args.warmup, "threads": 1,
            "interpreter": "LCE (indirect BGEMM) for binary models, tf.lite.Interpreter for float",
            "accuracy_se": pareto_md.SE_RULE, "quick": args.quick}


def write(result: Dict[str, Any], args) -> None:
    result["reading"] = pareto_md.dominance_reading(pareto_md.result_points(result))
    if args.json:
        atomic_write_json(args.json, result, indent=1)


def main(argv=None) -> int:
    args = parse_args(argv)
    t0 = time.time()
    import tensorflow as tf

    from larq_mobisearch import deploy as L

    tf.get_logger().setLevel("ERROR")
    machine = L.machine_info(1)
    common.print_machine(machine)
    run = open_base_run(args)
    if run.cfg.retrain.loss != "cross_entropy" or run.cfg.retrain.two_step:
        raise SystemExit("pareto.py trains every model with the run's retraining recipe; peers support only "
                         "retrain.loss=cross_entropy without two_step")
    setup = settings(run, args)
    ledger = common.read_ledger(args.json, {k: setup[k] for k in RECIPE_KEYS})
    known = {r["label"]: r for r in ledger.get("rows", [])}
    result: Dict[str, Any] = {"benchmark": "pareto", "command": common.command_line(), "complete": False,
                              "settings": setup, "machine": machine, "rows": [], "plot": args.plot}

    def searched(rows: List[Dict[str, Any]]) -> None:  # the ledger with the new genotypes, nothing of it lost
        labels = {r["label"] for r in rows}
        write({**result, "rows": rows + [r for label, r in known.items() if label not in labels]}, args)

    ours = searched_rows(run, args, known, searched) + uniform_rows(run, args)
    if args.latency_table:  # what the searches' cost model says of the uniform points: which budgets admit them
        model = latency_model(run, args)
        for row in ours:
            if row["family"] == "uniform":
                row["predicted_ms"] = model.cost(run.space.expand(row["genotype"]))
    others = model_rows(args)
    rows = result["rows"] = ours + [row for row, _ in others]
    for row in ours:
        row.update(input_size=run.data.input_shape[0], runtime="lce")
    carry_over(rows, known, run.data.test_size)
    if known:
        print(f"Ledger {args.json}: {sum(r['label'] in known for r in ours if r['family'] == 'searched')} searched "
              f"genotypes and {sum(len(r.get('per_seed', [])) for r in rows)} (model, seed) results taken", flush=True)
    write(result, args)
    for seed in args.seed_list:
        for row in ours:
            entry = None if has_seed(row, seed) else retrain_and_export(run, row, args, seed)
            if entry:
                record(row, entry, run.data.test_size)
                write(result, args)
        for row, spec in others:
            entry = None if has_seed(row, seed) else train_other(run, spec, args, seed)
            if entry:
                record(row, entry, run.data.test_size)
                write(result, args)
    result["supernet_scores"] = supernet_scores(run, ours, args.recalibration_list, args.variant_list) \
        if args.supernet_scores else ledger.get("supernet_scores")
    result["reference"] = time_rows(run, rows, {row["label"]: spec for row, spec in others}, args)
    result["load_average_end"] = common.load_average()
    result["complete"] = is_complete(rows, args)
    result["seconds"] = round(time.time() - t0, 1)
    write(result, args)
    print_table(result)
    if pareto_md.plot_pareto(result, args.plot):
        print(f"\nWrote {args.plot}")
    if args.json:
        print(f"Wrote {args.json}")
    print(f"Total time: {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
