"""The comparing machinery of the parity harness; test files hold only inputs and parametrisation.

Every comparison goes through `assert_close`, which checks every named array and, on failure,
prints one per-layer table (layer, shape, largest absolute and relative difference, where,
tolerance, ok), so the first layer that differs is obvious.

The architecture-dependent checks run over `ARCHITECTURES`: the tutorial's two networks and the two
example variants in configs/, each read from its YAML description.
"""
from __future__ import annotations

from typing import Mapping

import keras
import numpy as np
import pytest
import torch

from cifar_common.discrepancy import all_ok, compare_pairs, format_table
from cifar_common.paths import CONFIG_DIR
from cifar_common.spec.config import load_config
from cifar_common.spec.layers import Architecture, Dropout
from keras_reference.inspect_model import layer_outputs
from keras_reference.model import build_model, weight_arrays
from keras_reference.stepping import keras_dtype  # noqa: F401  (the tests' import point)
from lightning_impl import network as port
from lightning_impl.convert import load_keras_arrays

TUTORIAL = ("baseline", "dropout")
VARIANTS = ("variant_batchnorm", "variant_small")
ARCHITECTURES = TUTORIAL + VARIANTS  # config names in configs/
VARIANT_IMAGES = 64  # the variants are checked on fewer images: the suite's time budget


def architecture(config_name: str, dropout: bool = True) -> Architecture:
    """The architecture a config in configs/ describes; without its Dropout layers if not `dropout`
    (training-mode comparisons: two frameworks cannot draw the same dropout masks)."""
    described = load_config(CONFIG_DIR / f"{config_name}.yaml").architecture
    if dropout:
        return described
    return Architecture(described.name, tuple(layer for layer in described.layers if not isinstance(layer, Dropout)))


def images_for(config_name: str, images: np.ndarray) -> np.ndarray:
    return images if config_name in TUTORIAL else images[:VARIANT_IMAGES]


def assert_close(pairs: Mapping[str, tuple[np.ndarray, np.ndarray]], atol: float, rtol: float = 0.0,
                 title: str = "") -> None:
    """Fail with the per-layer table unless every pair (keras, port) is within atol + rtol * |keras|."""
    rows = compare_pairs({k: (np.asarray(a), np.asarray(b)) for k, (a, b) in pairs.items()}, atol, rtol)
    if not all_ok(rows):
        pytest.fail("\n" + format_table(rows, title), pytrace=False)


def keras_and_port(config_name: str, seed: int = 42, dropout: bool = True,
                   dtype: str = "float32") -> tuple[keras.Model, port.CifarCNN]:
    """A freshly initialised Keras model of a config's architecture (BatchNorm's variables drawn at random)
    and a port network holding its weights (both in `dtype`; build inside `keras_dtype(dtype)` for float64)."""
    keras.utils.set_random_seed(seed)
    described = architecture(config_name, dropout)
    model = build_model(described)
    randomise_batchnorm(model, seed)
    if model.get_layer(index=0).dtype != dtype:
        raise RuntimeError(f"the Keras model was built in {model.get_layer(index=0).dtype}, not {dtype}: use keras_dtype")
    network = port.CifarCNN(described).to(getattr(torch, dtype))
    load_keras_arrays(network, weight_arrays(model))
    return model, network


def randomise_batchnorm(model: keras.Model, seed: int) -> None:
    """BatchNormalization's variables drawn at random, as after training: at their initial values
    (gamma 1, beta 0, moving mean 0, moving variance 1) a wrong mapping of them would go unseen."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            shape = layer.gamma.shape
            layer.gamma.assign(rng.uniform(0.5, 1.5, shape).astype(np.float32))
            layer.beta.assign(rng.normal(0.0, 0.2, shape).astype(np.float32))
            layer.moving_mean.assign(rng.normal(0.0, 0.2, shape).astype(np.float32))
            layer.moving_variance.assign(rng.uniform(0.2, 2.0, shape).astype(np.float32))


def nchw(images_nhwc: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images_nhwc)).permute(0, 3, 1, 2).contiguous()


def port_layer_outputs(network: port.CifarCNN, images_nhwc: np.ndarray) -> dict[str, np.ndarray]:
    """The port's per-layer outputs in Keras's layout; the last layer's are the probabilities."""
    return port.keras_layout_outputs(network, images_nhwc)


def keras_layer_outputs(model: keras.Model, images_nhwc: np.ndarray) -> dict[str, np.ndarray]:
    """Keras's per-layer outputs in inference mode; its last layer holds the probabilities."""
    return layer_outputs(model, images_nhwc)


def probabilities(outputs: dict[str, np.ndarray]) -> np.ndarray:
    return outputs[list(outputs)[-1]]


def fit_visit_order(keras_module, fit_kwargs: dict) -> list[int]:
    """The images a Keras `fit` (Keras 3 as `keras`, or Keras 2 as `tf_keras`) trains on, in order, when
    each "image" is its own index, of shape (1,): `fit_kwargs` feed them to a one-weight model that
    records every training batch it steps on."""
    import tensorflow as tf

    seen: list[int] = []

    def record(batch):
        seen.extend(batch.numpy().ravel().astype(int).tolist())
        return 0

    class Recording(keras_module.Model):
        def train_step(self, data):
            tf.py_function(record, [data[0]], tf.int32)
            return super().train_step(data)

    inputs = keras_module.Input((1,))
    model = Recording(inputs, keras_module.layers.Dense(1)(inputs))
    model.compile("rmsprop", "mse")
    model.fit(verbose=0, **fit_kwargs)
    return seen
