"""The described network as a Keras `Sequential`, and its weights as plain arrays.

Each layer of the architecture description is the Keras layer of the same class, built with the
description's options as its arguments and named as described, so both frameworks and the `.keras`
file speak of the same layers (the tutorial's: conv1 ... conv6, pool1 ... pool3, dropout1 ...
dropout4, flatten, dense1, dense2).
"""
from __future__ import annotations

import keras
import numpy as np

from cifar_common.spec.config import DatasetConfig, TrainingConfig
from cifar_common.spec.layers import INPUT, MERGES, Architecture, layer_options


def build_model(architecture: Architecture, dataset: DatasetConfig = DatasetConfig(),
                input_shape: tuple[int, int, int] | None = None) -> keras.Model:
    """A `Sequential` for a chain, a functional model for a graph (Add and Concatenate take lists). The
    input is the dataset's square images, or `input_shape` (height, width, channels) when given."""
    shape = input_shape or (dataset.image_size, dataset.image_size, dataset.channels)
    layers = [getattr(keras.layers, type(spec).__name__)(**layer_options(spec)) for spec in architecture.layers]
    if not architecture.inbound:
        return keras.Sequential([keras.Input(shape=shape, name="image"), *layers], name=architecture.name)
    outputs = {INPUT: keras.Input(shape=shape, name="image")}
    for index, layer in enumerate(layers):
        inputs = [outputs[name] for name in architecture.inputs_of(index)]
        outputs[layer.name] = layer(inputs if isinstance(architecture.layers[index], MERGES) else inputs[0])
    return keras.Model(outputs[INPUT], outputs[layers[-1].name], name=architecture.name)


def compile_model(model: keras.Model, training: TrainingConfig) -> keras.Model:
    """The tutorial's `compile(optimizer="rmsprop", ...)`, with the step size from the config."""
    model.compile(
        optimizer=keras.optimizers.RMSprop(learning_rate=training.learning_rate, rho=training.rho,
                                           epsilon=training.epsilon),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def parameter_count(weights) -> int:
    return int(sum(np.prod(w.shape) for w in weights))


def layer_table(model: keras.Model) -> list[dict]:
    """One row per layer: name, class, output shape (without the batch axis), trainable and other
    parameters (BatchNormalization's moving statistics), dropout rate."""
    return [{
        "name": layer.name,
        "kind": type(layer).__name__,
        "output_shape": tuple(layer.output.shape[1:]),
        "params": parameter_count(layer.trainable_weights),
        "non_trainable": parameter_count(layer.non_trainable_weights),
        "rate": getattr(layer, "rate", None),
    } for layer in model.layers]


def weight_arrays(model: keras.Model) -> dict[str, np.ndarray]:
    """`{"conv1/kernel": (kh, kw, in, out), "conv1/bias": ..., "bn/moving_mean": ..., ...}`, every variable."""
    arrays = {}
    for layer in model.layers:
        for variable in layer.weights:
            arrays[f"{layer.name}/{variable.name}"] = np.array(variable.numpy())
    return arrays


def set_weight_arrays(model: keras.Model, arrays: dict[str, np.ndarray]) -> None:
    for layer in model.layers:
        for variable in layer.weights:
            variable.assign(arrays[f"{layer.name}/{variable.name}"])
