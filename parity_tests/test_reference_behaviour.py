"""What Keras, TensorFlow and torch themselves do, pinned where the port relies on it or departs from it:
a failure here reads "upstream changed", not "the port broke".

The per-epoch shuffle (docs/parity.md, "Known limits"): with `keras.utils.set_random_seed` (the tutorial
seeds everything), Keras 3.15 on TensorFlow 2.21 re-creates the seeded shuffle at every epoch, so
`fit(shuffle=True)` visits the training images in the same order in every epoch. The port draws a new
seeded order each epoch. Also pinned: a `.keras` file's round trip, and torch's BatchNorm defaults.
"""
from __future__ import annotations

import numpy as np
import pytest

from parity_tests.harness import keras_and_port


def keras_batch_orders(epochs: int, seed: int = 42) -> list[list[int]]:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    images = np.arange(40, dtype="float32").reshape(40, 1)  # each "image" is its own index
    seen: list[int] = []

    def record(batch):
        seen.extend(batch.numpy().ravel().astype(int).tolist())
        return 0

    class Recording(keras.Model):
        def train_step(self, data):
            tf.py_function(record, [data[0]], tf.int32)
            return super().train_step(data)

    inputs = keras.Input((1,))
    model = Recording(inputs, keras.layers.Dense(1)(inputs))
    model.compile("rmsprop", "mse")
    model.fit(images, np.zeros((40, 1), "float32"), batch_size=10, epochs=epochs, validation_split=0.25,
              shuffle=True, verbose=0)
    return [seen[e * 30:(e + 1) * 30] for e in range(epochs)]


def test_seeded_keras_fit_visits_the_training_images_in_the_same_order_every_epoch():
    """Keras 3 on TensorFlow, seeded as the tutorial is, repeats its first-epoch order every epoch."""
    orders = keras_batch_orders(epochs=3)
    assert sorted(orders[0]) == list(range(30))  # the first 75%, each once: validation_split takes the end
    assert orders[0] != list(range(30))  # shuffled
    assert orders[1] == orders[0] and orders[2] == orders[0]


@pytest.mark.parametrize("config_name", ["dropout", "variant_batchnorm"])
def test_keras_file_reloads_to_identical_outputs(config_name, tmp_path, test_images):
    """A Keras model saved as .keras and loaded back predicts bit-identical probabilities."""
    import keras
    model, _ = keras_and_port(config_name)
    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    images = test_images[:64]
    assert np.array_equal(model.predict(images, verbose=0), reloaded.predict(images, verbose=0))


def test_torch_batchnorm_defaults_are_not_keras():
    """The defaults differ in both numbers: eps 1e-5 vs 1e-3, momentum 0.1 (weight of the new batch)
    vs 0.99 (weight of the old average)."""
    import keras
    import torch
    layer, torch_layer = keras.layers.BatchNormalization(), torch.nn.BatchNorm2d(8)
    assert (layer.epsilon, layer.momentum) == (1e-3, 0.99)
    assert (torch_layer.eps, torch_layer.momentum) == (1e-5, 0.1)
