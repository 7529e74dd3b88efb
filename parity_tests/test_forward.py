"""Forward pass: same weights, same real images, same outputs, layer by layer, for every described network."""
import numpy as np
import pytest
import torch

from cifar_common.spec.layers import Architecture, Conv2D, Dense, Flatten
from keras_reference.model import build_model, weight_arrays
from lightning_impl.convert import load_keras_arrays
from lightning_impl.network import CifarCNN
from parity_tests.harness import (ARCHITECTURES, assert_close, images_for, keras_and_port, keras_layer_outputs,
                                  port_layer_outputs, probabilities)

LAYER_ATOL = 1e-5  # float32, same weights: the largest difference measured is ~1e-6 (README)
PROBS_ATOL = 1e-5  # the bound on probabilities


@pytest.mark.parametrize("config_name", ARCHITECTURES)
def test_forward_matches_keras_layer_by_layer(config_name, test_images):
    """Every layer's output and the probabilities agree within 1e-5 (512 real test images; 64 for the variants)."""
    model, network = keras_and_port(config_name)
    images = images_for(config_name, test_images)
    keras_out, port_out = keras_layer_outputs(model, images), port_layer_outputs(network, images)
    assert list(keras_out) == list(port_out)
    title = f"forward, {config_name}, {len(images)} test images"
    assert_close({name: (keras_out[name], port_out[name]) for name in keras_out}, atol=LAYER_ATOL, title=title)
    assert_close({"probs": (probabilities(keras_out), probabilities(port_out))}, atol=PROBS_ATOL, title=title)


@pytest.mark.parametrize("config_name", ARCHITECTURES)
def test_predicted_classes_are_identical(config_name, test_images):
    """The argmax class of every image is the same on both sides."""
    model, network = keras_and_port(config_name)
    images = images_for(config_name, test_images)
    keras_pred = probabilities(keras_layer_outputs(model, images)).argmax(axis=1)
    port_pred = probabilities(port_layer_outputs(network, images)).argmax(axis=1)
    differing = np.flatnonzero(keras_pred != port_pred)
    assert differing.size == 0, f"{differing.size} images differ, first {differing[:10].tolist()}"


@pytest.mark.parametrize("kernel, stride", [(3, 2), (4, 1), (5, 2)])
def test_same_padding_is_tensorflows_not_pytorchs(kernel, stride, test_images):
    """'same' with stride 2 or an even kernel pads one more row and column at the bottom/right (TensorFlow's
    rule): the port matches Keras, and PyTorch's symmetric padding of the same weights does not."""
    spec = Architecture("pad", (Conv2D("conv", 4, (kernel, kernel), (stride, stride), "same", "linear"),
                                Flatten("flatten"), Dense("out", 10, activation="softmax")))
    model, network = build_model(spec), CifarCNN(spec)
    load_keras_arrays(network, weight_arrays(model))
    images = test_images[:8]
    expected = keras_layer_outputs(model, images)["conv"]
    assert_close({"conv": (expected, port_layer_outputs(network, images)["conv"])}, atol=LAYER_ATOL)
    conv = network.conv
    symmetric = torch.nn.functional.conv2d(torch.from_numpy(images).permute(0, 3, 1, 2), conv.weight, conv.bias,
                                           stride, padding=kernel // 2)
    symmetric = symmetric.detach().permute(0, 2, 3, 1).numpy()
    assert symmetric.shape != expected.shape or np.abs(symmetric - expected).max() > 1e-2
