"""Check a trained Keras model against the Lightning port: per-layer table and a verdict.

    python -m lightning_impl.check_parity MODEL.keras [MODEL.keras ...] [--images 512] [--data-dir DIR]
    python -m lightning_impl.check_parity MODEL.keras --port DIR/<module>.py

Reads the architecture from the file's `config.json` and builds the port from it (any model of the
family in docs/architectures.md; anything else exits 2 naming the layer and option, before any
check), loads the file's weights into it (h5py, no TensorFlow here), runs Keras on the same real
test images in its own process, compares every layer's output (by the file's layer names) and the
probabilities, prints the discrepancy table of each file and exits 0 when all agree within
tolerance, 1 when not. With --port, the network compared is the one keras2lightning wrote
(`lightning_impl.export`), imported from its file with the weights of the .safetensors beside it; its
table has a row per attribute of that network (lightning_impl/emitted.py).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from torch import nn

from cifar_common.data import load_cifar10, to_unit_float
from cifar_common.discrepancy import all_ok, compare_pairs, format_table
from cifar_common.errors import UserError, exits_cleanly_on_user_error
from cifar_common.spec.config import DatasetConfig
from cifar_common.spec.fit_flags import positive_int
from cifar_common.spec.keras_config import architecture_of_keras_file
from cifar_common.spec.shapes import validate
from lightning_impl.convert import load_keras_file
from lightning_impl.emitted import keras_layout_outputs as emitted_outputs, load_network
from lightning_impl.network import CifarCNN, keras_layout_outputs

ACTIVATION_ATOL = 1e-5  # float32 forward passes of the same weights (measured ~2e-7, README)


def keras_outputs(model_paths: list[Path], images: np.ndarray) -> list[dict[str, np.ndarray]]:
    """Keras's per-layer outputs of each model, computed in one subprocess so TensorFlow never meets
    torch here (and starts once however many models are checked)."""
    with tempfile.TemporaryDirectory() as tmp:
        images_path, out_dir = Path(tmp) / "images.npz", Path(tmp)
        np.savez(images_path, images=images)
        result = subprocess.run([sys.executable, "-m", "keras_reference.inspect_model", str(images_path),
                                 str(out_dir), *map(str, model_paths)], capture_output=True, text=True)
        if result.returncode != 0:
            raise UserError(f"Keras could not run {', '.join(map(str, model_paths))}:\n{result.stderr[-1500:]}")
        outputs = []
        for index in range(len(model_paths)):
            with np.load(out_dir / f"{index}.npz") as npz:
                outputs.append({key: npz[key] for key in npz.files})
        return outputs


def port_for(model_path: Path, dataset: DatasetConfig = DatasetConfig()) -> CifarCNN:
    """The port built from the file's own architecture, holding the file's weights."""
    if not model_path.is_file():
        raise UserError(f"{model_path}: no such file")
    architecture, input_shape = architecture_of_keras_file(model_path)
    expected = (dataset.image_size, dataset.image_size, dataset.channels)
    if input_shape != expected:
        raise UserError(f"{model_path}: input shape {input_shape}, but CIFAR-10 images are {expected} "
                        f"(height, width, channels): the port is checked on real CIFAR-10 images")
    validate(architecture, input_shape, dataset.num_classes, str(model_path))
    network = CifarCNN(architecture, dataset)
    load_keras_file(model_path, network)
    return network


def compare(model_path: Path, network: CifarCNN, expected: dict[str, np.ndarray], images: np.ndarray,
            atol: float = ACTIVATION_ATOL, emitted: nn.Module | None = None) -> tuple[bool, str]:
    """The per-layer table of one model and its verdict (of the `emitted` network's layers, when given)."""
    if emitted is None:
        actual = keras_layout_outputs(network, images)
    else:
        actual = emitted_outputs(emitted, network, images)
        expected = {name: expected[name] for name in actual}
    if list(expected) != list(actual):
        raise UserError(f"{model_path}: Keras reports layers {', '.join(expected)}, the port {', '.join(actual)}")
    # The last layer's row compares the probabilities (Keras's softmax, the softmax of the port's logits).
    rows = compare_pairs({name: (expected[name], actual[name]) for name in actual}, atol)
    last = network.architecture.layers[-1].name
    same_class = float(np.mean(expected[last].argmax(1) == actual[last].argmax(1)))
    ok = all_ok(rows) and same_class == 1.0
    title = (f"{model_path}: architecture {network.architecture.name} ({network.architecture.fingerprint}), "
             f"{len(images)} CIFAR-10 test images" + (f", against {type(emitted).__name__} written out" if emitted else ""))
    return ok, f"{format_table(rows, title)}\nsame predicted class: {same_class:.2%}\nverdict: {'PASS' if ok else 'FAIL'}"


def check(model_paths: list[Path], networks: list[CifarCNN], images: np.ndarray, atol: float = ACTIVATION_ATOL,
          emitted: list[nn.Module | None] | None = None) -> list[tuple[bool, str]]:
    """Each file's table and verdict, against the ports built from the files (or the `emitted` networks)."""
    emitted = emitted or [None] * len(model_paths)
    return [compare(path, network, expected, images, atol, written)
            for path, network, expected, written in zip(model_paths, networks, keras_outputs(model_paths, images),
                                                        emitted)]


@exits_cleanly_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lightning_impl.check_parity", description=__doc__.splitlines()[0])
    parser.add_argument("models", type=Path, nargs="+", metavar="MODEL", help="trained Keras models saved as .keras")
    parser.add_argument("--images", type=positive_int, default=512, help="test images to compare on (default: 512)")
    parser.add_argument("--data-dir", type=Path, default=None, help="cifar-10-batches-py folder (default: $CIFAR10_DIR)")
    parser.add_argument("--port", type=Path, default=None, metavar="FILE.py",
                        help="check the module keras2lightning wrote for the one MODEL (its weights: the "
                             ".safetensors beside it) instead of the port built in memory")
    args = parser.parse_args(argv)
    if args.port is not None and len(args.models) != 1:
        raise UserError("--port checks one written module against its one MODEL.keras")
    # Every file is read and its port built first: one outside the family stops the command before
    # anything is compared (nothing is half-checked).
    networks = [port_for(path) for path in args.models]
    emitted = [load_network(args.port)] if args.port is not None else None
    images = to_unit_float(load_cifar10(args.data_dir).x_test[:args.images])
    results = check(args.models, networks, images, emitted=emitted)
    print("\n\n".join(report for _, report in results))
    return 0 if all(ok for ok, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
