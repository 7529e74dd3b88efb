"""BatchNormalization: the port's layer against Keras's, and why torch's BatchNorm cannot stand in for it.

Keras: epsilon 1e-3; moving = momentum * moving + (1 - momentum) * batch statistic with momentum 0.99;
the batch variance in that update is the biased one (tf.nn.moments). torch.nn.BatchNorm: eps 1e-5;
running = (1 - momentum) * running + momentum * batch statistic with momentum 0.1 (the opposite
meaning); the unbiased variance (n / (n - 1)) in that update. Even with the settings translated
(eps=1e-3, momentum=0.01), torch's moving variance drifts from Keras's.
"""
import keras
import numpy as np
import pytest
import torch

from lightning_impl.network import KerasBatchNorm
from parity_tests.harness import assert_close

STEPS = 5
BATCH = 16  # a Dense layer's batch: n / (n - 1) = 1.067, far from 1
# float32, one layer: measured up to 1.4e-6 on outputs of size up to ~8 (2 units in the last place), 2026-11-30
ATOL = 1e-6
RTOL = 1e-6


def batches(shape: tuple) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    return [rng.normal(0.5, 2.0, shape).astype(np.float32) for _ in range(STEPS)]


def keras_run(inputs: list[np.ndarray], momentum: float, epsilon: float):
    """Training-mode outputs of each batch, then the moving statistics and an inference-mode output."""
    layer = keras.layers.BatchNormalization(momentum=momentum, epsilon=epsilon)
    outputs = [np.asarray(layer(x, training=True)) for x in inputs]
    return outputs, layer.moving_mean.numpy(), layer.moving_variance.numpy(), np.asarray(layer(inputs[0], training=False))


def torch_run(layer: torch.nn.Module, inputs: list[np.ndarray]):
    def nchw(x):  # channels on axis 1, as PyTorch has them
        return torch.from_numpy(x).permute(0, 3, 1, 2) if x.ndim == 4 else torch.from_numpy(x)

    def back(y):
        return (y.permute(0, 2, 3, 1) if y.ndim == 4 else y).detach().numpy()

    layer.train()
    outputs = [back(layer(nchw(x))) for x in inputs]
    layer.eval()
    return outputs, layer.running_mean.numpy(), layer.running_var.numpy(), back(layer(nchw(inputs[0])))


@pytest.mark.parametrize("shape", [(BATCH, 24), (BATCH, 6, 6, 8)], ids=["after-dense", "after-conv"])
@pytest.mark.parametrize("momentum, epsilon", [(0.99, 1e-3), (0.9, 1e-5)])
def test_port_batchnorm_matches_keras_in_training_and_after(shape, momentum, epsilon):
    """Same outputs in training mode, same moving mean and variance after 5 steps, same inference output."""
    inputs = batches(shape)
    expected = keras_run(inputs, momentum, epsilon)
    actual = torch_run(KerasBatchNorm(shape[-1], momentum, epsilon), inputs)
    names = ("training outputs", "moving mean", "moving variance", "inference output")
    assert_close({name: (np.asarray(a), np.asarray(b)) for name, a, b in zip(names, expected, actual)},
                 atol=ATOL, rtol=RTOL, title=f"BatchNormalization {shape}, momentum {momentum}, epsilon {epsilon}")


def test_torch_batchnorm_with_translated_settings_drifts_in_moving_variance():
    """torch.nn.BatchNorm1d(eps=1e-3, momentum=0.01) matches Keras's outputs and moving mean, but not its
    moving variance: the unbiased batch variance puts it off by about 1% x 1/(n - 1) per step."""
    inputs = batches((BATCH, 24))
    expected = keras_run(inputs, 0.99, 1e-3)
    actual = torch_run(torch.nn.BatchNorm1d(24, eps=1e-3, momentum=0.01), inputs)
    assert_close({"training output": (expected[0][0], actual[0][0]),  # normalised with the biased variance in both
                  "moving mean": (expected[1], actual[1])}, atol=ATOL, rtol=RTOL)
    assert float(np.max(np.abs(expected[2] - actual[2]))) > 100 * ATOL  # moving variance (NaN would fail too)


def test_port_batchnorm_defaults_are_keras():
    """The port's BatchNorm takes Keras's defaults, not torch's (test_reference_behaviour pins both)."""
    layer = keras.layers.BatchNormalization()
    assert (KerasBatchNorm(8).epsilon, KerasBatchNorm(8).momentum) == (layer.epsilon, layer.momentum)
