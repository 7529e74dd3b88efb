"""Weight transfer both ways, in memory and through a saved `.keras` file."""
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from cifar_common.errors import UserError
from keras_reference.model import build_model, set_weight_arrays, weight_arrays
from lightning_impl.convert import load_keras_file, to_keras_arrays
from lightning_impl.network import CifarCNN
from parity_tests.harness import assert_close, keras_and_port, keras_layer_outputs, port_layer_outputs

PROBS_ATOL = 1e-5  # float32 forward passes of the same weights (measured: see README)


def test_keras_arrays_round_trip_through_the_port_exactly():
    """Keras arrays -> port -> Keras arrays returns every array bit for bit (layouts and the flatten permutation)."""
    model, network = keras_and_port(dropout=False)
    original, returned = weight_arrays(model), to_keras_arrays(network)
    assert sorted(original) == sorted(returned)
    assert_close({k: (original[k], returned[k]) for k in original}, atol=0.0, title="round trip")


def test_port_weights_moved_into_keras_give_the_same_outputs(test_images):
    """A port trained or initialised in PyTorch, moved into Keras, gives the same probabilities."""
    network = CifarCNN(dropout=False)  # PyTorch-side initialisation, different from Keras's
    model = build_model(dropout=False)
    set_weight_arrays(model, to_keras_arrays(network))
    keras_out, port_out = keras_layer_outputs(model, test_images), port_layer_outputs(network, test_images)
    assert_close({"probs": (keras_out["probs"], port_out["probs"])}, atol=PROBS_ATOL)


def test_keras_file_loads_into_port(tmp_path, test_images):
    """A `.keras` file saved by Keras loads into the port (h5py, no TensorFlow) with equal outputs."""
    model, _ = keras_and_port(dropout=True)
    path = tmp_path / "trained.keras"
    model.save(path)
    network = CifarCNN(dropout=True)
    load_keras_file(path, network)
    saved = weight_arrays(model)
    loaded = to_keras_arrays(network)
    assert_close({k: (saved[k], loaded[k]) for k in saved}, atol=0.0, title="file -> port")
    keras_out, port_out = keras_layer_outputs(model, test_images), port_layer_outputs(network, test_images)
    assert_close({"probs": (keras_out["probs"], port_out["probs"])}, atol=PROBS_ATOL)


def test_reading_a_keras_file_needs_no_tensorflow(tmp_path):
    """lightning_impl.convert reads a `.keras` file in a process that never imports TensorFlow."""
    path = tmp_path / "model.keras"
    build_model(dropout=False).save(path)
    code = ("import sys; from lightning_impl.convert import load_keras_file; "
            "from lightning_impl.network import CifarCNN; "
            f"load_keras_file({str(path)!r}, CifarCNN(False)); "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'TensorFlow was imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_keras_file_of_another_architecture_names_the_layer_and_shapes(tmp_path):
    """A model with 128 filters in conv3 is refused with the layer name and both shapes."""
    import keras
    from keras import layers
    other = keras.Sequential([keras.Input((32, 32, 3))] + [
        layers.Conv2D(f, 3, padding="same", activation="relu") for f in (32, 32, 128, 64, 64, 64)
    ] + [layers.Flatten(), layers.Dense(512), layers.Dense(10, activation="softmax")])
    path = tmp_path / "other.keras"
    other.save(path)
    with pytest.raises(UserError) as error:
        load_keras_file(path, CifarCNN(dropout=False))
    message = str(error.value)
    assert "conv3" in message and "(3, 3, 32, 128)" in message and "(3, 3, 32, 64)" in message, message


def test_corrupt_keras_file_gives_a_clear_error(tmp_path):
    """A truncated `.keras` file is refused with a message naming it, not an h5py traceback."""
    good = tmp_path / "good.keras"
    build_model(dropout=False).save(good)
    bad = tmp_path / "bad.keras"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(UserError, match="bad.keras: not a readable .keras file"):
        load_keras_file(bad, CifarCNN(dropout=False))
    assert zipfile.is_zipfile(good)
