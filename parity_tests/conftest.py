"""Global switches and shared fixtures of the parity harness.

Import order matters: TensorFlow first, then anything that loads Triton (creating any torch
optimizer does) segfaults the process. conftest.py is imported before every test module, so
importing torch and torch._dynamo here makes the suite safe in any test order.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import torch  # noqa: E402  (must precede TensorFlow)
import torch._dynamo  # noqa: E402,F401  (loads the compiler stack before TensorFlow can)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from cifar_common.data import ENV_VAR, Cifar10, load_cifar10  # noqa: E402

# Parity runs in strict float32 on both sides (TF32 would change the numbers on GPUs).
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
torch.set_float32_matmul_precision("highest")


@pytest.fixture(scope="session")
def cifar() -> Cifar10:
    """The real CIFAR-10 (from $CIFAR10_DIR; `make test` in CI sets it to the offline copy)."""
    if not os.environ.get(ENV_VAR):
        pytest.fail(f"set {ENV_VAR} to a cifar-10-batches-py folder: the parity tests use the real data")
    return load_cifar10()


@pytest.fixture(scope="session")
def test_images(cifar) -> np.ndarray:
    """512 real test images as float32 NHWC in [0, 1], as Keras sees them."""
    from cifar_common.data import to_unit_float
    return to_unit_float(cifar.x_test[:512])


@pytest.fixture(scope="session")
def report_dir():
    """Where opt-in measurement tests write their committed results."""
    from pathlib import Path
    path = Path(__file__).resolve().parent.parent / "reports"
    path.mkdir(exist_ok=True)
    return path
