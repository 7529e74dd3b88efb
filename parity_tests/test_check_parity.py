"""The user command `python -m lightning_impl.check_parity MODEL.keras`."""
import json

import keras
import numpy as np
import pytest

from cifar_common.spec.config import DatasetConfig
from cifar_common.spec.yaml_form import parse_architecture
from keras_reference.model import build_model
from lightning_impl import check_parity, convert, keras_optimizers
from parity_tests.harness import keras_and_port


def test_check_parity_passes_a_keras_model(tmp_path, capsys):
    """A Keras model's file passes: exit 0, a per-layer table and the PASS verdict."""
    model, _ = keras_and_port("dropout")
    model.save(tmp_path / "model.keras")
    assert check_parity.main([str(tmp_path / "model.keras"), "--images", "64"]) == 0
    out = capsys.readouterr().out
    assert "verdict: PASS" in out and "dense1" in out and "all within tolerance" in out


def test_check_parity_names_the_first_differing_layer(tmp_path, capsys, monkeypatch):
    """A conversion that forgets the flatten permutation fails with exit 1, dense1 named first."""
    model, _ = keras_and_port("baseline")
    model.save(tmp_path / "model.keras")
    original = convert.to_torch_layout

    def without_flatten_permutation(name, variable, value, network):
        return value.T if variable == "kernel" and value.ndim == 2 else original(name, variable, value, network)

    monkeypatch.setattr(convert, "to_torch_layout", without_flatten_permutation)
    assert check_parity.main([str(tmp_path / "model.keras"), "--images", "64"]) == 1
    out = capsys.readouterr().out
    assert "first difference beyond tolerance: dense1" in out and "verdict: FAIL" in out


# --- training steps with the file's own optimizer and loss -----------------------------------------------

SHAPE, CLASSES = (12, 9, 1), 7  # one channel, not square, neither 5 nor 10 classes


def small_model(path, optimizer="adam", loss="sparse_categorical_crossentropy", compiled=True):
    """A small family model (BatchNorm, Dropout) of SHAPE and CLASSES, saved to `path`."""
    architecture = parse_architecture({"name": "small", "conv_blocks": [{"filters": 4, "convs": 1, "batch_norm": True,
                                                                         "dropout": 0.25}],
                                       "dense": [{"units": 8}], "classes": CLASSES}, "small")
    keras.utils.set_random_seed(5)
    model = build_model(architecture, DatasetConfig(num_classes=CLASSES), SHAPE)
    if compiled:
        model.compile(optimizer=optimizer, loss=loss)
    model.save(path)
    return path


def inputs_file(path, count=64, shape=SHAPE, labels_to=CLASSES):
    rng = np.random.default_rng(1)
    np.savez(path, x=rng.random((count, *shape)).astype("float32"), y=rng.integers(0, labels_to, count))
    return path


def test_training_steps_of_a_non_cifar_model_pass_through_inputs(tmp_path, capsys):
    """A 12x9x1, 7-class model compiled with Adam and sparse labels, images from --inputs: the forward
    table, 5 float64 and 5 float32 step rows, exit 0, and the same verdict in --json."""
    model = small_model(tmp_path / "small.keras")
    code = check_parity.main([str(model), "--inputs", str(inputs_file(tmp_path / "in.npz")), "--batch-size", "8",
                              "--json", str(tmp_path / "out.json")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "training: Adam(" in out and "64 images from" in out and "verdict: PASS" in out
    result = json.loads((tmp_path / "out.json").read_text())
    steps = result["models"][0]["training"]["steps"]
    assert result["ok"] and [len(steps["float64"]), len(steps["float32"])] == [5, 5]
    assert all(row["ok"] for row in steps["float64"]) and steps["float32"][0]["judged"]


def test_synthetic_inputs_and_a_file_without_compile_config(tmp_path, capsys):
    """Without --inputs a non-CIFAR model steps on seeded synthetic inputs (the report says so); a file
    saved without compile() is checked forward only, and the report says training was not checked."""
    compiled = small_model(tmp_path / "compiled.keras", optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    plain = small_model(tmp_path / "plain.keras", compiled=False)
    assert check_parity.main([str(compiled), str(plain), "--float64-only", "--steps", "2", "--images", "16"]) == 0
    out = capsys.readouterr().out
    assert "seeded random float64 images" in out and "float32:" not in out
    assert "training: not checked: the file has no compile config" in out


def test_a_wrong_optimizer_formula_fails_the_float64_steps(tmp_path, capsys, monkeypatch):
    """Dropping one Keras detail (its betas pass through float32) makes the float64 steps fail: exit 1."""
    monkeypatch.setattr(keras_optimizers.KerasOptimizer, "_cast", staticmethod(keras_optimizers.KerasOptimizer._scalar))
    model = small_model(tmp_path / "small.keras")
    assert check_parity.main([str(model), "--float64-only", "--steps", "2", "--images", "16"]) == 1
    out = capsys.readouterr().out
    assert "training verdict: FAIL" in out and "verdict: FAIL" in out


@pytest.mark.parametrize("problem, message", [
    ("shape", "images of shape (9, 12, 1)"), ("labels", "labels from 0 to"), ("damaged", "not a readable .npz"),
    ("few", "fewer than one batch"), ("optimizer", "optimizer 'Nadam' is not supported")])
def test_bad_input_exits_2_before_any_check(problem, message, tmp_path, capsys):
    """Each bad input gets one line naming it and exit 2, before anything is compared."""
    model = small_model(tmp_path / "small.keras", optimizer="nadam" if problem == "optimizer" else "adam")
    inputs = tmp_path / "in.npz"
    if problem == "damaged":
        inputs.write_bytes(b"PK\x03\x04 not really a zip")
    else:
        inputs_file(inputs, count=4 if problem == "few" else 64, shape=(9, 12, 1) if problem == "shape" else SHAPE,
                    labels_to=CLASSES + 3 if problem == "labels" else CLASSES)
    assert check_parity.main([str(model), "--inputs", str(inputs)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    if problem == "shape":
        assert "(12, 9, 1)" in err
