"""Check a Keras model against the Lightning port: per-layer forward table, training steps with the
model's own optimizer and loss, and a verdict.

    python -m lightning_impl.check_parity MODEL.keras [MODEL.keras ...] [--images 512] [--data-dir DIR]
        [--forward-only | --float32-only | --float64-only] [--steps 5] [--batch-size 32]
        [--inputs FILE.npz] [--json FILE]

Reads the architecture from the file's `config.json` and builds the port from it (any model of the
family in docs/architectures.md, any input shape and class count; anything else exits 2 naming the
layer and option, before any check), loads the file's weights into it (h5py, no TensorFlow here),
runs Keras on the same inputs in its own process and compares every layer's output (by the file's
layer names) and the probabilities. When the file carries a compile config (its optimizer and loss),
both sides then take training steps and every loss, gradient, variable, moving statistic and optimizer
slot is compared (lightning_impl/training_check.py says how). Inputs: real CIFAR-10 test images for
32x32x3 models, `--inputs FILE.npz` (x NHWC float, y integer labels), else seeded synthetic ones.
Exit 0 when all agree within tolerance, 1 when not, 2 on bad input (nothing half-checked). With
--port, the network compared is the one keras2lightning wrote (`lightning_impl.export`), imported from
its file with the weights of the .safetensors beside it (forward pass only); its table has a row per
attribute of that network (lightning_impl/emitted.py).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from torch import nn

from cifar_common.data import load_cifar10
from cifar_common.discrepancy import all_ok, compare_pairs, format_table
from cifar_common.errors import UserError, exits_cleanly_on_user_error
from cifar_common.spec.config import DatasetConfig
from cifar_common.spec.fit_flags import positive_int
from cifar_common.spec.keras_config import architecture_of_keras_file
from cifar_common.spec.layers import Architecture
from cifar_common.spec.shapes import output_shapes, validate
from lightning_impl import training_check
from lightning_impl.convert import load_keras_file
from lightning_impl.emitted import keras_layout_outputs as emitted_outputs
from lightning_impl.emitted import load_network
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


def described(model_path: Path) -> tuple[Architecture, tuple[int, int, int], int]:
    """The file's architecture, input shape (height, width, channels) and class count, validated."""
    if not model_path.is_file():
        raise UserError(f"{model_path}: no such file")
    architecture, input_shape = architecture_of_keras_file(model_path)
    if len(input_shape) != 3:
        raise UserError(f"{model_path}: input shape {input_shape}; the port takes images (height, width, channels)")
    shapes = output_shapes(architecture, input_shape, str(model_path)) if architecture.layers else [(0,)]
    classes = shapes[-1][0]
    validate(architecture, input_shape, classes, str(model_path))
    return architecture, input_shape, classes


def port_for(model_path: Path) -> CifarCNN:
    """The port built from the file's own architecture and input shape, holding the file's weights."""
    architecture, input_shape, classes = described(model_path)
    network = CifarCNN(architecture, DatasetConfig(num_classes=classes), input_shape)
    load_keras_file(model_path, network)
    return network


def compare(model_path: Path, network: CifarCNN, expected: dict[str, np.ndarray], images: np.ndarray,
            atol: float = ACTIVATION_ATOL, source: str = "", emitted: nn.Module | None = None) -> tuple[bool, str]:
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
             f"forward pass on {source}" + (f", against {type(emitted).__name__} written out" if emitted else ""))
    return ok, f"{format_table(rows, title)}\nsame predicted class: {same_class:.2%}\nforward verdict: {'PASS' if ok else 'FAIL'}"


def check_forward(plans: list[training_check.TrainingPlan], networks: list[CifarCNN],
                  images: list[training_check.Inputs], emitted: nn.Module | None = None) -> list[tuple[bool, str]]:
    """Each file's forward table and verdict; Keras runs once per distinct set of images."""
    groups: dict[tuple, list[int]] = {}
    for index, inputs in enumerate(images):
        groups.setdefault((inputs.x.shape, inputs.source), []).append(index)
    results: dict[int, tuple[bool, str]] = {}
    for members in groups.values():
        inputs = images[members[0]]
        for index, expected in zip(members, keras_outputs([plans[i].path for i in members], inputs.x)):
            results[index] = compare(plans[index].path, networks[index], expected, inputs.x, source=inputs.source,
                                     emitted=emitted)
    return [results[index] for index in range(len(plans))]


def plan_for(path: Path, forward_only: bool) -> training_check.TrainingPlan:
    """What the file describes, and its optimizer and loss (a UserError for what the port does not support)."""
    architecture, input_shape, classes = described(path)
    setup, reason = (None, "--forward-only or --port") if forward_only else training_check.training_setup_of(path)
    return training_check.TrainingPlan(path, architecture, input_shape, classes, setup, reason)


@exits_cleanly_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lightning_impl.check_parity", description=__doc__.splitlines()[0])
    parser.add_argument("models", type=Path, nargs="+", metavar="MODEL", help="Keras models saved as .keras")
    parser.add_argument("--images", type=positive_int, default=512, help="images of the forward check (default: 512)")
    parser.add_argument("--data-dir", type=Path, default=None, help="cifar-10-batches-py folder (default: $CIFAR10_DIR)")
    parser.add_argument("--inputs", type=Path, default=None,
                        help="FILE.npz with x (N, H, W, C) float images and y integer labels, used instead of "
                             "CIFAR-10 or synthetic inputs for the forward check and the float32 steps")
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument("--forward-only", action="store_true", help="skip the training steps")
    precision.add_argument("--float32-only", action="store_true", help="training steps in float32 only")
    precision.add_argument("--float64-only", action="store_true", help="training steps in float64 only")
    parser.add_argument("--steps", type=positive_int, default=5, help="training steps per precision (default: 5)")
    parser.add_argument("--batch-size", type=positive_int, default=32, help="images per training step (default: 32)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results to FILE as JSON")
    parser.add_argument("--port", type=Path, default=None, metavar="FILE.py",
                        help="check the module keras2lightning wrote for the one MODEL (its weights: the "
                             ".safetensors beside it) instead of the port built in memory (forward pass only)")
    args = parser.parse_args(argv)
    if args.port is not None and len(args.models) != 1:
        raise UserError("--port checks one written module against its one MODEL.keras")
    # Every file is read, its port built and its optimizer and loss accepted first, and the inputs
    # checked: anything unsupported stops the command before anything is compared.
    plans = [plan_for(path, args.forward_only or args.port is not None) for path in args.models]
    networks = [port_for(path) for path in args.models]
    emitted = load_network(args.port) if args.port is not None else None
    dtypes = ["float64", "float32"]
    dtypes = ["float32"] if args.float32_only else ["float64"] if args.float64_only else dtypes
    given = {}
    if args.inputs is not None:
        for plan in plans:
            given[plan.path] = training_check.read_inputs(args.inputs, plan.input_shape, plan.classes, args.batch_size)
    needs_cifar = any(plan.input_shape == training_check.CIFAR_SHAPE and plan.path not in given for plan in plans)
    cifar = load_cifar10(args.data_dir) if needs_cifar else None
    count = args.steps * args.batch_size
    for plan in plans:
        if plan.setup is None:
            continue
        for dtype in dtypes:
            if dtype == "float64":
                plan.inputs[dtype] = training_check.synthetic(plan.input_shape, plan.classes, count, "float64",
                                                              "float64 images")
                plan.steps[dtype] = args.steps
            else:
                inputs = training_check.float32_inputs(plan.input_shape, plan.classes, count, given.get(plan.path), cifar)
                plan.inputs[dtype] = inputs
                plan.steps[dtype] = min(args.steps, len(inputs.x) // args.batch_size)
    images = [training_check.first(given[plan.path], args.images) if plan.path in given else
              training_check.float32_inputs(plan.input_shape, plan.classes, args.images, None, cifar) for plan in plans]
    forward = check_forward(plans, networks, images, emitted)
    trained = training_check.run(plans, args.batch_size)
    reports, results = [], []
    for index, (plan, (forward_ok, forward_text)) in enumerate(zip(plans, forward)):
        training_ok, training_text, training_json = training_check.report(plan, trained.get(index, {}))
        ok = forward_ok and training_ok
        reports.append(f"{forward_text}\n{training_text}\nverdict: {'PASS' if ok else 'FAIL'}")
        results.append({"model": str(plan.path), "ok": ok, "forward_ok": forward_ok, "training": training_json})
    print("\n\n".join(reports))
    ok = all(result["ok"] for result in results)
    if args.json is not None:
        args.json.write_text(json.dumps({"ok": ok, "models": results}, indent=1) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
