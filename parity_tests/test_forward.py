"""Forward pass: same weights, same real images, same outputs, layer by layer."""
import numpy as np
import pytest

from parity_tests.harness import assert_close, keras_and_port, keras_layer_outputs, port_layer_outputs

LAYER_ATOL = 1e-5  # float32, same weights: the largest difference measured is ~1e-6 (README)
PROBS_ATOL = 1e-5  # the bound on probabilities


@pytest.mark.parametrize("dropout", [False, True], ids=["baseline", "dropout-inference"])
def test_forward_matches_keras_layer_by_layer(dropout, test_images):
    """Every layer's output and the probabilities of 512 real test images agree within 1e-5."""
    model, network = keras_and_port(dropout)
    keras_out, port_out = keras_layer_outputs(model, test_images), port_layer_outputs(network, test_images)
    assert list(keras_out) == list(port_out)
    assert_close({name: (keras_out[name], port_out[name]) for name in keras_out}, atol=LAYER_ATOL,
                 title=f"forward, {len(test_images)} test images")


@pytest.mark.parametrize("dropout", [False, True], ids=["baseline", "dropout-inference"])
def test_predicted_classes_are_identical(dropout, test_images):
    """The argmax class of every one of the 512 images is the same on both sides."""
    model, network = keras_and_port(dropout)
    keras_pred = keras_layer_outputs(model, test_images)["probs"].argmax(axis=1)
    port_pred = port_layer_outputs(network, test_images)["probs"].argmax(axis=1)
    differing = np.flatnonzero(keras_pred != port_pred)
    assert differing.size == 0, f"{differing.size} images differ, first {differing[:10].tolist()}"
