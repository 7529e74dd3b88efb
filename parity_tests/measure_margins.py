"""Print the largest difference each numeric parity check measures, for the README's table.

    CIFAR10_DIR=... python -m parity_tests.measure_margins

Uses the same helpers and inputs as the tests; the tests assert the tolerances, this prints the margins.
"""
import torch  # noqa: F401  (before TensorFlow, see conftest.py)
import torch._dynamo  # noqa: F401

import numpy as np  # noqa: E402

from cifar_common.data import load_cifar10, to_unit_float  # noqa: E402
from keras_reference.model import weight_arrays  # noqa: E402
from lightning_impl.convert import to_keras_arrays  # noqa: E402
from lightning_impl.optim import KerasRMSprop  # noqa: E402
from parity_tests import test_lockstep, test_optimizer  # noqa: E402
from parity_tests.harness import keras_and_port, keras_layer_outputs, port_layer_outputs  # noqa: E402


def largest(a: dict, b: dict) -> float:
    return max(float(np.abs(np.asarray(a[k], np.float64) - np.asarray(b[k], np.float64)).max()) for k in a)


def main() -> None:
    cifar = load_cifar10()
    images = to_unit_float(cifar.x_test[:512])
    for dropout in (False, True):
        model, network = keras_and_port(dropout)
        k, p = keras_layer_outputs(model, images), port_layer_outputs(network, images)
        layers = {n: k[n] for n in k if n != "probs"}
        print(f"forward dropout={dropout}: layers {largest(layers, p):.2e}, probs "
              f"{largest({'probs': k['probs']}, p):.2e}, same class "
              f"{np.mean(k['probs'].argmax(1) == p['probs'].argmax(1)):.4f}")
    rng = np.random.default_rng(7)
    start = [rng.uniform(-0.1, 0.1, s).astype(np.float32) for s in test_optimizer.SHAPES]
    grads = [[(rng.standard_normal(s) * 10.0 ** rng.uniform(-6, 0, s)).astype(np.float32)
              for s in test_optimizer.SHAPES] for _ in range(test_optimizer.STEPS)]
    expected = test_optimizer.keras_steps(start, grads)
    ours = test_optimizer.torch_steps(start, grads, lambda p: KerasRMSprop(p))
    theirs = test_optimizer.torch_steps(start, grads, lambda p: torch.optim.RMSprop(p, lr=0.001, alpha=0.9, eps=1e-7))
    print(f"optimizer 10 steps: KerasRMSprop {test_optimizer.largest_difference(expected, ours):.2e}, "
          f"torch.optim.RMSprop {test_optimizer.largest_difference(expected, theirs):.2e}")
    losses = []
    for step, keras_loss, port_loss, model, network in test_lockstep.lockstep(cifar, 10):
        if step == 0:
            print(f"lockstep after 1 step: max parameter diff {largest(weight_arrays(model), to_keras_arrays(network)):.2e}")
        losses.append(abs(keras_loss - port_loss))
    print(f"lockstep 10 steps: max loss diff {max(losses):.2e}")


if __name__ == "__main__":
    main()
