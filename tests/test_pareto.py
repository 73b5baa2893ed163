"""benchmarks/pareto.py and its BENCHMARKS.md section (benchmarks/pareto_md.py): the Pareto front against a
brute-force dominance check, the dominance reading and the standard error on hand-computed cases, the padding of
inputs; and (issue 23's "must show") a larq-zoo QuickNetSmall trained for a couple of steps through pareto.py's own
training function, on images padded from 28x28 to the 32x32 it needs, and exported fully binary through the
package's LCE export."""

import json
import math
import random
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import larq_mobisearch  # noqa: F401  (Keras 2 before TensorFlow)

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import pareto_md as md  # noqa: E402


# ----------------------------------------------------------------------------------------------------------
# Pareto front and dominance


def _brute_force_front(points):
    """Indices no other point dominates: written as the definition, every pair compared."""
    keep = []
    for i, (li, ai) in enumerate(points):
        beaten = any((lj <= li and aj >= ai) and (lj < li or aj > ai) for j, (lj, aj) in enumerate(points) if j != i)
        if not beaten:
            keep.append(i)
    return keep


@pytest.mark.parametrize("seed", range(8))
def test_pareto_front_equals_the_brute_force_definition(seed):
    rng = random.Random(seed)
    # small integer grids: many ties in latency, accuracy or both
    points = [(rng.randint(1, 6), rng.randint(80, 86)) for _ in range(rng.randint(1, 14))]
    got = md.pareto_front(points)
    assert sorted(got) == _brute_force_front(points)
    lats = [points[i][0] for i in got]
    accs = [points[i][1] for i in got]
    assert lats == sorted(lats) and accs == sorted(accs)  # a front: slower only if more accurate


def test_pareto_front_hand_cases():
    assert md.pareto_front([]) == []
    assert md.pareto_front([(1.0, 90.0)]) == [0]
    # (2, 89) is slower and less accurate than (1, 90); (3, 91) is slower and more accurate
    assert md.pareto_front([(2.0, 89.0), (3.0, 91.0), (1.0, 90.0)]) == [2, 1]
    # same latency: only the more accurate; same accuracy: only the faster; exact duplicates both stay
    assert md.pareto_front([(1.0, 88.0), (1.0, 89.0)]) == [1]
    assert md.pareto_front([(2.0, 89.0), (1.0, 89.0)]) == [1]
    assert md.pareto_front([(1.0, 89.0), (1.0, 89.0)]) == [0, 1]


def _p(label, family, lat, top1, se=0.3):
    return {"label": label, "family": family, "latency_ms": lat, "top1": top1, "se": se}


def test_dominance_picks_the_most_accurate_searched_point_at_or_below_the_latency():
    searched = [_p("s1", "searched", 0.2, 89.0, 0.3), _p("s2", "searched", 0.3, 90.0, 0.4),
                _p("s3", "searched", 0.5, 92.0, 0.3)]
    peer = _p("qns", "larq-zoo", 0.3, 89.5, 0.3)
    d = md.dominance(peer, searched)  # s3 is slower: not allowed; s2 (equal latency) is the best allowed
    assert d["by"] == "s2" and d["dominated"]
    assert d["margin"] == pytest.approx(0.5)
    assert d["margin_se"] == pytest.approx(0.5)  # sqrt(0.4^2 + 0.3^2)
    assert not d["dominated_2se"]
    fast = md.dominance(_p("fast", "uniform", 0.1, 80.0), searched)
    assert fast["by"] is None and not fast["dominated"] and fast["margin"] is None
    worse = md.dominance(_p("u", "uniform", 0.25, 89.5, 0.1), searched)
    assert worse["by"] == "s1" and worse["margin"] == pytest.approx(-0.5) and not worse["dominated"]


def test_dominance_reading_goal_counts_uniform_and_zoo_but_not_float():
    points = [_p("s1", "searched", 0.2, 89.0, 0.1), _p("s2", "searched", 0.4, 91.0, 0.1),
              _p("u1", "uniform", 0.25, 88.0, 0.1), _p("qns", "larq-zoo", 1.0, 90.0, 0.1),
              _p("mbv1", "float", 0.5, 93.0, 0.1)]
    r = md.dominance_reading(points)
    by = {e["label"]: e for e in r["entries"]}
    assert set(by) == {"u1", "qns", "mbv1"}
    assert by["u1"]["dominated"] and by["qns"]["dominated"] and not by["mbv1"]["dominated"]
    assert not by["mbv1"]["in_goal"]
    assert r["goal_met"] is True and r["goal_met_2se"] is True  # margins 1.0 and 1.0 vs 2 SE = 0.28
    points[3] = _p("qns", "larq-zoo", 1.0, 91.5, 0.1)
    assert md.dominance_reading(points)["goal_met"] is False
    assert md.dominance_reading([p for p in points if p["family"] != "searched"])["goal_met"] is None


def test_accuracy_summary_combines_the_test_binomial_error_and_the_seed_spread():
    s = md.accuracy_summary([0.90, 0.92], test_size=10000)
    assert s["mean"] == pytest.approx(91.0) and s["n"] == 2
    assert s["std"] == pytest.approx(math.sqrt(2.0))
    binomial = 100 * math.sqrt(0.91 * 0.09 / 10000)
    assert s["binomial_se"] == pytest.approx(binomial)
    assert s["se"] == pytest.approx(math.sqrt(binomial ** 2 + 2.0 / 2))
    one = md.accuracy_summary([0.5], test_size=100)
    assert one["std"] == 0.0 and one["se"] == pytest.approx(5.0)  # 100 * sqrt(0.25 / 100)
    with pytest.raises(ValueError):
        md.accuracy_summary([], test_size=10)


def _result(complete=True):
    rows = []
    for fam, label, lat, accs in (("searched", "searched <= 0.5x", 0.30, [0.905, 0.909]),
                                  ("uniform", "uniform w0.75 g4", 0.32, [0.899, 0.901]),
                                  ("larq-zoo", "QuickNetSmall", 1.50, [0.910, 0.914]),
                                  ("float", "MobileNetV1 0.25 float", 0.20, [0.915, 0.917])):
        acc = md.accuracy_summary(accs, 10000)
        rows.append({"family": fam, "label": label, "input_size": 32 if fam in ("larq-zoo", "float") else 28,
                     "accuracy": acc, "costs": {"flops": 4e5, "bops": 2e7}, "tflite_bytes": 120000,
                     "per_seed": [{"seed": i, "test_accuracy": a, "tflite_accuracy": a} for i, a in enumerate(accs)],
                     "latency": {"mean_ms": lat, "p10_ms": lat * 0.9, "p90_ms": lat * 1.1},
                     "paired_to_reference": {"median": lat / 1.5}})
    rows[0]["genotype"] = "1-1_w16-32"
    result = {"command": "python benchmarks/pareto.py", "complete": complete, "reference": "QuickNetSmall",
              "settings": {"dataset": "fashion_mnist", "epochs": 8, "optimizer": "adam", "learning_rate": 5e-3,
                           "schedule": "cosine", "batch_size": 128, "seeds": [0, 1], "test_size": 10000,
                           "run_dir": "runs/fashion_joint", "budget_fractions": [0.5], "image_size": 28,
                           "channels": 1, "timing_runs": 300},
              "rows": rows}
    result["reading"] = md.dominance_reading(md.result_points(result))
    return result


def test_pareto_markdown_has_every_row_the_plot_and_the_verdict():
    result = _result(complete=False)
    text = md.pareto_markdown(result)
    assert sum(line.startswith("|") for line in text.splitlines()) == 1 + 1 + 4  # header, separator, 4 rows
    assert "| searched | searched <= 0.5x | 28 | 2 | 90.70 ± " in text
    assert "| larq-zoo | QuickNetSmall | 32 | 2 | 91.20 ± " in text and "1 (reference)" in text
    assert "`1-1_w16-32`" in text and f"]({md.PARETO_PLOT})" in text
    assert "QuickNetSmall (larq-zoo" in text and "NOT dominated" in text  # 91.2 > 90.7
    assert "**NOT MET**" in text and "Incomplete" in text
    assert md.pareto_markdown(None).startswith("## ")
    assert md.NUMERICS_MARK not in text
    result["rows"][2]["per_seed"][1]["numerics"] = {"passed": False, "failures": ["max |logit difference| 2"]}
    marked = md.pareto_markdown(result)
    assert "| 91.20† |" in marked and md.NUMERICS_NOTE in marked


def test_pareto_markdown_reports_the_supernet_scores_per_recalibration_and_per_variant():
    result = _result()
    ours = {"searched <= 0.5x": 0.88, "uniform w0.75 g4": 0.89}
    result["rows"].append({**result["rows"][1], "label": "uniform w1 g1", "accuracy": md.accuracy_summary(
        [0.92, 0.92], 10000)})
    ours["uniform w1 g1"] = 0.87  # backwards: the most accurate scored lowest
    result["supernet_scores"] = {"scores": ours, "supernet": "abc", "recalibration_batches": 8,
                                 "by_recalibration": {"8": ours, "128": {**ours, "uniform w1 g1": 0.895}},
                                 "by_variant": {"uniform": {"run_dir": "r/uniform", "supernet": "def", "scores": {
                                     "searched <= 0.5x": 0.88, "uniform w0.75 g4": 0.87, "uniform w1 g1": 0.9}}}}
    text = " ".join(md.pareto_markdown(result).split())
    assert "supernet weights `abc`" in text and "over our 3 rows: Kendall tau -1.00" in text
    assert "(the search uses 8): 8 batches: tau -1.00 (p 0.33); 128 batches: tau +0.33 (p 1.00)." in text
    assert "`uniform` (`r/uniform`): tau +1.00 (p 0.33)." in text


def test_plot_pareto_writes_a_png(tmp_path):
    path = md.plot_pareto(_result(), str(tmp_path / "p.png"))
    assert path and Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert md.plot_pareto({"rows": []}, str(tmp_path / "none.png")) is None


# ----------------------------------------------------------------------------------------------------------
# pareto.py's helpers (TensorFlow, no training)


def test_parse_uniform_and_quick_defaults():
    import pareto

    assert pareto.parse_uniform("w0.5g1, w0.75g4") == [(0.5, 1), (0.75, 4)]
    with pytest.raises(ValueError):
        pareto.parse_uniform("0.5x1")
    args = pareto.parse_args(["--quick", "--out-dir", "/tmp/x"])
    assert args.seed_list == [0] and args.epochs == 1 and args.peer_list == ["QuickNetSmall"]
    assert args.run_dir == "/tmp/x/quick_run" and args.float_list == [0.25]
    full = pareto.parse_args(["--json", "out/p.json"])
    assert full.seed_list == [0, 1] and full.fraction_list == [0.35, 0.5, 0.75] and full.epochs == 8
    assert len(full.uniform_list) >= 4 and full.plot == "out/p.png"
    with pytest.raises(SystemExit):
        pareto.parse_args(["--peers", "ResNet"])
    assert full.recalibration_list == [] and \
        pareto.parse_args(["--recalibration-batches", "32, 128"]).recalibration_list == [32, 128]
    for bad in ("0", "8,x"):
        with pytest.raises(SystemExit):
            pareto.parse_args(["--recalibration-batches", bad])
    assert full.variant_list == [] and pareto.parse_args(["--score-variants", "uniform"]).variant_list == ["uniform"]
    with pytest.raises(SystemExit):
        pareto.parse_args(["--score-variants", "uniform,bigger"])


def test_pad_batch_centres_the_image_on_the_background_value():
    import pareto
    import tensorflow as tf

    x = np.arange(2 * 28 * 28, dtype=np.float32).reshape(2, 28, 28, 1) / 1000.0
    padded = pareto.pad_batch(x, 32)
    assert padded.shape == (2, 32, 32, 1)
    np.testing.assert_array_equal(padded[:, 2:30, 2:30], x)
    mask = np.ones((32, 32), bool)
    mask[2:30, 2:30] = False
    assert np.all(padded[:, mask] == pareto.BACKGROUND)
    np.testing.assert_array_equal(pareto.pad_batch(tf.constant(x), 32).numpy(), padded)
    assert pareto.pad_batch(x, 28) is x
    with pytest.raises(ValueError):
        pareto.pad_batch(x, 16)


# ----------------------------------------------------------------------------------------------------------
# Issue 23's "must show": a larq-zoo peer through pareto.py's training function, exported fully binary


def _random_data(n=32, size=28, classes=10, batch=8):
    """A `Dataset` look-alike (what `train_model` reads) of random 28x28x1 images in [-1, 1]."""
    import tensorflow as tf

    from larq_mobisearch.config import DataConfig

    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (n, size, size, 1)).astype(np.float32)
    y = rng.integers(0, classes, n).astype(np.int32)
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    return SimpleNamespace(
        input_shape=(size, size, 1), num_classes=classes, steps_per_epoch=2, test_size=n,
        config=DataConfig(name="digits", image_size=size, batch_size=batch),
        train_from=lambda epoch: ds.repeat().batch(batch, drop_remainder=True),
        eval_batches=lambda split: ds.batch(batch),
        numpy_samples=lambda split, n=None: (x, y))


@pytest.mark.slow
def test_quicknetsmall_trains_through_paretos_training_function_and_exports_fully_binary(tmp_path, tflite_ops):
    pytest.importorskip("larq_zoo")
    import pareto

    from larq_mobisearch.config import RetrainConfig

    spec = pareto.zoo_spec("QuickNetSmall")
    data = _random_data()
    cfg = RetrainConfig(epochs=1, learning_rate=1e-3, seed=0)
    out = tmp_path / "qns-s0"
    entry = pareto.train_model(spec, data, cfg, str(out), seed=0, verbose=0)
    # 28x28 does not build (a max-pool runs out of pixels): padded to the 32x32 it accepts
    assert entry["input_size"] == 32 and "28x28" in entry["input_note"]
    history = (out / "history.csv").read_text().splitlines()
    assert len(history) == 2  # one epoch (of 2 steps) trained and logged by training.fit
    assert (out / "weights.h5").is_file() and (out / "backup").is_dir()  # fit's per-epoch backup: resumable
    # every binary conv became an LceBconv2d (export_tflite refuses otherwise; the report counts them)
    assert entry["fully_binary"] is True
    assert entry["lce_bconv2d_ops"] == entry["binary_convs"] > 0
    ops = tflite_ops((out / "model.tflite").read_bytes())
    assert sum(op.name == "LceBconv2d" for op in ops) == entry["binary_convs"]
    from larq_mobisearch.deploy.timing import make_interpreter

    assert [tuple(s) for s in make_interpreter(str(out / "model.tflite")).input_shapes] == [(1, 32, 32, 1)]
    # the reported .tflite top-1 is what LCE's own interpreter gives on the images centred in 32x32 (2 pixels of
    # the background value on each side), computed here without pareto.py
    import larq_compute_engine as lce

    x, y = data.numpy_samples("test")
    padded = np.pad(x, [[0, 0], [2, 2], [2, 2], [0, 0]], constant_values=pareto.BACKGROUND)
    logits = lce.testing.Interpreter((out / "model.tflite").read_bytes(), use_indirect_bgemm=True).predict(padded)
    assert entry["tflite_accuracy"] == pytest.approx(float(np.mean(logits.argmax(-1) == y)))
    assert entry["costs"]["bops"] > 0
    assert entry["numerics"]["samples"] == 32  # the export verified against Keras (recorded, not enforced)
    exported = json.loads((out / "export.json").read_text())
    assert exported["verification"]["samples"] == 32
    # finished: a second call reads it back without training again
    assert pareto.train_model(spec, data, cfg, str(out), seed=0, verbose=0) == entry
    with pytest.raises(SystemExit):  # other settings in the same directory are refused
        pareto.train_model(spec, data, cfg.model_copy(update={"epochs": 2}), str(out), seed=0, verbose=0)


def test_ledger_carries_searched_genotypes_and_seeds_and_times_an_untrained_twin(tmp_path):
    """A fresh checkout (no run directories): the committed JSON's searched genotypes are not searched again
    (no supernet is touched), its (model, seed) results are not trained again, a ledger row of another model is
    refused, and a row whose trained .tflite is absent is timed on its architecture exported untrained."""
    import pareto

    args = SimpleNamespace(fraction_list=[0.35, 0.5], latency_fraction_list=[], time_only=False, quick=False,
                           run_dir="absent")
    searched = [{"family": "searched", "label": f"searched <= {f:g}x", "key": f"f{f:g}", "genotype": f"g{f:g}",
                 "budget_fraction": f, "costs": {"flops": 1e5}, "per_seed": [{"seed": 0, "test_accuracy": 0.9}]}
                for f in args.fraction_list]
    known = {r["label"]: r for r in searched}
    rows = pareto.searched_rows(None, args, known)  # None: any use of the run directory would fail
    assert [r["genotype"] for r in rows] == ["g0.35", "g0.5"] and "per_seed" not in rows[0]
    pareto.carry_over(rows, known, test_size=10000)
    assert pareto.has_seed(rows[0], 0) and not pareto.has_seed(rows[0], 1)
    assert rows[0]["accuracy"]["n"] == 1 and rows[0]["accuracy"]["mean"] == pytest.approx(90.0)
    other = [{**rows[1], "genotype": "another", "per_seed": []}]
    with pytest.raises(SystemExit, match="another model"):
        pareto.carry_over(other, known, test_size=10000)

    def tiny(size, channels, classes):  # a float model that converts in a second (MobileNet's path, smaller)
        import tensorflow as tf

        return tf.keras.Sequential([tf.keras.Input((size, size, channels)), tf.keras.layers.Conv2D(4, 3),
                                    tf.keras.layers.GlobalAveragePooling2D(), tf.keras.layers.Dense(classes)])

    spec = pareto.ModelSpec("tiny float", "float", "a 3x3 conv and a dense layer", tiny, False)
    row = {"label": spec.label, "input_size": 32, "tflite": str(tmp_path / "gone.tflite"), "per_seed": [{"seed": 0}]}
    run = SimpleNamespace(data=SimpleNamespace(input_shape=(28, 28, 1), num_classes=10))
    path = pareto.timing_flatbuffer(run, row, spec, str(tmp_path))
    assert row["timed"] == "the same architecture exported untrained" and path.startswith(str(tmp_path / "timing"))
    import tensorflow as tf

    interp = tf.lite.Interpreter(model_path=path)
    assert tuple(interp.get_input_details()[0]["shape"]) == (1, 32, 32, 1)
    assert tuple(interp.get_output_details()[0]["shape"]) == (1, 10)
    row["tflite"] = path  # a trained .tflite on this machine is timed as it is
    assert pareto.timing_flatbuffer(run, row, spec, str(tmp_path)) == path
    assert row["timed"] == "the trained .tflite (seed 0)"


def test_a_ledger_is_complete_with_every_budget_and_every_seed_whoever_trained_them():
    import pareto

    args = SimpleNamespace(fraction_list=[], latency_fraction_list=[0.35, 0.5], seed_list=[0, 1])
    seeds = lambda *s: [{"seed": x} for x in s]  # noqa: E731
    rows = [{"family": "searched", "per_seed": seeds(0, 1)}, {"family": "searched", "per_seed": seeds(1, 0)},
            {"family": "larq-zoo", "per_seed": seeds(0, 1)}]
    assert pareto.is_complete(rows, args)
    assert not pareto.is_complete(rows[1:], args)  # a budget without its searched row (--time-only skips it)
    assert not pareto.is_complete(rows[:2] + [{"family": "larq-zoo", "per_seed": seeds(0)}], args)
    assert not pareto.is_complete(rows[:2] + [{"family": "float"}], args)


def _cut(side, gain, median, over, largest=0.1, top1=None, layer="x"):
    return {"layer": layer, "shape": [side, side, 8], "scale": 1.0, "max_abs_diff": largest, "relative": largest,
            "median_image_relative": median, "images_over_1e-4": over, "bn_gain": gain, "top1_agreement": top1}


def test_peer_numerics_reading_tells_a_few_flipped_images_from_a_systematic_difference():
    few = {"model": "Q", "input_size": 32, "trained_epochs": 0, "calibration_images": 8, "test_images": 4,
           "cuts": [_cut(4, 2.0, 1e-6, 0.0), _cut(1, 316.0, 2e-6, 0.0),
                    dict(_cut(1, None, 3e-6, 0.05, 0.4, 0.98), shape=[10])]}
    s = md.numerics_summary(few)
    assert (s["last_side"], s["max_gain"], s["median_relative"], s["images_over"], s["top1_agreement"],
            s["first_systematic"]) == (1, 316.0, 3e-6, 0.05, 0.98, None)
    text = "\n".join(md.peer_numerics_markdown({"results": [few]}))
    assert "| Q | 32 | untrained, BN from 8 images | 4 | 1x1 | 3.2e+02 | none | 3e-06 | 5% | 98.0% |" in text
    assert "Untrained, Q match Keras on the typical image to 3e-06" in text
    assert "their large differences come from 5-5% of the images" in text
    trained = dict(few, trained_epochs=1, cuts=[_cut(4, 2.0, 1e-6, 0.0), _cut(2, 330.0, 2e-2, 1.0, layer="bn13"),
                                                dict(_cut(1, None, 1e-2, 1.0, 0.4, 0.99), shape=[10])])
    assert md.numerics_summary(trained)["first_systematic"]["layer"] == "bn13"
    text = "\n".join(md.peer_numerics_markdown({"results": [few, trained]}))
    assert "Q trained (1 epoch(s)) at 32 px departs on every image" in text and "from `bn13` (2x2x8, BN gain " \
        "3.3e+02, relative difference 0.02 on the median image there; the BatchNorms before it: gains at most 2)" \
        in text and "variance collapsed" in text
    # a wrong result at once on a map where a zero-padded conv is miscomputed (the padding table) is called so
    wrong = dict(few, cuts=[_cut(4, 2.0, 1e-6, 0.0), _cut(2, 2.1, 1.2, 1.0, layer="bn12"),
                            dict(_cut(1, None, 1.9, 1.0, 2.0, 0.1), shape=[10])])
    padding = {"command": "c", "rows": [{"side": 2, "pad_values": 0.0, "kernel_quantizer": "ste_sign", "channels": 32,
                                         "relative": 0.8}, {"side": 2, "pad_values": 1.0, "kernel_quantizer":
                                         "ste_sign", "channels": 32, "relative": 5e-7}]}
    text = "\n".join(md.peer_numerics_markdown({"results": [wrong], "padding": padding}))
    assert "is a wrong result, not rounding: the map is 2x2" in text and "wrongly on 2x2 inputs" in text
    assert "| 2 | 0 | ste_sign | 0.8 |" in text and "variance collapsed" not in text


def test_budget_neighbours_say_whether_the_table_let_the_search_pick_the_nearest_uniform_point():
    import pareto_md

    def row(family, label, ratio, top1, predicted=None, budget=None):
        return {"family": family, "label": label, "paired_to_reference": {"median": ratio},
                "accuracy": {"mean": top1}, "predicted_ms": predicted, "latency_budget_ms": budget}

    rows = [row("searched", "s35", 0.35, 89.3, 0.159, 0.163), row("searched", "s50", 0.47, 89.2, 0.222, 0.233),
            row("searched", "f50", 0.40, 89.0),  # a FLOPs-budget search: no latency budget, no neighbour
            row("uniform", "w0.5", 0.34, 89.5, 0.164), row("uniform", "w0.75", 0.45, 89.8, 0.230),
            row("uniform", "untabled", 0.35, 99.0), row("larq-zoo", "qns", 0.35, 99.0)]
    got = pareto_md.budget_neighbours(rows)
    assert [(n["searched"], n["uniform"], n["uniform_feasible"]) for n in got] == \
        [("s35", "w0.5", False), ("s50", "w0.75", True)]
    lines = pareto_md.budget_neighbour_lines(rows)
    assert "over the 0.163 ms budget by 0.6%: the search could not pick it" in lines[0]
    assert "within the 0.233 ms budget: the search could have picked it" in lines[1]
    assert pareto_md.budget_neighbours(rows[:3]) == []
    scored = pareto_md.budget_neighbour_lines(rows, {"s35": 0.912, "w0.5": 0.9})
    assert scored[0].endswith("The supernet scores the winner 91.20% and w0.5 90.00%.")
    assert scored[1] == lines[1]  # no score of w0.75: nothing said


def test_score_agreement_is_scipys_kendall_tau_over_the_rows_with_both():
    import pareto_md
    from scipy.stats import kendalltau

    rows = [{"label": k, "accuracy": {"mean": a}} for k, a in (("a", 89.1), ("b", 89.5), ("c", 90.2), ("d", 88.0))]
    rows.append({"label": "e"})  # not retrained: no accuracy
    scores = {"a": 0.91, "b": 0.90, "c": 0.93, "e": 0.99}  # no score of d
    got = pareto_md.score_agreement(rows, scores)
    assert got["n"] == 3 and got["tau"] == pytest.approx(kendalltau([0.91, 0.90, 0.93], [89.1, 89.5, 90.2])[0])
    assert got["tau"] == pytest.approx(1 / 3)  # concordant pairs (a,c), (b,c); discordant (a,b)
    assert pareto_md.score_agreement(rows, {"a": 0.9, "b": 0.8}) is None


def test_the_scoring_supernet_is_checked_against_the_fitness_the_searches_recorded():
    import pareto_md

    rows = [{"family": "searched", "label": "s", "supernet_fitness": 0.8875}, {"family": "uniform", "label": "u"}]
    assert "exactly the fitness their searches recorded" in pareto_md.same_supernet_note(rows, {"s": 0.8875})
    assert "up to 0.25 points away" in pareto_md.same_supernet_note(rows, {"s": 0.89})
    assert pareto_md.same_supernet_note(rows, {"u": 0.8}) == ""


def test_variant_run_is_the_sibling_ranking_variants_makes_and_refuses_another(tmp_path):
    import pareto

    from larq_mobisearch import pipeline as P
    from larq_mobisearch.config import load_config

    base = P.Run.open(str(tmp_path / "budget"), load_config(preset="digits", overrides=["supernet.sampling=budget"]),
                      verbose=0, search=None)
    variant = pareto.variant_run(base, "uniform")
    assert variant.run_dir == str(tmp_path / "uniform") and variant.cfg.supernet.sampling == "uniform"
    assert variant.cfg.model_copy(update={"supernet": base.cfg.supernet}) == base.cfg  # nothing else differs
    assert pareto.variant_run(base, "uniform").cfg == variant.cfg  # reopened from its saved config
    P.Run.open(str(tmp_path / "masked"), base.cfg, verbose=0, search=None)  # made without the variant's setting
    with pytest.raises(SystemExit, match="is not variant 'masked'"):
        pareto.variant_run(base, "masked")
