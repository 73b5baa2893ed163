"""Quantizers against NumPy references of the paper's equations.

- ApproxSign (eq. 3-4): the package reuses Larq's `approx_sign`; these tests are the proof that Larq's forward
  (sign with sign(0) = +1) and backward (dA/dx of eq. 4) are the paper's, on a dense grid that contains the
  breakpoints -1, 0, 1 exactly and points outside [-1, 1].
- XnorWeight (eq. 6, XNOR-Net): forward alpha_c * sign(W), alpha_c = mean |W| of output channel c; backward
  the exact XNOR-Net gradient (through alpha, plus a clipped straight-through estimator for the sign);
  the masked variant used by the supernet; serialization through Larq's registry.
"""

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

from larq_mobisearch.nn.quantizers import XnorWeight, approx_sign, xnor_weight_sign

# ----------------------------------------------------------------------------------------------------------
# NumPy references


def np_sign(x):
    """Binary sign with sign(0) = +1 (the forward of eq. 3 and of the weight binarization)."""
    return np.where(x >= 0, 1.0, -1.0)


def eq4_A(x):
    """Paper eq. 4, the piecewise polynomial A(x) (float64)."""
    x = np.asarray(x, np.float64)
    return np.select(
        [x < -1, (x >= -1) & (x < 0), (x >= 0) & (x < 1)],
        [-1.0, 2 * x + x**2, 2 * x - x**2],
        default=1.0,
    )


def eq4_dA(x):
    """Derivative of eq. 4 written exactly as its pieces: 2 + 2x on [-1, 0), 2 - 2x on [0, 1), 0 elsewhere."""
    x = np.asarray(x, np.float64)
    return np.select([(x >= -1) & (x < 0), (x >= 0) & (x < 1)], [2 + 2 * x, 2 - 2 * x], default=0.0)


def xnor_reference(w, dy, clip_value=1.0, mask=None):
    """Forward and analytic XNOR-Net gradient of q(W) = alpha_c sign(W), per output channel (last axis).

    dq/dW_i (contracted with dy) = sign(W_i)/n_c * sum_j dy_j sign(W_j) + alpha_c * dy_i * 1{|W_i| <= clip}.
    With a 0/1 mask, alpha_c and the sums run over the masked entries only, and everything outside is zero.
    """
    w = np.asarray(w, np.float64)
    dy = np.asarray(dy, np.float64)
    m = np.ones_like(w) if mask is None else np.broadcast_to(np.asarray(mask, np.float64), w.shape)
    axes = tuple(range(w.ndim - 1))
    n = m.sum(axis=axes)
    alpha = (np.abs(w) * m).sum(axis=axes) / n
    b = np_sign(w)
    forward = alpha * b * m
    ste = np.ones_like(w) if clip_value is None else (np.abs(w) <= clip_value).astype(np.float64)
    through_alpha = np.sign(w) * m / n * (dy * b * m).sum(axis=axes)
    through_sign = alpha * dy * ste * m
    return forward, through_alpha + through_sign, alpha


def tf_value_and_grad(fn, w, dy):
    w = tf.constant(w, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(w)
        y = fn(w)
    return y.numpy(), tape.gradient(y, w, output_gradients=tf.constant(dy, tf.float32)).numpy()


# ----------------------------------------------------------------------------------------------------------
# ApproxSign == paper eq. 3-4


GRID = (np.arange(-3000, 3001) / 1000.0).astype(np.float32)  # step 1e-3, contains -1, 0, 1 exactly


def test_grid_contains_breakpoints():
    for p in (-1.0, 0.0, 1.0, -3.0, 3.0):
        assert np.count_nonzero(GRID == p) == 1


def test_eq4_derivative_reference_is_derivative_of_eq4():
    # The hand-written pieces of dA/dx agree with central differences of A itself (A is C^1, so this
    # holds at the breakpoints too), so the reference below really is eq. 4's derivative.
    x = GRID.astype(np.float64)
    h = 1e-6
    numeric = (eq4_A(x + h) - eq4_A(x - h)) / (2 * h)
    np.testing.assert_allclose(eq4_dA(x), numeric, atol=1e-5)
    assert eq4_dA(-1.0) == 0 and eq4_dA(0.0) == 2 and eq4_dA(1.0) == 0 and eq4_dA(-0.5) == 1 and eq4_dA(0.5) == 1


@pytest.mark.parametrize("impl", ["function", "class", "registry"])
def test_approx_sign_forward_and_backward_equal_eq3_eq4(impl, rng):
    fn = {
        "function": approx_sign,
        "class": lq.quantizers.ApproxSign(),
        "registry": lq.quantizers.get("approx_sign"),
    }[impl]
    dy = rng.uniform(0.5, 2.0, size=GRID.shape).astype(np.float32)
    y, g = tf_value_and_grad(fn, GRID, dy)

    np.testing.assert_array_equal(y, np_sign(GRID))
    assert y[GRID == 0.0] == 1.0  # sign(0) = +1
    assert set(np.unique(y)) == {-1.0, 1.0}

    expected = eq4_dA(GRID) * dy
    np.testing.assert_allclose(g, expected, rtol=1e-6, atol=1e-6)
    # The breakpoints and the outside region, one by one.
    at = lambda p: g[GRID == np.float32(p)][0] / dy[GRID == np.float32(p)][0]  # noqa: E731
    assert at(-1.0) == pytest.approx(0.0, abs=1e-7)
    assert at(0.0) == pytest.approx(2.0)
    assert at(1.0) == pytest.approx(0.0, abs=1e-7)
    assert at(-0.25) == pytest.approx(1.5) and at(0.25) == pytest.approx(1.5)
    assert np.all(g[np.abs(GRID) > 1] == 0)
    assert np.all(g[np.abs(GRID) < 1] > 0)


def test_approx_sign_backward_with_unit_upstream_gradient_is_dA():
    _, g = tf_value_and_grad(approx_sign, GRID, np.ones_like(GRID))
    np.testing.assert_allclose(g, eq4_dA(GRID), atol=1e-6)


# ----------------------------------------------------------------------------------------------------------
# XnorWeight forward


def test_xnor_forward_is_sign_times_mean_abs_per_output_channel(rng):
    w = rng.normal(scale=0.7, size=(3, 3, 4, 6)).astype(np.float32)
    w[0, 0, 0, :3] = 0.0  # sign(0) = +1 in the forward pass
    expected_alpha = np.abs(w.astype(np.float64)).mean(axis=(0, 1, 2))
    for q in (XnorWeight(), lq.quantizers.get("xnor_weight"), lambda t: xnor_weight_sign(t)):
        out = q(tf.constant(w)).numpy()
        np.testing.assert_allclose(out, np_sign(w) * expected_alpha, rtol=1e-6)
        np.testing.assert_allclose(out[0, 0, 0, :3], expected_alpha[:3], rtol=1e-6)
        # Every output channel takes exactly two values, +-alpha_c.
        for c in range(w.shape[-1]):
            np.testing.assert_allclose(np.unique(np.abs(out[..., c])), [expected_alpha[c]], rtol=1e-6)


def test_xnor_alpha_minimises_eq6(rng):
    """alpha = mean|W| is the least-squares optimum of ||W - alpha B||^2 with B = sign(W) (eq. 6)."""
    w = rng.normal(size=(3, 3, 8, 2))
    out = XnorWeight()(tf.constant(w, tf.float32)).numpy()
    for c in range(2):
        b = np_sign(w[..., c])
        alpha = float(np.abs(out[..., c]).max())
        err = lambda a: np.sum((w[..., c] - a * b) ** 2)  # noqa: E731
        assert err(alpha) <= err(alpha * 1.01) and err(alpha) <= err(alpha * 0.99)
        assert alpha == pytest.approx((w[..., c] * b).sum() / b.size, rel=1e-6)


def test_xnor_grouped_kernel_alpha_is_over_the_groups_inputs(rng):
    """In a grouped layer the kernel is (k, k, Cin/g, Cout): per-output-channel alpha covers the group's inputs."""
    from larq_mobisearch.nn.layers import BinaryGroupConv2D

    layer = BinaryGroupConv2D(8, 3, groups=4, lce_compatible=False)
    layer.build((None, 5, 5, 16))
    assert tuple(layer.kernel.shape) == (3, 3, 4, 8)
    w = layer.kernel.latent_variable.numpy() if hasattr(layer.kernel, "latent_variable") else layer.kernel.numpy()
    q = layer.kernel_quantizer(tf.constant(w)).numpy()
    np.testing.assert_allclose(q, np_sign(w) * np.abs(w).mean(axis=(0, 1, 2)), rtol=1e-6)
    assert layer.kernel.precision == 1


# ----------------------------------------------------------------------------------------------------------
# XnorWeight backward == XNOR-Net's analytic gradient


@pytest.mark.parametrize("clip_value", [1.0, 0.5, None])
def test_xnor_backward_matches_analytic_gradient(clip_value, rng):
    w = rng.normal(scale=0.9, size=(3, 3, 5, 4)).astype(np.float32)
    w[1, 1, 0, 0], w[1, 1, 1, 1], w[2, 2, 2, 2] = 1.0, -1.0, 0.5  # exactly at the clip thresholds
    w[0, 1, 2, 3] = 2.5  # far outside
    dy = rng.normal(size=w.shape).astype(np.float32)
    y, g = tf_value_and_grad(lambda t: xnor_weight_sign(t, clip_value=clip_value), w, dy)
    ref_y, ref_g, _ = xnor_reference(w, dy, clip_value)
    np.testing.assert_allclose(y, ref_y, rtol=1e-6)
    np.testing.assert_allclose(g, ref_g, rtol=1e-5, atol=1e-6)
    # The quantizer class has the same gradient.
    _, g_cls = tf_value_and_grad(XnorWeight(clip_value=clip_value), w, dy)
    np.testing.assert_allclose(g_cls, g, rtol=1e-6, atol=1e-7)


def test_xnor_backward_flows_through_alpha(rng):
    """Unlike larq's MagnitudeAwareSign (stop-gradient on alpha), the alpha term is present: a weight outside
    the clip range still gets sign(W_i)/n * sum_j dy_j sign(W_j)."""
    w = rng.normal(scale=0.3, size=(2, 2, 2, 1)).astype(np.float32)
    w[0, 0, 0, 0] = 3.0
    dy = np.ones_like(w)
    _, g = tf_value_and_grad(xnor_weight_sign, w, dy)
    n = w.size
    expected = np.sign(w[0, 0, 0, 0]) / n * np_sign(w).sum()
    assert g[0, 0, 0, 0] == pytest.approx(expected, rel=1e-6)
    assert expected != 0


def test_xnor_backward_matches_finite_differences_of_alpha_path(rng):
    """With the sign held fixed (perturbations too small to flip it), the exact derivative of alpha*sign(W)
    is the through-alpha term; the straight-through part is the STE on top of it."""
    w = rng.uniform(0.2, 0.9, size=(1, 1, 6, 2)) * rng.choice([-1, 1], size=(1, 1, 6, 2))
    dy = rng.normal(size=w.shape)
    _, ref_g, _ = xnor_reference(w, dy, clip_value=None)
    ste_part = xnor_reference(w, dy, clip_value=None)[2] * dy
    h = 1e-6
    for idx in np.ndindex(w.shape):
        wp, wm = w.copy(), w.copy()
        wp[idx] += h
        wm[idx] -= h
        fp = (xnor_reference(wp, dy)[0] * dy).sum()
        fm = (xnor_reference(wm, dy)[0] * dy).sum()
        assert (fp - fm) / (2 * h) == pytest.approx(ref_g[idx] - ste_part[idx], abs=1e-6)


# ----------------------------------------------------------------------------------------------------------
# Masked variant (supernet: a full kernel acting as a grouped one)


def block_diagonal_mask(k, cin, cout, groups):
    i = np.arange(cin)[:, None] // (cin // groups)
    o = np.arange(cout)[None, :] // (cout // groups)
    return np.broadcast_to((i == o).astype(np.float32), (k, k, cin, cout)).copy()


@pytest.mark.parametrize("groups", [1, 2, 4])
def test_masked_xnor_equals_grouped_kernel(groups, rng):
    k, cin, cout = 3, 8, 12
    w = rng.normal(scale=0.8, size=(k, k, cin, cout)).astype(np.float32)
    mask = block_diagonal_mask(k, cin, cout, groups)
    dy = rng.normal(size=w.shape).astype(np.float32)
    y, g = tf_value_and_grad(lambda t: xnor_weight_sign(t, mask=tf.constant(mask)), w, dy)

    ref_y, ref_g, alpha = xnor_reference(w, dy, 1.0, mask)
    np.testing.assert_allclose(y, ref_y, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(g, ref_g, rtol=1e-5, atol=1e-6)
    # Zeros outside the mask, forward and backward.
    assert np.all(y[mask == 0] == 0) and np.all(g[mask == 0] == 0)
    if groups > 1:
        assert np.count_nonzero(mask == 0) > 0

    # Same as quantizing each group's (k, k, cin/g, cout/g) slice on its own.
    ci, co = cin // groups, cout // groups
    for j in range(groups):
        block = w[:, :, j * ci : (j + 1) * ci, j * co : (j + 1) * co]
        block_dy = dy[:, :, j * ci : (j + 1) * ci, j * co : (j + 1) * co]
        by, bg = tf_value_and_grad(xnor_weight_sign, block, block_dy)
        np.testing.assert_allclose(y[:, :, j * ci : (j + 1) * ci, j * co : (j + 1) * co], by, rtol=1e-6)
        np.testing.assert_allclose(g[:, :, j * ci : (j + 1) * ci, j * co : (j + 1) * co], bg, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(alpha[j * co : (j + 1) * co], np.abs(block).mean(axis=(0, 1, 2)), rtol=1e-6)


def test_masked_xnor_broadcast_mask(rng):
    w = rng.normal(size=(3, 3, 4, 4)).astype(np.float32)
    full = block_diagonal_mask(3, 4, 4, 2)
    small = full[:1, :1]  # (1, 1, 4, 4), broadcast over the spatial axes
    a = xnor_weight_sign(tf.constant(w), mask=tf.constant(full)).numpy()
    b = xnor_weight_sign(tf.constant(w), mask=tf.constant(small)).numpy()
    np.testing.assert_array_equal(a, b)


def test_all_ones_mask_equals_unmasked(rng):
    w = rng.normal(size=(3, 3, 4, 4)).astype(np.float32)
    a = xnor_weight_sign(tf.constant(w)).numpy()
    b = xnor_weight_sign(tf.constant(w), mask=tf.ones_like(w)).numpy()
    np.testing.assert_allclose(a, b, rtol=1e-6)


# ----------------------------------------------------------------------------------------------------------
# Serialization through Larq


def test_registry_alias_and_defaults():
    q = lq.quantizers.get("xnor_weight")
    assert isinstance(q, XnorWeight)
    assert q.clip_value == 1.0 and q.precision == 1
    assert lq.quantizers.get("XnorWeight").clip_value == 1.0


@pytest.mark.parametrize("clip_value", [0.5, None, 1.0])
@pytest.mark.parametrize("legacy", [False, True])
def test_serialize_deserialize_round_trip(clip_value, legacy, rng):
    q = XnorWeight(clip_value=clip_value)
    config = lq.quantizers.serialize(q, use_legacy_format=legacy)
    assert config["class_name"] == "XnorWeight"
    assert config["config"]["clip_value"] == clip_value
    restored = lq.quantizers.deserialize(config, use_legacy_format=legacy)
    via_get = lq.quantizers.get(config)
    for r in (restored, via_get):
        assert isinstance(r, XnorWeight) and r is not q
        assert r.clip_value == clip_value
        assert r.get_config() == q.get_config()
    w = rng.normal(size=(3, 3, 2, 3)).astype(np.float32) * 1.5
    dy = rng.normal(size=w.shape).astype(np.float32)
    y0, g0 = tf_value_and_grad(q, w, dy)
    y1, g1 = tf_value_and_grad(restored, w, dy)
    np.testing.assert_array_equal(y0, y1)
    np.testing.assert_array_equal(g0, g1)
