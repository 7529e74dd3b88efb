"""Print the largest difference each numeric parity check measures, for the README's table.

    CIFAR10_DIR=... python -m parity_tests.measure_margins

Uses the same helpers and inputs as the tests; the tests assert the tolerances, this prints the margins.
Every largest difference is NaN-safe: a NaN anywhere prints as nan.
"""
import torch  # noqa: F401  (before TensorFlow, see conftest.py)
import torch._dynamo  # noqa: F401

import numpy as np  # noqa: E402

from cifar_common.data import load_cifar10, to_unit_float  # noqa: E402
from keras_reference.model import weight_arrays  # noqa: E402
from lightning_impl.convert import to_keras_arrays  # noqa: E402
from lightning_impl.keras_optimizers import KerasRMSprop  # noqa: E402
from parity_tests import lockstep_harness as steps  # noqa: E402
from parity_tests import training_matrix  # noqa: E402
from parity_tests.harness import (ARCHITECTURES, images_for, keras_and_port, keras_layer_outputs,  # noqa: E402
                                  port_layer_outputs, probabilities)


def largest(a: dict, b: dict) -> float:
    """The largest |a - b| over every key of `a`; NaN propagates (np.max, not Python's max)."""
    return float(np.max([np.abs(np.asarray(a[k], np.float64) - np.asarray(b[k], np.float64)).max() for k in a]))


def training_matrix_margins() -> None:
    """Every optimizer option and loss form on the tiny model: the float64 margin over 5 steps (every loss,
    gradient, variable, slot), the float32 first step's variables over their bound, the negative controls."""
    import tempfile
    from pathlib import Path

    from cifar_common import training_parity as tp
    from lightning_impl.stepping import keras_steps

    with tempfile.TemporaryDirectory() as tmp:
        matrix = training_matrix.cases(*training_matrix.save_tiny_model(Path(tmp)))
        records = dict(zip(matrix, keras_steps(list(matrix.values()))))
        for (name, dtype), case in matrix.items():
            if dtype == "float64-first":
                continue
            rows = training_matrix.compare_with_port(records[name, dtype], case, keras_float64_first=records.get(
                (name, "float64-first"), [None])[0])
            if dtype == "float64":
                worst = max(w.difference for row in rows for w in (row.loss, row.gradient, row.variable, row.slot) if w)
                print(f"training {name} float64 5 steps: largest difference {worst:.1e}")
            else:
                first = rows[0].variable
                print(f"training {name} float32 first step: {first.difference:.1e} at {first.name}, "
                      f"{first.difference / first.tolerance:.3f} of its bound")
        for name, make in training_matrix.NEGATIVE_CONTROLS.items():
            rows = training_matrix.compare_with_port(records[name, "float64"], matrix[name, "float64"],
                                                     training_matrix.TorchSetup(make))
            print(f"negative control for {name}: torch's optimizer misses by {max(r.variable.difference for r in rows):.1e}")


def main() -> None:
    training_matrix_margins()
    cifar = load_cifar10()
    test_images = to_unit_float(cifar.x_test[:512])
    for config_name in ARCHITECTURES:
        model, network = keras_and_port(config_name)
        images = images_for(config_name, test_images)
        k, p = keras_layer_outputs(model, images), port_layer_outputs(network, images)
        kp, pp = probabilities(k), probabilities(p)
        print(f"forward {config_name} ({len(images)} images): layers {largest(k, p):.2e}, probs "
              f"{largest({'probs': kp}, {'probs': pp}):.2e}, same class {np.mean(kp.argmax(1) == pp.argmax(1)):.4f}")
    start, grads = steps.start_and_gradients()
    expected = steps.keras_steps(start, grads)
    ours = steps.torch_steps(start, grads, lambda p: KerasRMSprop(p))
    theirs = steps.torch_steps(start, grads, lambda p: torch.optim.RMSprop(p, lr=0.001, alpha=0.9, eps=1e-7))
    print(f"optimizer 10 steps: KerasRMSprop {steps.largest_difference(expected, ours):.2e}, "
          f"torch.optim.RMSprop {steps.largest_difference(expected, theirs):.2e}")
    losses = []
    for step, keras_loss, port_loss, model, network in steps.lockstep(cifar, 10):
        if step == 0:
            print(f"lockstep after 1 step: max parameter diff {largest(weight_arrays(model), to_keras_arrays(network)):.2e}")
        losses.append(abs(keras_loss - port_loss))
    print(f"lockstep 10 steps: max loss diff {float(np.max(losses)):.2e}")
    for config_name in ("variant_batchnorm", "variant_small"):
        for *_, model, network in steps.lockstep(cifar, steps.VARIANT_STEPS, config_name,
                                                         steps.VARIANT_BATCH, steps.VARIANT_DTYPE):
            pass
        expected, actual = weight_arrays(model), to_keras_arrays(network)
        moving = {k: v for k, v in expected.items() if k.endswith(steps.MOVING_STATISTICS)}
        print(f"lockstep {config_name}, {steps.VARIANT_STEPS} {steps.VARIANT_DTYPE} steps: "
              f"every variable {largest(expected, actual):.2e}"
              + (f", moving statistics {largest(moving, actual):.2e}" if moving else ""))


if __name__ == "__main__":
    main()
