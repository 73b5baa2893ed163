"""Image folders: loading, splits, errors, channel count from the files, and training batches that mix
every class although the files are sorted by class (issue 17)."""

import json
import logging
import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import larq_mobisearch  # noqa: E402,F401
import tensorflow as tf  # noqa: E402

from data_helpers import assert_same_batches, batches, images_of, labels_of, write_image_folder  # noqa: E402
from larq_mobisearch.config import ConfigError, DataConfig  # noqa: E402
from larq_mobisearch.data import CorruptDatasetError, DatasetNotAvailableError, load_dataset, resize_scale  # noqa: E402

CLASSES = tuple(f"class{i:02d}" for i in range(10))


def test_folder_loads(tmp_path):
    root = write_image_folder(tmp_path / "imgs")
    (root / "dog" / "notes.txt").write_text("not an image")
    cfg = DataConfig(name="folder", data_dir=str(root), image_size=8, batch_size=4)
    ds = load_dataset(cfg)
    assert ds.num_classes == 3 and ds.class_names == ("cat", "dog", "fish")
    assert ds.input_shape == (8, 8, 3)
    assert ds.train_size + ds.holdout_size + ds.test_size == 21
    assert min(ds.train_size, ds.holdout_size, ds.test_size) >= 1
    idx = ds.split_indices
    assert not set(idx["test"]) & set(idx["holdout"]) and not set(idx["test"]) & set(idx["train"])
    x, y = next(iter(ds.train))
    assert x.shape == (4, 8, 8, 3) and y.dtype == tf.int32
    xt = images_of(ds.test)
    assert xt.shape == (ds.test_size, 8, 8, 3) and xt.min() >= -1 and xt.max() <= 1
    # Fresh pipelines with the same seed give the same first epoch.
    steps = ds.steps_per_epoch
    assert_same_batches(batches(load_dataset(cfg).train, steps), batches(load_dataset(cfg).train, steps))


def test_folder_large_images(tmp_path):
    root = write_image_folder(tmp_path / "imgs", classes=("a", "b"), per_class=6, size=(40, 60))
    ds = load_dataset(DataConfig(name="folder", data_dir=str(root), image_size=128, batch_size=2,
                                 holdout_fraction=0.2, test_fraction=0.25))
    assert resize_scale(224) == 256 and resize_scale(128) == 146
    assert next(iter(ds.train))[0].shape == (2, 128, 128, 3)
    assert next(iter(ds.test))[0].shape[1:] == (128, 128, 3)


def test_folder_errors(tmp_path):
    with pytest.raises(DatasetNotAvailableError, match="does not exist"):
        load_dataset(DataConfig(name="folder", data_dir=str(tmp_path / "missing")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotAvailableError, match="no images"):
        load_dataset(DataConfig(name="folder", data_dir=str(tmp_path / "empty")))
    one = write_image_folder(tmp_path / "one", classes=("only",), per_class=5)
    with pytest.raises(DatasetNotAvailableError, match="at least 2 classes"):
        load_dataset(DataConfig(name="folder", data_dir=str(one)))
    with pytest.raises(ConfigError, match="data.data_dir"):
        load_dataset(DataConfig(name="folder", data_dir=None))
    tiny = write_image_folder(tmp_path / "tiny", classes=("a", "b", "c"), per_class=2)
    with pytest.raises(DatasetNotAvailableError, match="data.test_fraction=0.2: it takes 1 and leaves 5, and each side"):
        load_dataset(DataConfig(name="folder", data_dir=str(tiny)))


@pytest.fixture(scope="module")
def sorted_folder(tmp_path_factory):
    """10 classes x 30 grayscale images, files (and so the split's indices) sorted by class."""
    return write_image_folder(tmp_path_factory.mktemp("sorted") / "imgs", classes=CLASSES, per_class=30,
                              size=(8, 8), channels=1)


@pytest.mark.parametrize("cache", ["auto", "none"])  # read into memory once / decoded at every access
def test_training_batches_mix_all_classes(sorted_folder, cache):
    ds = load_dataset(DataConfig(name="folder", data_dir=str(sorted_folder), image_size=8, batch_size=32,
                                 shuffle_buffer=64, cache=cache))
    assert ds.train_size > 3 * ds.config.shuffle_buffer
    assert np.all(np.diff(labels_of(ds.eval_batches("train"))) >= 0)  # the split itself is sorted by class
    first = batches(ds.train, 3)
    for _, y in first:
        assert len(np.unique(y)) >= 8, np.bincount(y, minlength=10)  # a random batch of 32: ~9.7 classes
    # A whole epoch is a permutation: every training example once (less the dropped partial batch).
    epoch = np.concatenate([y for _, y in batches(ds.train, ds.steps_per_epoch)])
    assert len(epoch) == ds.steps_per_epoch * 32 > ds.train_size - 32
    assert np.all(np.bincount(epoch, minlength=10) <= np.bincount(labels_of(ds.eval_batches("train")), minlength=10))
    # Recalibration: a seeded uniform sample of the whole split, every class, the same at every iteration.
    recal = ds.recalibration_batches(2)
    labels = np.concatenate([y for _, y in batches(recal, 2)])
    assert len(labels) == 64 and set(labels.tolist()) == set(range(10))
    assert np.bincount(labels, minlength=10).max() <= 15
    assert_same_batches(batches(recal, 2), batches(ds.recalibration_batches(2), 2))
    # Epoch k from train_from(k) is the k-th epoch of the uninterrupted stream.
    steps = ds.steps_per_epoch
    assert_same_batches(batches(ds.train_from(2), steps), batches(ds.train, 3 * steps)[2 * steps:])


def test_memory_and_file_reads_give_the_same_stream(sorted_folder):
    cfg = DataConfig(name="folder", data_dir=str(sorted_folder), image_size=8, batch_size=32)
    memory = load_dataset(cfg)
    files = load_dataset(DataConfig(**{**cfg.__dict__, "cache": "none"}))
    assert_same_batches(batches(memory.train_from(1), 5), batches(files.train_from(1), 5))
    assert_same_batches(batches(memory.recalibration_batches(2), 2), batches(files.recalibration_batches(2), 2))


def test_channels_follow_the_files(tmp_path, caplog):
    gray = write_image_folder(tmp_path / "gray", classes=("a", "b"), per_class=6, channels=1)
    colour = write_image_folder(tmp_path / "colour", classes=("a", "b"), per_class=6, channels=3)
    ds = load_dataset(DataConfig(name="folder", data_dir=str(gray), image_size=8, batch_size=4))
    assert ds.input_shape == (8, 8, 1) and "grayscale" in ds.description and "mixed" not in ds.description
    assert next(iter(ds.train))[0].shape == (4, 8, 8, 1)
    assert images_of(ds.test).shape[-1] == 1
    ds = load_dataset(DataConfig(name="folder", data_dir=str(colour), image_size=8, batch_size=4))
    assert ds.input_shape == (8, 8, 3) and "colour" in ds.description
    # Mixed: 16 grayscale + 8 colour files (RGBA among them) are all read as grayscale, and it is said so.
    mixed = write_image_folder(tmp_path / "mixed", classes=("a", "b", "c"), per_class=8, channels=[1, 4, 1])
    with caplog.at_level(logging.WARNING, logger="larq_mobisearch.data.folder"):
        ds = load_dataset(DataConfig(name="folder", data_dir=str(mixed), image_size=8, batch_size=4))
    assert ds.input_shape == (8, 8, 1)
    assert "mixed folder: 16 grayscale and 8 colour files, all read as grayscale" in ds.description
    assert any("mixed folder" in r.getMessage() for r in caplog.records)
    x = images_of(ds.eval_batches("train"))
    assert x.shape[-1] == 1 and x.min() >= -1 and x.max() <= 1
    # Majority colour: the grayscale files are read as 3 equal channels.
    mostly_colour = write_image_folder(tmp_path / "mc", classes=("a", "b", "c"), per_class=8, channels=[3, 1, 3])
    ds = load_dataset(DataConfig(name="folder", data_dir=str(mostly_colour), image_size=8, batch_size=4))
    assert ds.input_shape == (8, 8, 3) and "all read as colour" in ds.description
    gray_part = [x for x, y in ds.examples("train") if int(y) == 1]
    assert gray_part and all(np.array_equal(g[..., 0], g[..., 2]) for g in gray_part)


# ---- unreadable files: checked once when the folder is listed, refused or skipped (issue 24) ----


@pytest.fixture(autouse=True)
def image_check_cache(tmp_path, monkeypatch):
    """The verdict cache of every test here lives in the test's tmp dir (never the user's cache)."""
    cache = tmp_path / "check_cache"
    monkeypatch.setenv("MOBISEARCH_CACHE_DIR", str(cache))
    return cache


def add_unreadable(root):
    """A truncated PNG (half of a good one) and a JPEG of random bytes; their paths."""
    good = (root / "cat" / "0000.png").read_bytes()
    truncated, noise = root / "cat" / "truncated.png", root / "dog" / "noise.jpg"
    truncated.write_bytes(good[:len(good) // 2])
    noise.write_bytes(np.random.default_rng(7).integers(0, 256, 300, dtype=np.uint8).tobytes())
    return truncated, noise


def test_unreadable_files_are_refused_naming_them(tmp_path):
    root = write_image_folder(tmp_path / "imgs", per_class=8, size=(8, 8))
    truncated, noise = add_unreadable(root)
    cfg = DataConfig(name="folder", data_dir=str(root), image_size=8, batch_size=4)
    with pytest.raises(CorruptDatasetError) as info:
        load_dataset(cfg)
    msg = str(info.value)
    assert "2 of 26 files cannot be decoded" in msg
    assert "cat/truncated.png: Invalid PNG data" in msg and "dog/noise.jpg: Unknown image file format" in msg
    assert "data.skip_unreadable=true" in msg
    ds = load_dataset(DataConfig(**{**cfg.__dict__, "skip_unreadable": True}))
    assert [f for f, _ in ds.skipped_files] == [str(truncated), str(noise)]
    assert ds.train_size + ds.holdout_size + ds.test_size == 24 and "2 unreadable files skipped" in ds.description


def test_many_unreadable_files_are_counted(tmp_path):
    root = write_image_folder(tmp_path / "imgs", classes=("a", "b"), per_class=6, size=(8, 8))
    for i in range(8):
        (root / "a" / f"bad{i}.png").write_bytes(b"not a png")
    with pytest.raises(CorruptDatasetError) as info:
        load_dataset(DataConfig(name="folder", data_dir=str(root), image_size=8, batch_size=4))
    msg = str(info.value)
    assert "8 of 20 files" in msg and msg.count("a/bad") == 5 and "... and 3 more" in msg
    # Skipping every image of a class leaves a folder that cannot be used, and says why.
    for f in (root / "b").iterdir():
        f.write_bytes(b"")
    with pytest.raises(DatasetNotAvailableError, match=r"these classes have no images: \['b'\]"):
        load_dataset(DataConfig(name="folder", data_dir=str(root), image_size=8, batch_size=4, skip_unreadable=True))


def test_a_file_the_check_passes_decodes_in_every_pipeline(tmp_path):
    """Edge cases of the decoder: what the check says of each file is what the input pipeline does with it."""
    from PIL import Image

    root = write_image_folder(tmp_path / "imgs", classes=("a", "b"), per_class=5, size=(8, 8))
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    jpeg = tf.io.encode_jpeg(pixels).numpy()
    (root / "a" / "good.jpg").write_bytes(jpeg)
    (root / "a" / "half.jpg").write_bytes(jpeg[:len(jpeg) // 2])
    Image.fromarray(pixels).save(root / "a" / "good.gif")
    Image.fromarray(pixels).save(root / "b" / "good.bmp")
    Image.fromarray(pixels[..., 0]).convert("LA").save(root / "b" / "gray_alpha.png")
    (root / "b" / "empty.png").write_bytes(b"")
    (root / "b" / "text.jpeg").write_text("hello")
    ds = load_dataset(DataConfig(name="folder", data_dir=str(root), image_size=8, batch_size=2,
                                 skip_unreadable=True, cache="none"))
    skipped = {os.path.basename(f) for f, _ in ds.skipped_files}
    assert {"empty.png", "text.jpeg"} <= skipped
    assert not skipped & {"good.jpg", "good.gif", "good.bmp", "gray_alpha.png"}
    # Independently of the check: decode each file through the pipeline's own op, eagerly.
    from larq_mobisearch.data.folder import decode_with_channels

    for f in sorted((root / "a").iterdir()) + sorted((root / "b").iterdir()):
        try:
            decode_with_channels(tf.io.read_file(str(f)), 3)
            readable = True
        except tf.errors.InvalidArgumentError:
            readable = False
        assert readable == (f.name not in skipped), f.name
    # Every split, and a training epoch read from the files, go through without an error.
    for split in ("train", "holdout", "test"):
        assert len(images_of(ds.eval_batches(split))) == ds.size(split)
    batches(ds.train, ds.steps_per_epoch)


def test_verdicts_are_cached_by_path_size_and_mtime(tmp_path, image_check_cache):
    root = write_image_folder(tmp_path / "imgs", classes=("a", "b"), per_class=6, size=(8, 8))
    bad = root / "a" / "bad.png"
    bad.write_bytes(b"not an image at all")
    cfg = DataConfig(name="folder", data_dir=str(root), image_size=8, batch_size=2, skip_unreadable=True,
                     test_fraction=0.25, holdout_fraction=0.25)
    assert [f for f, _ in load_dataset(cfg).skipped_files] == [str(bad)]
    (cache_file,) = (image_check_cache / "image_checks").iterdir()
    files = json.loads(cache_file.read_text())["files"]
    assert len(files) == 13 and files["a/bad.png"][2] and files["b/0000.png"][2] is None
    assert files["b/0000.png"][:2] == [os.stat(root / "b" / "0000.png").st_size,
                                       os.stat(root / "b" / "0000.png").st_mtime_ns]
    # Same size and mtime: the cached verdict is used (the file is not decoded again) ...
    good = root / "b" / "0000.png"
    st = os.stat(good)
    good.write_bytes(b"\0" * st.st_size)
    os.utime(good, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert [f for f, _ in load_dataset(cfg).skipped_files] == [str(bad)]
    # ... a changed size or mtime is checked again: the broken file is found, the repaired one passes.
    os.utime(good, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    bad.write_bytes((root / "a" / "0000.png").read_bytes())
    assert [f for f, _ in load_dataset(cfg).skipped_files] == [str(good)]
    # A damaged cache file is ignored (every file checked again) and rewritten.
    cache_file.write_text("{not json")
    assert [f for f, _ in load_dataset(cfg).skipped_files] == [str(good)]
    assert json.loads(cache_file.read_text())["files"]["b/0000.png"][2]


@pytest.mark.slow
def test_run_refuses_unreadable_files_before_training_or_skips_and_reports_them(tmp_path):
    from click.testing import CliRunner

    from larq_mobisearch.cli import main

    root = write_image_folder(tmp_path / "imgs", per_class=12, size=(8, 8), channels=1)
    truncated, noise = add_unreadable(root)
    # The smallest run: 8x8 (the smallest image size), one epoch per stage, two genotypes searched, no random
    # baseline, no float-twin conversion at export (building and tracing the networks is what costs).
    tiny = ["--set", "data.name=folder", "--set", f"data.data_dir={root}", "--set", "data.image_size=8",
            "--set", "data.batch_size=8", "--set", "model.width_multiplier=0.25", "--set", "supernet.epochs=1",
            "--set", "retrain.epochs=1", "--set", "search.population=2", "--set", "search.top_k=1",
            "--set", "search.iterations=1", "--set", "search.recalibration_batches=1",
            "--set", "search.random_baseline_samples=0", "--set", "search.flops_budget=null",
            "--set", "search.flops_budget_fraction=null", "--set", "export.verify_samples=4",
            "--set", "export.float_size=false"]
    run_dir = tmp_path / "run"
    refused = CliRunner().invoke(main, ["run", "--quiet", "--run-dir", str(run_dir), *tiny], catch_exceptions=False)
    assert refused.exit_code != 0
    assert "cat/truncated.png" in refused.output and "dog/noise.jpg" in refused.output
    assert "data.skip_unreadable=true" in refused.output and "Traceback" not in refused.output
    assert not (run_dir / "supernet").exists()  # nothing trained
    done = CliRunner().invoke(main, ["run", "--quiet", "--run-dir", str(run_dir), *tiny,
                                     "--set", "data.skip_unreadable=true"], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    report = json.loads((run_dir / "report.json").read_text())
    assert [s["file"] for s in report["skipped_files"]] == [str(truncated), str(noise)]
    assert "Invalid PNG data" in report["skipped_files"][0]["reason"]
    md = (run_dir / "report.md").read_text()
    assert "## Skipped image files (2" in md and f"`{truncated}`" in md and f"`{noise}`" in md
