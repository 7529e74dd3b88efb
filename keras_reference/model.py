"""The tutorial's network as a Keras `Sequential`, and its weights as plain arrays.

Layer names are fixed (conv1 … conv6, pool1 … pool3, dropout1 … dropout4, flatten, dense1, dense2)
so that both frameworks and the `.keras` file speak of the same layers.
"""
from __future__ import annotations

import keras
import numpy as np
from keras import layers

from cifar_common.config import DatasetConfig, TrainingConfig

CONV_BLOCKS = ((32, "conv1", "conv2", "pool1", "dropout1"),
               (64, "conv3", "conv4", "pool2", "dropout2"),
               (64, "conv5", "conv6", "pool3", "dropout3"))
POOL_DROPOUT = 0.25
DENSE_DROPOUT = 0.5


def build_model(dropout: bool, dataset: DatasetConfig = DatasetConfig()) -> keras.Sequential:
    shape = (dataset.image_size, dataset.image_size, dataset.channels)
    stack: list[layers.Layer] = [keras.Input(shape=shape, name="image")]
    for filters, conv_a, conv_b, pool, drop in CONV_BLOCKS:
        stack += [layers.Conv2D(filters, 3, padding="same", activation="relu", name=conv_a),
                  layers.Conv2D(filters, 3, padding="same", activation="relu", name=conv_b),
                  layers.MaxPooling2D(2, name=pool)]
        if dropout:
            stack.append(layers.Dropout(POOL_DROPOUT, name=drop))
    stack += [layers.Flatten(name="flatten"), layers.Dense(512, activation="relu", name="dense1")]
    if dropout:
        stack.append(layers.Dropout(DENSE_DROPOUT, name="dropout4"))
    stack.append(layers.Dense(dataset.num_classes, activation="softmax", name="dense2"))
    return keras.Sequential(stack, name="cifar10_cnn_dropout" if dropout else "cifar10_cnn")


def compile_model(model: keras.Model, training: TrainingConfig) -> keras.Model:
    """The tutorial's `compile(optimizer="rmsprop", ...)`, with the step size from the config."""
    model.compile(
        optimizer=keras.optimizers.RMSprop(learning_rate=training.learning_rate, rho=training.rho,
                                           epsilon=training.epsilon),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def layer_table(model: keras.Model) -> list[dict]:
    """One row per layer: name, kind, output shape (without the batch axis), parameter count, rate."""
    return [{
        "name": layer.name,
        "kind": type(layer).__name__,
        "output_shape": tuple(layer.output.shape[1:]),
        "params": int(layer.count_params()),
        "rate": getattr(layer, "rate", None),
    } for layer in model.layers]


def weight_arrays(model: keras.Model) -> dict[str, np.ndarray]:
    """`{"conv1/kernel": (kh, kw, in, out), "conv1/bias": ..., "dense1/kernel": (in, out), ...}`."""
    arrays = {}
    for layer in model.layers:
        for variable in layer.weights:
            arrays[f"{layer.name}/{variable.name}"] = np.array(variable.numpy())
    return arrays


def set_weight_arrays(model: keras.Model, arrays: dict[str, np.ndarray]) -> None:
    for layer in model.layers:
        for variable in layer.weights:
            variable.assign(arrays[f"{layer.name}/{variable.name}"])
