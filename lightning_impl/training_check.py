"""check_parity's training part: the file's own optimizer and loss, K steps on both sides, compared.

From the file's weights, with a fresh optimizer (iteration 0: the file's optimizer slots are stored by
position only, and would shift bias correction and schedules), Dropout off (two frameworks cannot draw
the same masks) and BatchNorm in training mode, both sides take the same steps on the same batches:
- float64, K steps on seeded random inputs of the model's shape (real images put exact ties into
  max-pooling; in float64 no rounding moves a ReLU unit across zero, so agreement shows the formulas
  are the same);
- float32, on real CIFAR-10 test images when the input is 32x32x3 (their labels with 10 classes,
  seeded random labels otherwise), the images of `--inputs`, or seeded synthetic ones: the first step
  is judged, later ones drift apart for rounding alone and are reported (reports/drift.csv).
"""
from __future__ import annotations

import tempfile
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cifar_common import training_parity as tp
from cifar_common.errors import UserError
from cifar_common.spec.config import DatasetConfig
from cifar_common.spec.keras_config import read_keras_config
from cifar_common.spec.layers import Architecture
from lightning_impl.convert import load_keras_file, to_keras_arrays
from lightning_impl.keras_compile import TrainingSetup, training_setup
from lightning_impl.network import CifarCNN
from lightning_impl.stepping import StepCase, keras_steps, port_steps

CIFAR_SHAPE = (32, 32, 3)
SEED = 0


@dataclass
class Inputs:
    """Images (NHWC) and integer labels, and where they come from (for the report)."""
    x: np.ndarray
    y: np.ndarray
    source: str


@dataclass
class TrainingPlan:
    """One model's training check: its setup (None: not checked, `reason` says why) and inputs."""
    path: Path
    architecture: Architecture
    input_shape: tuple[int, int, int]
    classes: int
    setup: TrainingSetup | None
    reason: str = ""
    inputs: dict[str, Inputs] = field(default_factory=dict)  # per dtype
    steps: dict[str, int] = field(default_factory=dict)


def training_setup_of(path: Path) -> tuple[TrainingSetup | None, str]:
    """The file's optimizer and loss, or None and why not; a UserError for what the port does not support."""
    compile_config = read_keras_config(path).get("compile_config")
    if not compile_config:
        return None, "the file has no compile config (saved before compile()): training was not checked"
    return training_setup(compile_config, str(path)), ""


def read_inputs(path: Path, input_shape: tuple[int, ...], classes: int, batch_size: int) -> Inputs:
    """`--inputs FILE.npz` (x NHWC float, y integer labels), checked against the model."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            x, y = np.asarray(npz["x"]), np.asarray(npz["y"])
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except KeyError as error:
        raise UserError(f"{path}: no array {error} (the file must hold x: images NHWC, y: integer labels)") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise UserError(f"{path}: not a readable .npz file ({type(error).__name__}: {error})") from None
    if x.ndim != 4 or tuple(x.shape[1:]) != tuple(input_shape):
        raise UserError(f"{path}: images of shape {tuple(x.shape[1:])} (x is {x.shape}), but the model takes "
                        f"{tuple(input_shape)} (height, width, channels)")
    if not np.issubdtype(x.dtype, np.floating) or not np.isfinite(x).all():
        raise UserError(f"{path}: x must hold finite floating-point pixels, got {x.dtype}")
    if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
        raise UserError(f"{path}: y must hold one integer label per image ({len(x)}), got {y.dtype} {y.shape}")
    if len(y) and (y.min() < 0 or y.max() >= classes):
        raise UserError(f"{path}: labels from {y.min()} to {y.max()}, but the model has {classes} classes "
                        f"(labels 0 to {classes - 1})")
    if len(x) < batch_size:
        raise UserError(f"{path}: {len(x)} images, fewer than one batch ({batch_size}); pass more images or "
                        f"a smaller --batch-size")
    return Inputs(x.astype(np.float32), y.astype(np.int64), f"{len(x)} images from {path}")


def first(inputs: Inputs, count: int) -> Inputs:
    taken = min(count, len(inputs.x))
    return Inputs(inputs.x[:taken], inputs.y[:taken], f"the first {taken} of {inputs.source}")


def synthetic(input_shape: tuple[int, ...], classes: int, count: int, dtype: str, what: str) -> Inputs:
    rng = np.random.default_rng(SEED)
    return Inputs(rng.random((count, *input_shape)).astype(dtype), rng.integers(0, classes, count),
                  f"{count} seeded random {what} (uniform in [0, 1)) with seeded random labels")


def float32_inputs(input_shape: tuple[int, ...], classes: int, count: int, given: Inputs | None,
                   cifar: Any) -> Inputs:
    if given is not None:
        return given
    if tuple(input_shape) == CIFAR_SHAPE and cifar is not None:
        x = cifar.x_test[:count].astype("float32") / 255
        if classes == 10:
            return Inputs(x, cifar.y_test[:count].astype(np.int64), f"{count} CIFAR-10 test images and labels")
        labels = np.random.default_rng(SEED).integers(0, classes, count)
        return Inputs(x, labels, f"{count} CIFAR-10 test images, seeded random labels ({classes} classes)")
    return synthetic(input_shape, classes, count, "float32", "images (the input is not CIFAR-10's 32x32x3)")


def port_network(plan: TrainingPlan, dtype: str) -> CifarCNN:
    network = CifarCNN(plan.architecture, DatasetConfig(num_classes=plan.classes), plan.input_shape)
    load_keras_file(plan.path, network)
    return network.to(getattr(torch, dtype))


def run(plans: list[TrainingPlan], batch_size: int) -> dict[int, dict[str, list[tp.StepRow]]]:
    """Every planned model's rows per dtype; Keras's steps for all of them from one subprocess."""
    with tempfile.TemporaryDirectory() as tmp:
        cases, keys = [], []
        for index, plan in enumerate(plans):
            if plan.setup is None:
                continue
            config = read_keras_config(plan.path)["compile_config"]
            for dtype, inputs in plan.inputs.items():
                inputs_path = Path(tmp) / f"{index}-{dtype}.npz"
                np.savez(inputs_path, x=inputs.x, y=inputs.y)
                case = StepCase(plan.path, inputs_path, config["optimizer"], config["loss"], dtype,
                                plan.steps[dtype], batch_size)
                cases.append(case)
                keys.append((index, dtype))
                if dtype == "float32":  # the same first step in float64: which elements float32 can judge
                    cases.append(replace(case, dtype="float64", steps=1))
                    keys.append((index, "float64-first"))
        records = dict(zip(keys, keras_steps(cases) if cases else []))
        results: dict[int, dict[str, list[tp.StepRow]]] = {}
        for (index, dtype), case in zip(keys, cases):
            if dtype == "float64-first":
                continue
            plan, inputs = plans[index], plans[index].inputs[dtype]
            network = port_network(plan, dtype)
            start = to_keras_arrays(network)
            port = port_steps(network, plan.setup, inputs.x, inputs.y, batch_size, case.steps, dtype)
            float64_first = None
            if dtype == "float32":
                port64 = port_steps(port_network(plan, "float64"), plan.setup, inputs.x, inputs.y, batch_size, 1,
                                    "float64")[0]
                float64_first = (records[index, "float64-first"][0], port64)
            results.setdefault(index, {})[dtype] = tp.compare_steps(records[index, dtype], port, start, dtype,
                                                                   float64_first)
        return results


def report(plan: TrainingPlan, rows: dict[str, list[tp.StepRow]]) -> tuple[bool, str, dict[str, Any]]:
    """The training section of one model's report, its verdict and its JSON form."""
    if plan.setup is None:
        return True, f"training: not checked: {plan.reason}", {"checked": False, "reason": plan.reason}
    lines = [f"training: {plan.setup.describe()}",
             ("  from the file's weights with a fresh optimizer (iteration 0); Dropout off during the steps "
              "(two frameworks cannot draw the same masks); BatchNorm in training mode")]
    lines += [f"  {dtype} inputs: {plan.inputs[dtype].source}" for dtype in plan.inputs]
    for dtype, dtype_rows in rows.items():
        lines.append(tp.format_steps(dtype_rows, f"{dtype}: {len(dtype_rows)} steps, the same batches on both sides"))
        lines.append(f"  tolerance: {tp.TOLERANCE_SOURCES[dtype]}")
    ok = all(tp.all_ok(dtype_rows) for dtype_rows in rows.values())
    lines.append(f"training verdict: {'PASS' if ok else 'FAIL'}")
    as_json = {"checked": True, "setup": plan.setup.describe(), "ok": ok,
               "inputs": {dtype: inputs.source for dtype, inputs in plan.inputs.items()},
               "tolerances": {dtype: tp.TOLERANCE_SOURCES[dtype] for dtype in rows},
               "steps": {dtype: tp.rows_as_json(dtype_rows) for dtype, dtype_rows in rows.items()}}
    return ok, "\n".join(lines), as_json
