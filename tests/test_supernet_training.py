"""Train where you search (issue 22 part 3): budget sampling, the sandwich rule, in-place distillation and
masked updates; genotypes per step a pure function of (seed, step), so training resumes exactly."""

import itertools
import json
import os
import random
import shutil

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import larq_mobisearch as lm  # noqa: E402
import tensorflow as tf  # noqa: E402

from larq_mobisearch.config import ConfigError, TrainConfig, load_config  # noqa: E402
from larq_mobisearch.nn import supernet as sn  # noqa: E402
from larq_mobisearch.search.costs import FlopsCostModel  # noqa: E402
from larq_mobisearch.supernet_training import (  # noqa: E402
    SupernetTrainer, optimizer_slots, step_genotypes, subnet_count,
)
from larq_mobisearch.training import compile_model, make_optimizer, read_history, resume_epoch  # noqa: E402

SHAPE = (16, 16, 1)


def _space(width=0.25):
    return lm.SearchSpace(lm.architecture("m1", SHAPE, 10, width), "lce")


def _batch(n=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (n,) + SHAPE).astype(np.float32), rng.integers(0, 10, n).astype(np.int32)


def test_largest_and_smallest_are_the_flops_extremes():
    space = _space(0.5)
    flops = FlopsCostModel(space.arch, space.candidates).cost
    assert space.largest() == tuple(min(c) for c in space.candidates)
    assert space.smallest() == tuple(max(c) for c in space.candidates)
    assert max(space.smallest()) > 1 and space.contains(space.largest()) and space.contains(space.smallest())
    rng = random.Random(0)
    for genotype in [space.sample(rng) for _ in range(200)]:
        assert flops(space.smallest()) <= flops(genotype) <= flops(space.largest())


def test_genotype_variables_switch_the_supernet_inside_a_function():
    space = _space()
    supernet = sn.build_supernet(space)
    x, _ = _batch(8)
    genotype = space.smallest()
    sn.set_genotype(supernet, genotype)
    expected = supernet(x, training=False).numpy()
    sn.set_genotype(supernet, space.largest())
    largest = supernet(x, training=False).numpy()
    variables = sn.genotype_variables(supernet)
    assert len(variables) == len(genotype) and all(v.dtype == tf.int32 and v.shape == () for v in variables)

    @tf.function
    def switch_and_run(genes):
        for i, v in enumerate(variables):
            v.assign(genes[i])
        return supernet(x, training=False)

    switched = switch_and_run(tf.constant(genotype, tf.int32)).numpy()
    np.testing.assert_allclose(switched, expected, rtol=0, atol=1e-5 * np.abs(expected).max())  # graph vs eager
    assert np.abs(largest - expected).max() > 1e-2
    assert sn.get_genotype(supernet) == genotype


def test_kernel_masks_are_where_the_genotype_has_gradients():
    space = _space()
    supernet = sn.build_supernet(space)
    sn.set_genotype(supernet, space.smallest())
    x, y = _batch(16)
    kernels = [k for k, _ in sn.inactive_masks(supernet)]
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(y, supernet(x, training=True),
                                                                               from_logits=True))
    grads = tape.gradient(loss, kernels)
    partial = 0
    searchable = {id(layer.kernel): layer for layer in sn.searchable_layers(supernet)}
    for (kernel, mask), grad in zip(sn.inactive_masks(supernet), grads):
        mask = mask.numpy()
        assert mask.shape == tuple(kernel.shape)
        assert not np.any(grad.numpy()[mask == 0])  # unused entries get no gradient
        if id(kernel) not in searchable:
            continue
        layer = searchable[id(kernel)]
        g, cin, cout = int(layer.groups.numpy()), layer.in_channels, layer.filters
        reference = np.zeros(mask.shape, np.float32)  # block-diagonal by hand
        for b in range(g):
            reference[:, :, b * cin // g:(b + 1) * cin // g, b * cout // g:(b + 1) * cout // g] = 1
        np.testing.assert_array_equal(mask, reference)
        assert not np.any(grad.numpy()[mask == 0])  # unused entries get no gradient
        partial += int(mask.min() == 0)
    assert partial > 0


def test_genotypes_of_a_step_are_a_pure_function_of_seed_and_step():
    space = _space(0.5)
    flops = FlopsCostModel(space.arch, space.candidates)
    budget = 0.85 * flops.cost(space.largest())
    rows = step_genotypes(space, 3, 17, sandwich=True, random=3, cost_model=flops, budget=budget)
    assert rows == step_genotypes(space, 3, 17, sandwich=True, random=3, cost_model=flops, budget=budget)
    assert len(rows) == subnet_count(True, 3) == 5
    assert rows[0] == space.largest() and rows[1] == space.smallest()
    assert all(flops.cost(g) <= budget for g in rows[2:])
    others = [step_genotypes(space, 3, s, sandwich=True, random=3, cost_model=flops, budget=budget)[2:]
              for s in range(18, 22)] + [step_genotypes(space, 4, 17, sandwich=True, random=3)[2:]]
    assert all(o != rows[2:] for o in others)
    # One subnet per step: the genotype RandomGenotype sets at that step
    assert step_genotypes(space, 5, 9) == [sn.sample_genotype(space, sn.step_rng(5, 9))]
    assert subnet_count(False, 3) == 1


# ----------------------------------------------------------------------------------------------------------
# Masked updates: inactive weights and their optimizer slots stay bit-identical over a step


def _masked_step(trainer, space, x, y, *, traced: bool):
    """Two steps of `trainer`: the largest subnet (every entry active, so every slot becomes non-zero), then the
    smallest; returns the smallest's masks and each kernel with its slots before and after that second step.

    The first step runs eagerly: it creates the optimizer's slots, so the traced step (`traced`) is traced once
    (a `tf.function` whose first trace creates variables is traced twice)."""
    trainer.run_eagerly = True
    trainer.genotypes.assign([space.largest()])
    trainer.train_on_batch(x, y)
    trainer.run_eagerly, trainer.train_function = not traced, None  # the second step: Keras's traced step
    trainer.genotypes.assign([space.smallest()])
    kernels = [k for k, _ in sn.inactive_masks(trainer.supernet)]
    before = [[v.numpy().copy() for v in [k, *optimizer_slots(trainer.optimizer, k)]] for k in kernels]
    trainer.train_on_batch(x, y)  # the masks of this step: those of the smallest subnet
    if traced:
        assert trainer.train_function.experimental_get_tracing_count() == 1
    masks = [m.numpy() for _, m in sn.inactive_masks(trainer.supernet)]
    after = [[v.numpy() for v in [k, *optimizer_slots(trainer.optimizer, k)]] for k in kernels]
    return masks, before, after


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["adam", "bop"])
def test_masked_updates_leave_inactive_weights_and_slots_untouched(optimizer):
    space = _space()
    tf.keras.utils.set_random_seed(0)
    supernet = sn.build_supernet(space)
    initial = supernet.get_weights()
    x, y = _batch(32)
    cfg = TrainConfig(optimizer=optimizer, learning_rate=1e-2, schedule="constant", bop_threshold=1e-12)
    trainer = SupernetTrainer(supernet, 1, masked_updates=True)
    compile_model(trainer, cfg, steps_per_epoch=10)  # masked updates: legacy Adam, Bop's CaseOptimizer
    masks, before, after = _masked_step(trainer, space, x, y, traced=True)  # the masked step as fit runs it
    if optimizer == "bop":
        assert type(trainer.optimizer).__name__ == "CaseOptimizer"
    slots = {len(b) for b in before}
    assert min(slots) == (3 if optimizer == "adam" else 2)  # kernel + Adam's m, v / kernel + Bop's momentum
    active_changed = 0
    for mask, b, a in zip(masks, before, after):
        for old, new in zip(b, a):
            np.testing.assert_array_equal(new[mask == 0], old[mask == 0])  # bit-identical
            active_changed += int(np.any(new[mask == 1] != old[mask == 1]))
    assert active_changed > 0
    # Without masking, the same optimizers' state moves inactive entries (what masked updates prevent): the same
    # supernet from the same weights, both steps eager (a property of the optimizers, not of the traced step)
    supernet.set_weights(initial)
    unmasked = SupernetTrainer(supernet, 1, masked_updates=False)
    unmasked.compile(optimizer=make_optimizer(cfg, 10, unmasked, legacy=True))
    masks, before, after = _masked_step(unmasked, space, x, y, traced=False)
    assert any(np.any(new[mask == 0] != old[mask == 0])
               for mask, b, a in zip(masks, before, after) for old, new in zip(b, a))


def test_masked_updates_refuse_optimizers_without_slots():
    space = _space()
    trainer = SupernetTrainer(sn.build_supernet(space), 1, masked_updates=True)
    with pytest.raises(TypeError, match="received Adam"):
        optimizer_slots(tf.keras.optimizers.Adam(), sn.searchable_layers(trainer.supernet)[0].kernel)
    with pytest.raises(ValueError, match="at least 2 subnets"):
        SupernetTrainer(sn.build_supernet(space), 1, inplace_distillation=True)


# ----------------------------------------------------------------------------------------------------------
# Sandwich + in-place distillation in the pipeline: loss falls, resume is exact, genotypes from (seed, step)

# Digits at their native 8x8, half of them in the test split and half the rest held out: a training split of 449
# images, 3 batches of 128 per epoch (the summed loss of the 3 subnets falls from ~11.5 to ~10.3 in the 2 epochs).
SETTINGS = ["data.image_size=8", "data.test_fraction=0.5", "data.holdout_fraction=0.5", "data.batch_size=128",
            "model.width_multiplier=0.25", "supernet.epochs=2", "data.augment=true",
            "supernet.sandwich=true", "supernet.sandwich_random=1", "supernet.inplace_distillation=true",
            "supernet.masked_updates=true", "supernet.learning_rate=5e-3"]


class Recorder(tf.keras.callbacks.Callback):
    """Records (optimizer step, genotype rows) before every batch; with `snapshot` = (epoch, src, dest), copies the
    run directory `src` to `dest` at the end of that epoch (BackupAndRestore and the history have written it: what
    a process killed at that moment leaves behind)."""

    def __init__(self, snapshot=None):
        super().__init__()
        self.snapshot, self.rows = snapshot, {}

    def on_train_batch_begin(self, batch, logs=None):
        self.rows[sn.optimizer_step(self.model.optimizer)] = [tuple(r) for r in self.model.genotypes.numpy()]

    def on_epoch_end(self, epoch, logs=None):
        if self.snapshot is not None and epoch == self.snapshot[0]:
            shutil.copytree(*self.snapshot[1:])


def _supernet_run(run_dir, snapshot=None):
    import h5py

    from larq_mobisearch import pipeline as P

    run = P.Run.open(str(run_dir), load_config(overrides=SETTINGS), verbose=0)
    recorder = Recorder(snapshot)
    P.train_supernet(run, callbacks=[recorder])
    weights = {}
    with h5py.File(run.path("supernet", "weights.h5"), "r") as f:
        f.visititems(lambda k, v: weights.__setitem__(k, v[()]) if hasattr(v, "shape") else None)
    return run, weights, read_history(run.path("supernet", "history.csv")), recorder.rows


@pytest.mark.slow
def test_sandwich_inplace_distillation_trains_and_resumes_exactly(tmp_path):
    # The killed run: the uninterrupted run's directory as it was at the end of epoch 0, resumed in a new stage call.
    run, straight, history, rows = _supernet_run(tmp_path / "straight", (0, tmp_path / "straight", tmp_path / "killed"))
    assert history["loss"][-1] < history["loss"][0]
    cfg, space = run.cfg.supernet, run.space
    flops, budget = run.flops_model(), run.flops_budget()
    assert cfg.sampling == "budget" and budget is not None
    n = run.data.steps_per_epoch
    assert sorted(rows) == list(range(2 * n)) and n > 1
    for step, genotypes in rows.items():
        assert genotypes == step_genotypes(space, cfg.seed, step, sandwich=True, random=1, cost_model=flops,
                                           budget=budget)
    assert resume_epoch(str(tmp_path / "killed" / "supernet" / "backup")) == 1
    _, resumed, history2, rows2 = _supernet_run(tmp_path / "killed")
    assert rows2 == {s: rows[s] for s in range(n, 2 * n)}  # it resumed at epoch 1, with the same subnets per step
    assert len(history2["loss"]) == 2
    assert sorted(straight) == sorted(resumed) and straight
    for key in straight:
        np.testing.assert_array_equal(resumed[key], straight[key], err_msg=key)
    assert history2["loss"] == history["loss"]
    with open(run.path("supernet", "done.json")) as f:
        done = json.load(f)
    assert done["sandwich"] is True and done["masked_updates"] is True and done["sampling"] == "budget"


# ----------------------------------------------------------------------------------------------------------
# Settings


def test_supernet_settings():
    cfg = load_config(None)
    assert cfg.supernet.sampling == "budget" and not cfg.supernet.sandwich and not cfg.supernet.masked_updates
    old = load_config(None, overrides=["supernet.flops_bounded_sampling=false"])  # saved run configs
    assert old.supernet.sampling == "uniform" and old.supernet.flops_bounded_sampling is None
    assert load_config(None, overrides=["supernet.flops_bounded_sampling=true",
                                        "supernet.sampling=uniform"]).supernet.sampling == "budget"
    again = load_config(overrides=["supernet.sampling=budget"], base=old)
    assert again.supernet.sampling == "budget"
    bad = {
        "supernet.sampling=some": "supernet.sampling: received 'some'; allowed: budget, uniform",
        "supernet.sandwich_random=17": "supernet.sandwich_random: received 17; must be in [0, 16]",
        "supernet.inplace_distillation=true": "supernet.inplace_distillation: received true; must be false unless "
                                              "supernet.sandwich is true",
    }
    for override, message in bad.items():
        with pytest.raises(ConfigError) as err:
            load_config(None, overrides=[override])
        assert str(err.value).startswith(message), str(err.value)
    for key, strategy in itertools.product(("sandwich", "masked_updates"), ("mirrored", "tpu")):
        with pytest.raises(ConfigError) as err:
            load_config(None, overrides=[f"supernet.{key}=true", f"distribute.strategy={strategy}"])
        assert str(err.value).startswith(f"supernet.{key}: received true; must be false unless distribute.strategy "
                                         f"is 'default' (it is {strategy!r})"), str(err.value)
