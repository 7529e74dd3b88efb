"""What the reference's per-epoch shuffle really does, pinned so a Keras or TensorFlow upgrade that
changes it is noticed (docs/parity.md, "Known limits").

With `keras.utils.set_random_seed` (the tutorial seeds everything), Keras 3.15 on TensorFlow 2.21
re-creates the seeded shuffle at every epoch, so `fit(shuffle=True)` visits the training images in
the same order in every epoch. The port draws a new seeded order each epoch.
"""
from __future__ import annotations

import numpy as np


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
    orders = keras_batch_orders(epochs=3)
    assert sorted(orders[0]) == list(range(30))  # the first 75%, each once: validation_split takes the end
    assert orders[0] != list(range(30))  # shuffled
    assert orders[1] == orders[0] and orders[2] == orders[0]
