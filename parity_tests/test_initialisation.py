"""Initialisation: Glorot-uniform kernels and zero biases, as Keras initialises them."""
import math

import numpy as np
import pytest
from scipy import stats

from keras_reference.model import build_model, weight_arrays
from lightning_impl.convert import to_keras_arrays
from lightning_impl.network import CifarCNN

KS_P_MIN = 1e-3  # a correct uniform fails this Kolmogorov-Smirnov test once in a thousand kernels


def glorot_limit(kernel_shape: tuple) -> float:
    """sqrt(6 / (fan_in + fan_out)), fans counted over the receptive field (Keras layout)."""
    receptive = math.prod(kernel_shape[:-2]) if len(kernel_shape) > 2 else 1
    return math.sqrt(6.0 / (kernel_shape[-2] * receptive + kernel_shape[-1] * receptive))


def kernels_and_biases(framework: str) -> dict:
    if framework == "keras":
        return weight_arrays(build_model(dropout=True))
    return to_keras_arrays(CifarCNN(dropout=True))


@pytest.mark.parametrize("framework", ["port", "keras"])
def test_kernels_are_glorot_uniform(framework):
    """Every kernel lies in ±limit and passes a KS test against Uniform(-limit, limit)."""
    failures = []
    for name, array in kernels_and_biases(framework).items():
        if not name.endswith("/kernel"):
            continue
        limit = glorot_limit(array.shape)
        values = array.ravel()
        result = stats.kstest(values, stats.uniform(loc=-limit, scale=2 * limit).cdf)
        if np.abs(values).max() > limit or result.pvalue < KS_P_MIN:
            failures.append(f"{name}: max |w| {np.abs(values).max():.4g} (limit {limit:.4g}), "
                            f"KS p {result.pvalue:.2g}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("framework", ["port", "keras"])
def test_biases_start_at_zero(framework):
    """Every bias is zero at initialisation (PyTorch's default would be random)."""
    nonzero = [name for name, a in kernels_and_biases(framework).items() if name.endswith("/bias") and a.any()]
    assert not nonzero, f"non-zero initial biases: {nonzero}"


def test_pytorch_default_init_would_fail_the_glorot_test():
    """Sanity of the test above: PyTorch's kaiming-uniform default is rejected by it."""
    import torch.nn as nn
    conv = nn.Conv2d(64, 64, 3)  # default init, not the port's
    kernel = conv.weight.detach().numpy().transpose(2, 3, 1, 0)
    limit = glorot_limit(kernel.shape)
    assert stats.kstest(kernel.ravel(), stats.uniform(loc=-limit, scale=2 * limit).cdf).pvalue < KS_P_MIN
