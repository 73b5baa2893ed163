"""Shared test set-up: select Keras 2 before any test module imports TensorFlow or Larq (by importing
larq_mobisearch, which does not import TensorFlow: the same rule as for users, an explicit TF_USE_LEGACY_KERAS=0
is refused); a seeded NumPy generator; TFLite ops through the library's flatbuffer reader."""

from collections import namedtuple

import numpy as np
import pytest

import larq_mobisearch  # noqa: F401  (sets TF_USE_LEGACY_KERAS=1 before any test imports TensorFlow)

TfliteOp = namedtuple("TfliteOp", "name inputs outputs options")


def parse_tflite_ops(flatbuffer: bytes):
    """Operators of subgraph 0 in execution order, read with the library's one flatbuffer reader: name (builtin
    name or custom code), input and output tensor shapes, options (flexbuffer dict for custom ops such as
    LceBconv2d, the builtin options object otherwise)."""
    from larq_mobisearch.deploy.flatbuffer import read_model

    return [TfliteOp(op.name, op.input_shapes, op.output_shapes, op.options) for op in read_model(flatbuffer).ops(0)]


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def tflite_ops():
    return parse_tflite_ops
