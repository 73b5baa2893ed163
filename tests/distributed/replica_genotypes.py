"""Keras callback shared by the distributed test scripts: after every training step, the genotype held by
each local replica (what its forward pass read), as ``[step, [genotype of replica 0, replica 1, ...]]``."""

import tensorflow as tf

from larq_mobisearch.distribute import local_replica_values
from larq_mobisearch.nn.supernet import searchable_layers


class ReplicaGenotypes(tf.keras.callbacks.Callback):
    def __init__(self, strategy):
        super().__init__()
        self.strategy, self.steps = strategy, []

    def on_train_batch_end(self, batch, logs=None):
        per_layer = [local_replica_values(self.strategy, l.groups) for l in searchable_layers(self.model)]
        step = int(self.model.optimizer.iterations.numpy()) - 1
        self.steps.append([step, [[int(v) for v in replica] for replica in zip(*per_layer)]])
