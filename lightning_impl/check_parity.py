"""Check a trained Keras model against the Lightning port: per-layer table and a verdict.

    python -m lightning_impl.check_parity MODEL.keras [--images 512] [--data-dir DIR]

Loads the `.keras` file's weights into the port (h5py, no TensorFlow here), runs Keras on the
same real test images in its own process, compares every layer's output and the probabilities,
prints the discrepancy table and exits 0 when all agree within tolerance, 1 when not.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from cifar_common.cli import positive_int
from cifar_common.data import load_cifar10, to_unit_float
from cifar_common.discrepancy import all_ok, compare_pairs, format_table
from cifar_common.errors import UserError, exits_cleanly_on_user_error
from lightning_impl.convert import load_keras_file
from lightning_impl.network import CifarCNN, keras_layer_names, keras_layout_outputs

ACTIVATION_ATOL = 1e-5  # float32 forward passes of the same weights (measured ~2e-7, README)


def has_dropout(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            layers = json.loads(archive.read("config.json"))["config"]["layers"]
    except (OSError, zipfile.BadZipFile, KeyError, json.JSONDecodeError) as error:
        raise UserError(f"{path}: not a readable .keras file ({type(error).__name__}: {error})") from None
    return any(layer.get("class_name") == "Dropout" for layer in layers)


def keras_outputs(model_path: Path, images: np.ndarray) -> dict[str, np.ndarray]:
    """Keras's per-layer outputs, computed in a subprocess so TensorFlow never meets torch here."""
    with tempfile.TemporaryDirectory() as tmp:
        images_path, out_path = Path(tmp) / "images.npz", Path(tmp) / "outputs.npz"
        np.savez(images_path, images=images)
        result = subprocess.run([sys.executable, "-m", "keras_reference.inspect_model", str(model_path),
                                 str(images_path), str(out_path)], capture_output=True, text=True)
        if result.returncode != 0:
            raise UserError(f"Keras could not run {model_path}:\n{result.stderr[-1500:]}")
        with np.load(out_path) as npz:
            return {key: npz[key] for key in npz.files}


def check(model_path: Path, images: np.ndarray, atol: float = ACTIVATION_ATOL) -> tuple[bool, str]:
    network = CifarCNN(dropout=has_dropout(model_path))
    load_keras_file(model_path, network)
    expected = keras_outputs(model_path, images)
    actual = keras_layout_outputs(network, images)
    # Keras names layers its own way (conv2d, conv2d_1, ...): pair them with the port's in order.
    keras_names = [name for name in expected if name != "probs"]
    port_names = keras_layer_names(network)
    if len(keras_names) != len(port_names):
        raise UserError(f"{model_path}: {len(keras_names)} layers, the port has {len(port_names)}")
    pairs = {f"{p}" if k == p else f"{p} ({k})": (expected[k], actual[p]) for k, p in zip(keras_names, port_names)}
    pairs["probs"] = (expected["probs"], actual["dense2"])
    rows = compare_pairs(pairs, atol)
    same_class = float(np.mean(expected["probs"].argmax(1) == actual["dense2"].argmax(1)))
    ok = all_ok(rows) and same_class == 1.0
    table = format_table(rows, f"{model_path}: {len(images)} CIFAR-10 test images")
    return ok, f"{table}\nsame predicted class: {same_class:.2%}\nverdict: {'PASS' if ok else 'FAIL'}"


@exits_cleanly_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lightning_impl.check_parity", description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="a trained Keras model saved as .keras")
    parser.add_argument("--images", type=positive_int, default=512, help="test images to compare on (default: 512)")
    parser.add_argument("--data-dir", type=Path, default=None, help="cifar-10-batches-py folder (default: $CIFAR10_DIR)")
    args = parser.parse_args(argv)
    if not args.model.is_file():
        raise UserError(f"{args.model}: no such file")
    images = to_unit_float(load_cifar10(args.data_dir).x_test[:args.images])
    ok, report = check(args.model, images)
    print(report)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
