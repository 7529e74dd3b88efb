"""Initialisation: Glorot-uniform kernels, zero biases and BatchNorm's (1, 0, 0, 1), as Keras initialises them."""
import math

import numpy as np
import pytest
from scipy import stats

from keras_reference.model import build_model, weight_arrays
from lightning_impl.convert import to_keras_arrays
from lightning_impl.network import CifarCNN
from parity_tests.harness import architecture

# The tutorial's network (dropout changes no weights) and the variants: other kernel sizes, BatchNorm.
INIT_ARCHITECTURES = ("dropout", "variant_batchnorm", "variant_small")
BATCHNORM_START = {"gamma": 1.0, "beta": 0.0, "moving_mean": 0.0, "moving_variance": 1.0}

KS_P_MIN = 1e-3  # a correct uniform fails this Kolmogorov-Smirnov test once in a thousand kernels


def glorot_limit(kernel_shape: tuple) -> float:
    """sqrt(6 / (fan_in + fan_out)), fans counted over the receptive field (Keras layout)."""
    receptive = math.prod(kernel_shape[:-2]) if len(kernel_shape) > 2 else 1
    return math.sqrt(6.0 / (kernel_shape[-2] * receptive + kernel_shape[-1] * receptive))


def initial_variables(framework: str, config_name: str) -> dict:
    if framework == "keras":
        return weight_arrays(build_model(architecture(config_name)))
    return to_keras_arrays(CifarCNN(architecture(config_name)))


@pytest.mark.parametrize("config_name", INIT_ARCHITECTURES)
@pytest.mark.parametrize("framework", ["port", "keras"])
def test_kernels_are_glorot_uniform(framework, config_name):
    """Every kernel lies in ±limit and passes a KS test against Uniform(-limit, limit)."""
    failures = []
    for name, array in initial_variables(framework, config_name).items():
        if not name.endswith("/kernel"):
            continue
        limit = glorot_limit(array.shape)
        values = array.ravel()
        result = stats.kstest(values, stats.uniform(loc=-limit, scale=2 * limit).cdf)
        if np.abs(values).max() > limit or result.pvalue < KS_P_MIN:
            failures.append(f"{name}: max |w| {np.abs(values).max():.4g} (limit {limit:.4g}), "
                            f"KS p {result.pvalue:.2g}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("config_name", INIT_ARCHITECTURES)
@pytest.mark.parametrize("framework", ["port", "keras"])
def test_biases_and_batchnorm_start_as_in_keras(framework, config_name):
    """Every bias is zero (PyTorch's default would be random); BatchNorm starts at gamma 1, beta 0,
    moving mean 0, moving variance 1."""
    variables = initial_variables(framework, config_name)
    wrong = [name for name, a in variables.items() if name.endswith("/bias") and a.any()]
    wrong += [name for name, a in variables.items()
              if name.split("/")[1] in BATCHNORM_START and not (a == BATCHNORM_START[name.split("/")[1]]).all()]
    assert not wrong, f"initial values unlike Keras's: {wrong}"
    assert (config_name != "variant_batchnorm") or sum(n.endswith("/moving_variance") for n in variables) == 7


def test_pytorch_default_init_would_fail_the_glorot_test():
    """Sanity of the test above: PyTorch's kaiming-uniform default is rejected by it."""
    import torch.nn as nn
    conv = nn.Conv2d(64, 64, 3)  # default init, not the port's
    kernel = conv.weight.detach().numpy().transpose(2, 3, 1, 0)
    limit = glorot_limit(kernel.shape)
    assert stats.kstest(kernel.ravel(), stats.uniform(loc=-limit, scale=2 * limit).cdf).pvalue < KS_P_MIN
