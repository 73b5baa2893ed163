"""ReActNet's distributional loss: knowledge distillation from a real-valued teacher.

``loss = -sum_c softmax(teacher_logits)_c * log softmax(student_logits)_c``, averaged over the batch (the
labels are not used; ReActNet's `DistributionLoss`). `Distiller` trains a student with it through the
normal Keras `fit` API: it wraps student and (frozen, inference-mode) teacher, computes the teacher's
logits on the same (augmented) batch and hands ``softmax(teacher)`` to a categorical cross-entropy on the
student's logits, which is the formula above. Accuracy metrics still compare the student with the labels.

The teacher is either the real-valued twin of the architecture (`models.float_conv_factory`, trained in
the run directory by `pipeline.train_teacher`) or any saved Keras model with the same input and number of
classes (`load_teacher_model`).

# References
    - [ReActNet: Towards Precise Binary Neural Network with Generalized Activation Functions](
      https://arxiv.org/abs/2003.03488) §4.3, code: https://github.com/liuzechun/ReActNet (utils/KD_loss.py)
"""

from __future__ import annotations

import os

import tensorflow as tf


def distributional_loss(teacher_logits, student_logits) -> tf.Tensor:
    """Mean over the batch of ``-sum_c softmax(teacher)_c * log_softmax(student)_c``.

    # Arguments
        teacher_logits: (batch, classes) logits of the real-valued teacher (no gradient flows into them).
        student_logits: (batch, classes) logits of the binary student.

    # Returns
        A scalar tensor.
    """
    target = tf.stop_gradient(tf.nn.softmax(teacher_logits, axis=-1))
    return tf.reduce_mean(-tf.reduce_sum(target * tf.nn.log_softmax(student_logits, axis=-1), axis=-1))


def distillation_loss() -> tf.keras.losses.Loss:
    """The Keras loss a `Distiller` is compiled with: categorical cross-entropy on logits, whose target
    `Distiller.compute_loss` sets to ``softmax(teacher_logits)`` (= `distributional_loss`)."""
    return tf.keras.losses.CategoricalCrossentropy(from_logits=True, name="distributional_loss")


class Distiller(tf.keras.Model):
    """Trains `student` with the distributional loss against `teacher` (labels only feed the metrics).

    Calling it runs the student. Its `compute_loss` (Keras 2.16's train and test steps call it with the
    batch's images) runs the teacher in inference mode on the same images. The teacher is frozen
    (``trainable = False``), so the optimizer sees the student's variables only; save the student's
    weights, not the distiller's.

    # Arguments
        student: the model being trained (a fixed model or a supernet).
        teacher: a model mapping the same images to logits over the same classes.
    """

    def __init__(self, student: tf.keras.Model, teacher: tf.keras.Model, **kwargs):
        kwargs.setdefault("name", f"{student.name}_distilled")
        super().__init__(**kwargs)
        check_teacher(teacher, student)
        self.student = student
        self.teacher = teacher
        self.teacher.trainable = False

    def call(self, inputs, training=None):
        return self.student(inputs, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None):
        target = tf.nn.softmax(tf.stop_gradient(self.teacher(x, training=False)), axis=-1)
        return self.compiled_loss(target, y_pred, sample_weight, regularization_losses=self.losses)


def check_teacher(teacher: tf.keras.Model, student: tf.keras.Model) -> None:
    """Raise ValueError unless `teacher` takes the student's input shape and gives as many logits."""
    t_in, s_in = tuple(teacher.inputs[0].shape[1:]), tuple(student.inputs[0].shape[1:])
    t_out, s_out = tuple(teacher.outputs[0].shape[1:]), tuple(student.outputs[0].shape[1:])
    if len(teacher.inputs) != 1 or t_in != s_in or t_out != s_out:
        raise ValueError(f"Teacher {teacher.name!r} maps inputs {t_in} to outputs {t_out}; the student "
                         f"{student.name!r} maps {s_in} to {s_out}: a teacher must take the same images and give "
                         f"logits over the same classes")


def load_teacher_model(path: str) -> tf.keras.Model:
    """A user's saved Keras model (``.keras``, ``.h5`` or SavedModel directory) to distill from; it must output
    logits (no softmax). Layers of this package and Larq load without extra arguments."""
    from .nn.registry import custom_objects

    if not os.path.exists(path):
        raise FileNotFoundError(f"teacher.path: no saved Keras model at {path!r}")
    try:
        return tf.keras.models.load_model(path, custom_objects=custom_objects(), compile=False)
    except (OSError, ValueError, TypeError) as exc:
        raise ValueError(f"teacher.path: cannot load a Keras model from {path!r}: {exc}") from None
