"""What Keras, TensorFlow and torch themselves do, pinned where the port relies on it or departs from it:
a failure here reads "upstream changed", not "the port broke". Also pinned: a `.keras` file's round trip
and torch's BatchNorm defaults.

The reference's per-epoch shuffle, on Keras 3 and on Keras 2 (docs/parity.md, "Data order"):

Seeded Keras 3.15 on TensorFlow 2.21 re-creates the seeded shuffle at every epoch, so `fit(shuffle=True)`
visits the training images in the same order in every epoch. Keras 2 (`tf_keras` 2.21, the API the
tutorial was written for), seeded with the tutorial's `tf.random.set_seed(42)`, draws a new order every
epoch, starting from the same first permutation. Hence `--data-order`: Keras `fixed` by default (as the
recorded runs were made), `reshuffle` as the tutorial's own run trained.
"""
from __future__ import annotations

import numpy as np
import pytest

from parity_tests.harness import fit_visit_order, keras_and_port

N_IMAGES, VALIDATION_SPLIT, BATCH = 40, 0.25, 10
N_TRAIN = int(N_IMAGES * (1 - VALIDATION_SPLIT))


def keras_batch_orders(keras, epochs: int, seed: int = 42) -> list[list[int]]:
    """The order `keras` (Keras 3 or tf_keras) fits shuffled, indexed images in, per epoch, seeded as the
    reference (`keras.utils.set_random_seed`) or the tutorial (`tf.random.set_seed`) seeds it."""
    import tensorflow as tf

    if keras.__version__.startswith("2."):
        tf.random.set_seed(seed)  # as the tutorial seeds
    else:
        keras.utils.set_random_seed(seed)  # as keras_reference.fit seeds
    images = np.arange(N_IMAGES, dtype="float32").reshape(N_IMAGES, 1)  # each "image" is its own index
    seen = fit_visit_order(keras, {"x": images, "y": np.zeros((N_IMAGES, 1), "float32"), "batch_size": BATCH,
                                   "epochs": epochs, "validation_split": VALIDATION_SPLIT, "shuffle": True})
    return [seen[e * N_TRAIN:(e + 1) * N_TRAIN] for e in range(epochs)]


@pytest.fixture(scope="module")
def keras3_orders() -> list[list[int]]:
    import keras
    return keras_batch_orders(keras, epochs=3)


def test_seeded_keras_3_fit_visits_the_training_images_in_the_same_order_every_epoch(keras3_orders):
    """Keras 3: one shuffled order of the first 75% (validation_split takes the end), repeated each epoch."""
    assert sorted(keras3_orders[0]) == list(range(N_TRAIN))
    assert keras3_orders[0] != list(range(N_TRAIN))  # shuffled
    assert keras3_orders[1] == keras3_orders[0] and keras3_orders[2] == keras3_orders[0]


def test_seeded_keras_2_fit_draws_a_new_order_every_epoch_from_the_same_first_one(keras3_orders):
    """Keras 2 (tf_keras): epoch 1's order is Keras 3's; every later epoch has a new one, seed for seed."""
    import tf_keras
    orders = keras_batch_orders(tf_keras, epochs=3)
    assert all(sorted(order) == list(range(N_TRAIN)) for order in orders)
    assert orders[0] == keras3_orders[0]
    assert len({tuple(order) for order in orders}) == 3
    assert keras_batch_orders(tf_keras, epochs=3) == orders  # seeded: the same three orders again


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
