"""Weight transfer both ways, in memory and through a saved `.keras` file, for every described network."""
import dataclasses
import subprocess
import sys
import zipfile

import pytest

from cifar_common.errors import UserError
from cifar_common.spec.layers import Architecture
from keras_reference.model import build_model, set_weight_arrays, weight_arrays
from lightning_impl.convert import load_keras_file, to_keras_arrays
from lightning_impl.network import CifarCNN
from parity_tests.harness import (ARCHITECTURES, architecture, assert_close, images_for, keras_and_port,
                                  keras_layer_outputs, port_layer_outputs, probabilities)

PROBS_ATOL = 1e-5  # float32 forward passes of the same weights (measured: see README)


@pytest.mark.parametrize("config_name", ARCHITECTURES)
def test_keras_arrays_round_trip_through_the_port_exactly(config_name):
    """Keras arrays -> port -> Keras arrays returns every variable bit for bit (layouts, the flatten
    permutation, BatchNorm's gamma, beta and moving statistics)."""
    model, network = keras_and_port(config_name)
    original, returned = weight_arrays(model), to_keras_arrays(network)
    assert sorted(original) == sorted(returned)
    assert_close({k: (original[k], returned[k]) for k in original}, atol=0.0, title="round trip")


@pytest.mark.parametrize("config_name", ARCHITECTURES)
def test_port_weights_moved_into_keras_give_the_same_outputs(config_name, test_images):
    """A port initialised (or trained) in PyTorch, moved into Keras, gives the same probabilities."""
    network = CifarCNN(architecture(config_name))  # PyTorch-side initialisation, different from Keras's
    model = build_model(architecture(config_name))
    set_weight_arrays(model, to_keras_arrays(network))
    images = images_for(config_name, test_images)
    keras_out, port_out = keras_layer_outputs(model, images), port_layer_outputs(network, images)
    assert_close({"probs": (probabilities(keras_out), probabilities(port_out))}, atol=PROBS_ATOL)


@pytest.mark.parametrize("config_name", ["dropout", "variant_batchnorm", "variant_small"])
def test_keras_file_loads_into_port(config_name, tmp_path, test_images):
    """A `.keras` file saved by Keras loads into the port (h5py, no TensorFlow) with equal variables and outputs."""
    model, _ = keras_and_port(config_name)
    path = tmp_path / "trained.keras"
    model.save(path)
    network = CifarCNN(architecture(config_name))
    load_keras_file(path, network)
    saved, loaded = weight_arrays(model), to_keras_arrays(network)
    assert sorted(saved) == sorted(loaded)
    assert_close({k: (saved[k], loaded[k]) for k in saved}, atol=0.0, title="file -> port")
    images = images_for(config_name, test_images)
    keras_out, port_out = keras_layer_outputs(model, images), port_layer_outputs(network, images)
    assert_close({"probs": (probabilities(keras_out), probabilities(port_out))}, atol=PROBS_ATOL)


def test_reading_a_keras_file_needs_no_tensorflow(tmp_path):
    """lightning_impl.convert reads a `.keras` file in a process that never imports TensorFlow."""
    path = tmp_path / "model.keras"
    build_model(architecture("variant_batchnorm")).save(path)
    code = ("import sys; from lightning_impl.convert import load_keras_file; "
            "from lightning_impl.network import CifarCNN; "
            "from cifar_common.spec.keras_config import architecture_of_keras_file; "
            f"load_keras_file({str(path)!r}, CifarCNN(architecture_of_keras_file({str(path)!r})[0])); "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'TensorFlow was imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_keras_file_of_another_architecture_names_the_layer_and_options(tmp_path):
    """The tutorial with 128 filters in its third conv (a user's names) is refused for the tutorial's port,
    naming both layers and their options."""
    tutorial = architecture("baseline")
    other = Architecture("other", tuple(
        dataclasses.replace(layer, name=f"my_{layer.name}", **({"filters": 128} if layer.name == "conv3" else {}))
        for layer in tutorial.layers))
    path = tmp_path / "other.keras"
    build_model(other).save(path)
    with pytest.raises(UserError) as error:
        load_keras_file(path, CifarCNN(tutorial))
    message = str(error.value)
    assert "layer 4, my_conv3, is Conv2D(filters=128" in message and "conv3 is Conv2D(filters=64" in message, message


def test_corrupt_keras_file_gives_a_clear_error(tmp_path):
    """A truncated `.keras` file is refused with a message naming it, not an h5py traceback."""
    good = tmp_path / "good.keras"
    build_model(architecture("baseline")).save(good)
    bad = tmp_path / "bad.keras"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(UserError, match="bad.keras: not a readable .keras file"):
        load_keras_file(bad, CifarCNN(architecture("baseline")))
    assert zipfile.is_zipfile(good)
