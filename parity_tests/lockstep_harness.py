"""Stepping machinery of the tutorial's lockstep and optimizer checks, shared by their tests and by
measure_margins (which imports no test file).

Keras runs in this process here (the harness imports torch and torch._dynamo first); the stepping of a
user's model for check_parity lives in the product (keras_reference.stepping, lightning_impl.stepping).
"""
import keras
import numpy as np
import torch
import torch.nn.functional as F

from cifar_common.data import to_unit_float
from cifar_common.spec.config import TrainingConfig
from keras_reference.model import compile_model
from lightning_impl.keras_optimizers import KerasRMSprop
from parity_tests.harness import keras_and_port, keras_dtype, nchw

BATCH = 256
VARIANT_BATCH = 32
VARIANT_STEPS = 2
# The variants step in float64. In float32, BatchNorm's backward (sums over 65,536 values per channel,
# then differences of them) leaves gradients of the two frameworks up to 3.7e-3 apart on 64 real
# images (measured 2026-11-30), and RMSprop's first steps, which divide by the gradient's own size,
# carry that into the weights. In float64 the same steps agree to rounding, so a wrong formula shows.
VARIANT_DTYPE = "float64"
VARIANT_ATOL = 1e-9
MOVING_STATISTICS = ("moving_mean", "moving_variance")


def lockstep(cifar, steps: int, config_name: str = "baseline", batch: int = BATCH, dtype: str = "float32"):
    """Train both sides on the first `steps` training batches; yield (step, keras loss, port loss, model, network)."""
    with keras_dtype(dtype):
        model, network = keras_and_port(config_name, dropout=False, dtype=dtype)
        compile_model(model, TrainingConfig())
        optimizer = KerasRMSprop(network.parameters(), lr=0.001, rho=0.9, epsilon=1e-7)
        network.train()
        for step in range(steps):
            images = to_unit_float(cifar.x_train[step * batch:(step + 1) * batch]).astype(dtype)
            labels = cifar.y_train[step * batch:(step + 1) * batch]
            keras_loss = float(model.train_on_batch(images, keras.utils.to_categorical(labels, 10))[0])
            optimizer.zero_grad()
            loss = F.cross_entropy(network(nchw(images)), torch.from_numpy(labels))
            loss.backward()
            optimizer.step()
            yield step, keras_loss, loss.item(), model, network


STEPS = 10
SHAPES = [(3, 3, 3, 32), (32,), (1024, 512), (10,)]


def start_and_gradients(seed: int = 7) -> tuple[list[np.ndarray], list[list[np.ndarray]]]:
    """Starting parameters and STEPS gradient tensors per parameter, of very different sizes (1e-6 to 1)."""
    rng = np.random.default_rng(seed)
    start = [rng.uniform(-0.1, 0.1, s).astype(np.float32) for s in SHAPES]
    grads = [[(rng.standard_normal(s) * 10.0 ** rng.uniform(-6, 0, s)).astype(np.float32) for s in SHAPES]
             for _ in range(STEPS)]
    return start, grads


def keras_steps(start, grads) -> list[np.ndarray]:
    variables = [keras.Variable(p) for p in start]
    optimizer = keras.optimizers.RMSprop(learning_rate=0.001, rho=0.9, epsilon=1e-7)
    for step in grads:
        optimizer.apply_gradients(zip([keras.ops.convert_to_tensor(g) for g in step], variables))
    return [v.numpy() for v in variables]


def torch_steps(start, grads, make_optimizer) -> list[np.ndarray]:
    params = [torch.nn.Parameter(torch.from_numpy(p.copy())) for p in start]
    optimizer = make_optimizer(params)
    for step in grads:
        for p, g in zip(params, step):
            p.grad = torch.from_numpy(g.copy())
        optimizer.step()
    return [p.detach().numpy() for p in params]


def largest_difference(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """The largest |a - b| over every tensor; NaN if any difference is NaN (so every comparison with it fails)."""
    return float(np.max([np.abs(x - y).max() for x, y in zip(a, b)]))
