"""Loss and gradients: same weights, same batch, same numbers."""
import keras
import numpy as np
import pytest
import tensorflow as tf
import torch
import torch.nn.functional as F

from cifar_common.data import to_unit_float
from lightning_impl.convert import to_keras_arrays
from parity_tests.harness import assert_close, keras_and_port, keras_dtype, nchw

LOSS_RTOL = 1e-6
GRAD_RTOL = 1e-3  # the bound
# float64, identical weights: measured 2.2e-14 at most (variant_batchnorm's conv1 kernel; the tutorial
# 5.9e-17), 2026-11-30, 2-core AMD EPYC. Earlier runs measured 2.7e-9, and 6.3e-6 for conv1 "depending on
# what ran before": Keras then still built float32 layers (set_floatx alone does not change the dtype
# policy once a layer was built; harness.keras_dtype sets both) and the port got float32-rounded weights.
GRAD_ATOL_FLOAT64 = 1e-10
# The issue asks atol 1e-6; float32 does not reach it here. Measured 2026-11-29 (AMD EPYC, torch
# 2.14.1, TF 2.21): port vs Keras up to 8.2e-6 on 256 real images in a fresh process and 5.5e-5
# after other tests ran; 1.6e-4 on one random batch. Remeasured 2026-11-30 against a true float64
# gradient of the same weights and 256 real images (float64 Keras and port agree there to 9e-17):
# Keras's float32 is off by 4.2e-6, the port's by 8.2e-6: both frameworks' float32 rounding, not a
# different formula. (The 2026-11-29 note that Keras's float32 was within 2e-8 of float64 compared
# against a "float64" Keras model that was still float32: see GRAD_ATOL_FLOAT64.)
# Re-measured 2026-12-03 (2-core AMD EPYC, torch 2.14.1, TF 2.21, after the dtype-policy fix; fresh
# process, /tmp script calling keras_loss_and_gradients and the port as below): 8.2e-6 on the 256 real
# images, 3.9e-8 on the random batch. Kept at 2e-4 until the same figure is read inside the full suite's
# order (the 5.5e-5 "after other tests" of 2026-11-29 came from the dtype-policy leak since fixed).
GRAD_ATOL_FLOAT32 = 2e-4


@pytest.fixture(scope="module")
def random_batch():
    """Uniform random images: no two pixels equal, so no max-pool ties."""
    rng = np.random.default_rng(0)
    return rng.random((64, 32, 32, 3)).astype(np.float32), rng.integers(0, 10, 64)


def keras_loss_and_gradients(model: keras.Model, images: np.ndarray, labels: np.ndarray):
    """Keras's categorical cross-entropy on its softmax output, and d loss / d every weight (BatchNorm
    normalises with the batch's statistics here, in training mode, on both sides)."""
    targets = keras.utils.to_categorical(labels, 10)
    loss_fn = keras.losses.CategoricalCrossentropy()
    with tf.GradientTape() as tape:
        loss = loss_fn(targets, model(images, training=True))
    grads = tape.gradient(loss, model.trainable_weights)
    names = [f"{layer.name}/{v.name}" for layer in model.layers for v in layer.trainable_weights]
    return float(loss), {name: g.numpy() for name, g in zip(names, grads)}


def compare_loss_and_gradients(config_name: str, images, labels, dtype: str, atol: float) -> None:
    with keras_dtype(dtype):
        model, network = keras_and_port(config_name, dropout=False, dtype=dtype)
        keras_loss, keras_grads = keras_loss_and_gradients(model, images.astype(dtype), labels)
    network = network.train()
    logits = network(nchw(images.astype(dtype)))
    loss = F.cross_entropy(logits, torch.from_numpy(labels))
    loss.backward()
    port_grads = to_keras_arrays(network, gradients=True)

    assert abs(loss.item() - keras_loss) <= LOSS_RTOL * abs(keras_loss), (loss.item(), keras_loss)
    trainable = [f"{layer.name}/{v.name}" for layer in model.layers for v in layer.trainable_weights]
    assert sorted(keras_grads) == sorted(port_grads) == sorted(trainable)
    assert_close({k: (keras_grads[k], port_grads[k]) for k in keras_grads}, atol=atol, rtol=GRAD_RTOL,
                 title=f"gradients of the loss, {config_name}, {len(labels)} training images, {dtype}")


@pytest.mark.parametrize("config_name", ["baseline", "variant_batchnorm", "variant_small"])
def test_gradients_match_keras_exactly_in_float64(config_name, random_batch):
    """float64 removes most rounding: every gradient agrees within 1e-10 (measured 2.2e-14), BatchNorm's
    gamma and beta (batch statistics, training mode) included."""
    compare_loss_and_gradients(config_name, *random_batch, "float64", GRAD_ATOL_FLOAT64)


def test_loss_and_every_gradient_match_keras(cifar):
    """float32, 256 real training images: loss within 1e-6 relative, gradients within rtol 1e-3, atol 2e-4."""
    compare_loss_and_gradients("baseline", to_unit_float(cifar.x_train[:256]), cifar.y_train[:256], "float32",
                               GRAD_ATOL_FLOAT32)
