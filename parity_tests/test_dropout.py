"""Dropout: element-wise, kept values scaled by 1 / (1 - rate) in training, identity in inference."""
import keras
import numpy as np
import pytest
import torch

from lightning_impl.network import CifarCNN
from parity_tests.harness import architecture


def port_dropout(rate: float):
    network = CifarCNN(architecture("dropout"))
    name = "dropout1" if rate == 0.25 else "dropout4"
    return dict(network.named_children())[name]


def keras_dropout(x: np.ndarray, rate: float, training: bool) -> np.ndarray:
    keras.utils.set_random_seed(0)
    return np.asarray(keras.layers.Dropout(rate)(x, training=training))


def port_apply(x: np.ndarray, rate: float, training: bool) -> np.ndarray:
    torch.manual_seed(0)
    layer = port_dropout(rate).train(training)
    with torch.no_grad():
        return layer(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()


@pytest.mark.parametrize("rate", [0.25, 0.5])
@pytest.mark.parametrize("side", ["keras", "port"])
def test_dropout_is_elementwise_and_scaled(side, rate):
    """In training, values are 0 or x / (1 - rate), about `rate` of them 0, and channels are not dropped whole."""
    x = np.ones((16, 8, 8, 64), dtype=np.float32)
    y = keras_dropout(x, rate, True) if side == "keras" else port_apply(x, rate, True)
    assert set(np.unique(y)) <= {0.0, np.float32(1 / (1 - rate))}
    dropped = (y == 0).mean()
    assert abs(dropped - rate) < 4 * np.sqrt(rate * (1 - rate) / y.size)  # 4 standard errors
    # Channel-wise dropout (Dropout2d) would make each (image, channel) map all 0 or all kept.
    per_map = (y == 0).mean(axis=(1, 2))
    assert ((per_map > 0) & (per_map < 1)).mean() > 0.99


@pytest.mark.parametrize("rate", [0.25, 0.5])
@pytest.mark.parametrize("side", ["keras", "port"])
def test_dropout_is_identity_in_inference(side, rate):
    """In inference mode dropout passes its input through unchanged."""
    x = np.random.default_rng(0).random((4, 8, 8, 64), dtype=np.float32)
    y = keras_dropout(x, rate, False) if side == "keras" else port_apply(x, rate, False)
    assert np.array_equal(x, y)
